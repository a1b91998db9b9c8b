"""Scene text: an image written as the words its image tokens stand for, for a text-only reading stage.

The word-grounded projector (projector.py) makes each image token "the embedding of what this patch
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
from pathlib import Path

from kanva.data.coco import load_coco
from kanva.errors import KanvaError
from kanva.grounding.labels import PatchLabelSpace
from kanva.grounding.targets import patch_targets

# Within a cell: colour first, then the object, how many of it, then printed words ("purple umbrella two TAXI").
_KIND_ORDER = {"color": 0, "category": 1, "count": 2, "text": 3}


def scene_texts(coco_root: str | Path, split: str, space: PatchLabelSpace, image_size: int,
                patch: int) -> dict[str, str]:
    """file_name -> scene text for every image of the split (cells as `space` lays them out: labels.py)."""
    coco = load_coco(coco_root, split, captions=False)
    targets = patch_targets(coco, space, image_size, patch)
    order = sorted(range(len(space)), key=lambda i: (_KIND_ORDER[space.kinds[i]], i))
    out = {}
    for im in coco.images.values():
        t = targets[im.id]
        cells = []
        for row in t:
            words = [space.reads[i] for i in order if row[i]]
            cells.append(" ".join(words) if words else space.background)
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


def write_scene_text(input_path: str | Path, coco_root: str | Path, split: str, model_dir: str | Path,
                     out: str | Path) -> int:
    """`kanva grounding scene-text`: the input's samples as text-only copies, written to `out`; returns how many."""
    from kanva.data.llava import load_llava, save_llava
    from kanva.grounding.labels import load_label_space

    space, size, patch = load_label_space(model_dir)
    texts = scene_texts(coco_root, split, space, size, patch)
    samples = render_samples(load_llava(input_path), texts, source=str(input_path))
    save_llava(samples, out, source=str(input_path))
    return len(samples)
