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
                    **({"track": obj["track"]} if "track" in obj else {}),  # set images: the object across the set
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


def _set_images(records: list[dict]) -> list[dict]:
    return [img for rec in records for img in rec["images"]]


def sets_json(split: str, records: list[dict], meta: dict) -> dict:
    """Multi-image sets as a COCO instances file (every set image an `images` entry, annotations with
    `track`) plus `sets`: each set's image ids and file names in order, scene, seed, kind and changes."""
    data = instances_json(split, _set_images(records), meta)
    data["sets"] = [
        {
            "id": rec["id"],
            "image_ids": [img["id"] for img in rec["images"]],
            "file_names": [img["file_name"] for img in rec["images"]],
            "scene": rec["scene"],
            "seed": rec["seed"],
            "kind": rec["kind"],
            "changes": rec["changes"],
        }
        for rec in records
    ]
    return data


def sets_captions_json(split: str, records: list[dict], meta: dict) -> dict:
    """COCO captions of the set images (the single-image captioner, per image)."""
    return captions_json(split, _set_images(records), meta)


def clips_json(split: str, records: list[dict], meta: dict) -> dict:
    """Clips in the YouTube-VIS layout: `videos` (id, width, height, length, file_names) and one annotation
    per object track (video_id, category_id, iscrowd, per-frame `bboxes`, `areas`, `segmentations`, null
    where the object does not show), plus Kanva's: video `video` (the mp4), `fps`, `scene`, `seed`, `texts`;
    annotation `color`, `track`, `motion`, per-frame `visible`."""
    videos, annotations = [], []
    for rec in records:
        videos.append(
            {
                "id": rec["id"],
                "width": rec["width"],
                "height": rec["height"],
                "length": rec["length"],
                "file_names": rec["file_names"],
                "license": 1,
                "video": rec["video"],
                "fps": rec["fps"],
                "scene": rec["scene"],
                "seed": rec["seed"],
                "texts": rec["texts"],
            }
        )
        for k, tr in enumerate(rec["tracks"], start=1):
            annotations.append(
                {
                    "id": rec["id"] * ANN_STRIDE + k,
                    "video_id": rec["id"],
                    "category_id": CATEGORY_ID[tr["category"]],
                    "iscrowd": 0,
                    "width": rec["width"],
                    "height": rec["height"],
                    "bboxes": tr["bboxes"],
                    "areas": tr["areas"],
                    "segmentations": tr["segmentations"],
                    "color": tr["color"],
                    "track": tr["track"],
                    "motion": tr["motion"],
                    "visible": tr["visible"],
                }
            )
    return {
        "info": _info(split, meta),
        "licenses": [OPENMOJI_LICENSE],
        "videos": videos,
        "annotations": annotations,
        "categories": coco_categories_json(),
    }


def write_json(obj: dict, path: Path) -> None:
    """Write atomically (temp file, then rename): a crash never leaves half a COCO file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    tmp.replace(path)
