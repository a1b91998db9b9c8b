"""Images that must never appear in training data (evaluation sets), read from lists or question files.

Accepted files, told apart by content, never by path:
- a JSON array of objects with an `image` field (a LLaVA file, or POPE/MME-style question lists);
- JSON lines, one object per line with an `image` field (POPE question files, LLaVA answer-file inputs);
- a COCO annotation file (an object with `images`): every image of that split, e.g. the world's test split
  (its sets file too); a YouTube-VIS file (an object with `videos`, the world's clips): every video (mp4 and
  frame folder);
- records may name a `video` (LLaVA video samples, MVBench) or an `image_list` (MUIRBench) instead;
- plain text: one image per line; tab-separated lines use their first column (MME's `image<TAB>question<TAB>answer`).
MMBench TSVs embed their images (base64, no file names), so they are refused with a hint to exclude the split
they were made from instead. Images are compared by file base name, which is how LLaVA samples join to COCO
images as well.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from pathlib import Path

from kanva.errors import KanvaError
from kanva.jsonfile import read_json, read_jsonl


def image_key(path: str) -> str:
    return posixpath.basename(path.strip().replace("\\", "/"))


def _images_of(record: object, where: str) -> list[str]:
    """The media of one record: `image` (a path or a list), MUIRBench's `image_list`, a `video` (LLaVA, MVBench)."""
    if not isinstance(record, dict):
        raise KanvaError(f"{where}: expected an object with an 'image' field, got {type(record).__name__}")
    image = record.get("image", record.get("image_list"))
    video = record.get("video")
    if isinstance(video, str) and video.strip() and image is None:
        return [video.rstrip("/")]
    if isinstance(image, str) and image.strip():
        return [image]
    if isinstance(image, list) and image and all(isinstance(i, str) for i in image):
        return list(image) + ([video.rstrip("/")] if isinstance(video, str) and video.strip() else [])
    raise KanvaError(f"{where}: field 'image' must be a path or a list of paths, got {image!r}")


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None  # JSON lines, not one JSON document


def read_exclude(path: str | Path) -> set[str]:
    """Base names of the images listed in `path` (see the module docstring for the formats)."""
    path = Path(path)
    if not path.is_file():
        raise KanvaError(f"{path}: no such exclude file")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    keys: set[str] = set()
    if stripped.startswith("["):
        for i, rec in enumerate(read_json(path, "exclude file")):
            keys.update(image_key(p) for p in _images_of(rec, f"{path}: [{i}]"))
    elif stripped.startswith("{") and isinstance(whole := _json_or_none(text), dict) and "videos" in whole:
        for i, v in enumerate(whole["videos"] if isinstance(whole["videos"], list) else []):
            names = [v.get("video")] if isinstance(v, dict) and isinstance(v.get("video"), str) else []
            frames = v.get("file_names") if isinstance(v, dict) else None
            if isinstance(frames, list) and frames and isinstance(frames[0], str):
                names.append(posixpath.dirname(frames[0]))  # the frame folder, a video in LLaVA samples
            if not any(names):
                raise KanvaError(f"{path}: videos[{i}] has neither a 'video' nor 'file_names' in a folder")
            keys.update(image_key(n) for n in names if n)
    elif stripped.startswith("{") and isinstance(whole := _json_or_none(text), dict) and "images" in whole:
        images = whole["images"]
        if not isinstance(images, list):
            raise KanvaError(f"{path}: field 'images' of COCO annotations must be a list")
        for i, im in enumerate(images):
            if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
                raise KanvaError(f"{path}: images[{i}].file_name must be a string")
            keys.add(image_key(im["file_name"]))
    elif stripped.startswith("{"):
        for lineno, rec in read_jsonl(path):
            keys.update(image_key(p) for p in _images_of(rec, f"{path}:{lineno}"))
    else:
        header = stripped.split("\n", 1)[0].split("\t")
        if {"index", "question", "image"} <= set(header):
            raise KanvaError(f"{path}: an MMBench-style TSV embeds its images without file names; exclude the "
                             "split it was made from instead (its instances_SPLIT.json, or an image list)")
        for line in text.splitlines():
            first = line.split("\t", 1)[0].strip()
            if first and not first.startswith("#"):
                keys.add(image_key(first))
    if not keys:
        raise KanvaError(f"{path}: lists no images (an empty exclude file is almost certainly a mistake)")
    return keys


def read_excludes(paths: Iterable[str | Path]) -> set[str]:
    keys: set[str] = set()
    for p in paths:
        keys |= read_exclude(p)
    return keys
