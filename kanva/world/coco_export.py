"""Image records -> COCO `instances_{split}.json` and `captions_{split}.json` (see docs/design.md).

Standard COCO fields plus Kanva's: image `scene`, `seed`, `texts`; annotation `color`, `visible`.
Bytes are deterministic (no dates, fixed key order, compact separators).
"""

from __future__ import annotations

import json
from pathlib import Path

from kanva import __version__
from kanva.world.coco import CATEGORY_ID, coco_categories_json
from kanva.world.seeds import ANN_STRIDE

OPENMOJI_LICENSE = {
    "id": 1,
    "name": "CC BY-SA 4.0 (objects drawn with OpenMoji glyphs, openmoji.org)",
    "url": "https://creativecommons.org/licenses/by-sa/4.0/",
}


def _info(split: str, meta: dict) -> dict:
    return {
        "description": f"Kanva world, split {split}",
        "version": __version__,
        "contributor": "Kanva world generator; all emojis designed by OpenMoji, the open-source emoji and icon project (CC BY-SA 4.0)",
        "split": split,
        **meta,
    }


def image_entry(rec: dict) -> dict:
    return {
        "id": rec["id"],
        "file_name": rec["file_name"],
        "width": rec["width"],
        "height": rec["height"],
        "license": 1,
        "scene": rec["scene"],
        "seed": rec["seed"],
        "texts": rec["texts"],
    }


def instances_json(split: str, records: list[dict], meta: dict) -> dict:
    annotations = []
    for rec in records:
        for k, obj in enumerate(rec["objects"], start=1):
            annotations.append(
                {
                    "id": rec["id"] * ANN_STRIDE + k,
                    "image_id": rec["id"],
                    "category_id": CATEGORY_ID[obj["category"]],
                    "bbox": obj["bbox"],
                    "area": obj["area"],
                    "iscrowd": 0,
                    "segmentation": obj["segmentation"],
                    "color": obj["color"],
                    "visible": obj["visible"],
                }
            )
    return {
        "info": _info(split, meta),
        "licenses": [OPENMOJI_LICENSE],
        "images": [image_entry(r) for r in records],
        "annotations": annotations,
        "categories": coco_categories_json(),
    }


def captions_json(split: str, records: list[dict], meta: dict) -> dict:
    annotations = [
        {"id": rec["id"] * ANN_STRIDE + k, "image_id": rec["id"], "caption": text}
        for rec in records
        for k, text in enumerate(rec["captions"], start=1)
    ]
    return {
        "info": _info(split, meta),
        "licenses": [OPENMOJI_LICENSE],
        "images": [image_entry(r) for r in records],
        "annotations": annotations,
    }


def write_json(obj: dict, path: Path) -> None:
    """Write atomically (temp file, then rename): a crash never leaves half a COCO file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    tmp.replace(path)
