"""Seeds and ids: every image is a pure function of (world seed, split, index).

The per-image seed is drawn from `numpy.random.SeedSequence(world_seed, spawn_key=(split_key, index))`,
where `split_key` hashes the split's name: train and test images come from disjoint streams, and an
image never depends on how many workers drew the others. The recorded seed reproduces the image alone.

Image ids are unique across splits (`split_code * ID_STRIDE + index + 1`), so splits can be merged;
annotation ids are `image_id * 100 + k` (k = 1.. in painting order), unique too.
"""

from __future__ import annotations

import hashlib
from itertools import combinations

import numpy as np

from kanva.world.coco import CATEGORY_ID
from kanva.world.config import WorldConfig

SPLITS = ("train", "val", "test", "novel")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2, "novel": 3}
ID_STRIDE = 100_000_000
ANN_STRIDE = 100


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def image_seed(world_seed: int, split: str, index: int, kind: str = "images") -> int:
    """A 53-bit seed (exact in JSON readers that use doubles) for item `index` of `split`: an image, or with
    `kind` "sets"/"clips" a multi-image set or a clip (streams disjoint from the images')."""
    stream = split if kind == "images" else f"{kind}/{split}"
    ss = np.random.SeedSequence(world_seed, spawn_key=(_key(stream), index))
    hi, lo = (int(v) for v in ss.generate_state(2, np.uint32))
    return ((hi << 32) | lo) >> 11


# Sets and clips number their items in their own ranges, so ids stay unique when everything is merged:
# set `index` of a split is `(4 + split_code) * ID_STRIDE + index + 1`, its image k (0..3) `set_id * 10 + k`;
# clip `index` is `(8 + split_code) * ID_STRIDE + index + 1`.
KIND_CODE = {"images": 0, "sets": 4, "clips": 8}
SET_IMAGE_STRIDE = 10


def image_id(split: str, index: int, kind: str = "images") -> int:
    return (KIND_CODE[kind] + SPLIT_CODE[split]) * ID_STRIDE + index + 1


def held_out_pairs(cfg: WorldConfig, world_seed: int) -> list[tuple[str, str]]:
    """`cfg.novel_pairs` category pairs that never appear together in train/val/test, only in `novel`.

    Candidates are pairs that some scene can show together (both in its priors), weighted by (the square
    root of) how often the scenes would pair them, so held-out pairs are ones a model would otherwise see.
    """
    weight: dict[tuple[str, str], float] = {}
    scene_total = sum(s.weight for s in cfg.scenes.values()) or 1.0
    for name, scene in cfg.scenes.items():
        priors = cfg.scene_priors(name)
        total = sum(priors.values())
        if scene.weight <= 0 or total <= 0:
            continue
        for a, b in combinations(sorted(priors, key=CATEGORY_ID.__getitem__), 2):
            w = scene.weight / scene_total * priors[a] * priors[b] / total**2
            weight[(a, b)] = weight.get((a, b), 0.0) + w
    pairs = sorted(weight, key=lambda p: (CATEGORY_ID[p[0]], CATEGORY_ID[p[1]]))
    k = min(cfg.novel_pairs, len(pairs))
    if k == 0:
        return []
    rng = np.random.default_rng(np.random.SeedSequence(world_seed, spawn_key=(_key("novel pairs"),)))
    # sqrt: favour natural pairs without always holding out the few most common ones (person + car).
    p = np.sqrt(np.array([weight[x] for x in pairs], np.float64))
    chosen = rng.choice(len(pairs), size=k, replace=False, p=p / p.sum())
    return sorted((pairs[int(i)] for i in chosen), key=lambda p: (CATEGORY_ID[p[0]], CATEGORY_ID[p[1]]))
