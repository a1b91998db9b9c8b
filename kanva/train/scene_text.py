"""Scene text: an image written as the words its image tokens stand for, for a text-only reading stage.

The word-grounded projector (patch_pretrain.py) makes each image token "the embedding of what this patch
shows": " background", " umbrella", or the sum for a patch with several labels (" purple" + " umbrella").
A 135M LM learns a question over the same words written as text within a few dozen steps (measured:
docs/experiments/2026-11-25-grounding.md), with exact labels and no vision compute, and since an image token is its
word's embedding, what it learns carries over to the images.

So a LLaVA sample about an image becomes a text-only sample whose `<image>` is replaced by the scene text:
one cell per patch in the encoder's raster order, the cell's labels from the COCO boxes (the same targets
the vision encoder is trained on), "background" where no label applies. Cheap (no vision compute) and
exact (ground-truth labels), it teaches the LM the task; an optional image stage after it can adapt the
LM to the encoder's real tokens (the `smol` quickstart measured it as harmful at 29 steps, and has none).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from kanva.data.coco import load_coco
from kanva.errors import KanvaError
from kanva.train.patch_pretrain import PatchLabelSpace, patch_targets

BACKGROUND = "background"
# Within a cell: colour first, then the object, how many of it, its side, then printed words
# ("purple umbrella two left TAXI").
_KIND_ORDER = {"color": 0, "category": 1, "count": 2, "side": 3, "text": 4}


def load_label_space(model_dir: str | Path) -> tuple[PatchLabelSpace, int, int]:
    """The label space and (image size, patch size) of a model made by the vision pretraining stage."""
    d = Path(model_dir)
    labels, config = d / "patch_labels.json", d / "config.json"
    if not labels.is_file():
        raise KanvaError(f"{labels}: no such file (scene text needs a model from the vision pretraining stage)")
    try:
        space = PatchLabelSpace.from_json(json.loads(labels.read_text()))
        vc = json.loads(config.read_text())["vision_config"]
        return space, int(vc["image_size"]), int(vc["patch_size"])
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise KanvaError(f"{d}: cannot read the patch label space or vision config: {e}") from None


def scene_texts(coco_root: str | Path, split: str, space: PatchLabelSpace, image_size: int, patch: int,
                min_cover: float = 0.2) -> dict[str, str]:
    """file_name -> scene text for every image of the split."""
    coco = load_coco(coco_root, split, captions=False)
    targets = patch_targets(coco, space, image_size, patch, min_cover)
    order = sorted(range(len(space)), key=lambda i: (_KIND_ORDER.get(space.kinds[i], 5), i))
    out = {}
    for im in coco.images.values():
        t = targets[im.id]
        cells = []
        for row in t:
            words = [space.reads[i] for i in order if row[i]]
            cells.append(" ".join(words) if words else BACKGROUND)
        out[im.file_name] = " ".join(cells)
    return out


def render_samples(samples: list[dict], texts: dict[str, str], source: str = "input") -> list[dict]:
    """Text-only copies of LLaVA samples: `<image>` replaced by the image's scene text, `image` dropped."""
    out = []
    for s in samples:
        image = s.get("image")
        if image is None:  # already text-only: kept as it is
            out.append(s)
            continue
        if not isinstance(image, str):
            raise KanvaError(f"{source}: sample {s.get('id')!r} has {len(image)} images; scene text takes one")
        name = Path(image).name
        if name not in texts:
            raise KanvaError(f"{source}: sample {s.get('id')!r}: image {image!r} is not in the annotations")
        r = copy.deepcopy(s)
        r.pop("image")
        r["id"] = f"{s['id']}#text"
        first = r["conversations"][0]
        if "<image>" not in first["value"]:
            raise KanvaError(f"{source}: sample {s.get('id')!r}: the first turn has no <image>")
        first["value"] = first["value"].replace("<image>", texts[name], 1)
        out.append(r)
    return out
