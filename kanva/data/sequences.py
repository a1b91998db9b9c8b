"""The reader of multi-image sets (a COCO instances file plus `sets`) and clips (the YouTube-VIS layout):
the world's `annotations/sets_{split}.json` (+ `sets_captions_{split}.json`) and `annotations/clips_{split}.json`.

Sets reuse the COCO reader (kanva/data/coco.py) for their images, so a set image is an ImageRec like any
other; `sets` then orders them. Clips follow YouTube-VIS: `videos` with `file_names` (frames, relative to
`DIR/clips/{split}/`) and one annotation per object track with per-frame `bboxes`/`areas` (null where the
object does not show). Only YouTube-VIS's fields are required; the world's (`video`, `scene`, `color`,
`motion`, `visible`, `track`) are used when present. Every malformed entry raises KanvaError naming the file
and the field (`annotations[3].bboxes[5]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanva.data.coco import (CocoSet, ImageRec, _bbox, _list_field, _num, _parse_categories, coco_from_dicts,
                             read_annotations, ref)
from kanva.errors import KanvaError
from kanva.jsonfile import read_json


@dataclass
class ImageSet:
    """One multi-image set: its images in order; `kind` "change" or "same_scene"; the recorded `changes`."""

    id: int
    images: list[ImageRec]
    scene: str | None = None
    kind: str | None = None
    changes: list[dict] = field(default_factory=list)


@dataclass
class SetCollection:
    coco: CocoSet  # the set images (image_dir: DIR/sets/{split})
    sets: list[ImageSet]


def load_sets(root: str | Path, split: str, captions: bool = True) -> SetCollection:
    """Load `root/annotations/sets_{split}.json` (and its captions file) into a SetCollection."""
    root = Path(root)
    ipath = root / "annotations" / f"sets_{split}.json"
    cpath = root / "annotations" / f"sets_captions_{split}.json"
    inst, caps = read_annotations(ipath, cpath, captions,
                                  hint="expected world sets at DIR/annotations/; `kanva world generate --sets ...` writes them")
    coco = coco_from_dicts(inst, caps, root / "sets", split, ipath, cpath)
    sets = []
    for i, s in enumerate(_list_field(inst, "sets", ipath)):
        where = f"sets[{i}]"
        ids = s.get("image_ids") if isinstance(s, dict) else None
        if not isinstance(ids, list) or not ids:
            raise KanvaError(f"{ipath}: {where}.image_ids must be a non-empty list of image ids")
        missing = [x for x in ids if x not in coco.images]
        if missing:
            raise KanvaError(f"{ipath}: {where}.image_ids {missing} are not in 'images'")
        changes = s.get("changes") or []
        if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
            raise KanvaError(f"{ipath}: {where}.changes must be a list of objects")
        sets.append(ImageSet(s.get("id"), [coco.images[x] for x in ids], s.get("scene"), s.get("kind"), changes))
    return SetCollection(coco, sets)


@dataclass
class Track:
    """One object through a clip; per-frame lists have one entry per frame (None where it does not show)."""

    category: str
    bboxes: list[tuple[float, float, float, float] | None]
    areas: list[float | None]
    color: str | None = None
    track: int | None = None
    motion: dict | None = None  # world: {"kind": static|move|enter|leave|cross|appear, "direction", "first"}
    visible: list[float | None] | None = None

    def shown(self) -> list[int]:
        """Frames in which some of the object is visible."""
        return [t for t, b in enumerate(self.bboxes) if b is not None]


@dataclass
class Clip:
    id: int
    width: int
    height: int
    frames: list[Path]  # the frame files, in order
    video: Path | None = None  # the mp4 (world clips), else None
    scene: str | None = None
    fps: float | None = None
    tracks: list[Track] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.frames)


@dataclass
class ClipSet:
    root: Path
    split: str
    clips: dict[int, Clip]
    categories: dict[int, tuple[str, str]]


def _per_frame(a: dict, key: str, n: int, where: str, path: Path) -> list[Any]:
    value = a.get(key)
    if not isinstance(value, list) or len(value) != n:
        raise KanvaError(f"{path}: {where}.{key} must be a list with one entry per frame ({n}), got "
                         f"{type(value).__name__}{'' if not isinstance(value, list) else f' of {len(value)}'}")
    return value


def load_clips(root: str | Path, split: str) -> ClipSet:
    """Load and validate `root/annotations/clips_{split}.json` (YouTube-VIS layout) into a ClipSet."""
    root = Path(root)
    path = root / "annotations" / f"clips_{split}.json"
    data = read_json(path, hint="expected YouTube-VIS annotations at DIR/annotations/; `kanva world generate --clips ...` writes them")
    folder = root / "clips" / split
    categories = _parse_categories(_list_field(data, "categories", path), path)
    clips: dict[int, Clip] = {}
    for i, v in enumerate(_list_field(data, "videos", path)):
        where = f"videos[{i}]"
        if not isinstance(v, dict) or not isinstance(v.get("id"), int):
            raise KanvaError(f"{path}: {where}.id must be an integer")
        names = v.get("file_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise KanvaError(f"{path}: {where}.file_names must be a non-empty list of frame file names")
        w, h = v.get("width"), v.get("height")
        if not (_num(w) and _num(h) and w > 0 and h > 0):
            raise KanvaError(f"{path}: {where}.width/height must be positive numbers, got {w!r}/{h!r}")
        if v["id"] in clips:
            raise KanvaError(f"{path}: {where}.id {v['id']} is used by an earlier video")
        video = v.get("video")
        clips[v["id"]] = Clip(v["id"], int(w), int(h), [folder / n for n in names],
                              folder / video if isinstance(video, str) else None, v.get("scene"), v.get("fps"))
    for i, a in enumerate(_list_field(data, "annotations", path)):
        where = f"annotations[{i}]"
        if not isinstance(a, dict):
            raise KanvaError(f"{path}: {where} must be an object")
        clip = ref(clips, a, "video_id", "videos", where, path)
        cat = ref(categories, a, "category_id", "categories", where, path)
        n = clip.length
        boxes = [None if b is None else _bbox(b, f"{where}.bboxes[{t}]", path)
                 for t, b in enumerate(_per_frame(a, "bboxes", n, where, path))]
        areas = _per_frame(a, "areas", n, where, path) if "areas" in a else [None if b is None else b[2] * b[3] for b in boxes]
        for t, (b, ar) in enumerate(zip(boxes, areas)):
            if (b is None) != (ar is None) or (ar is not None and not _num(ar)):
                raise KanvaError(f"{path}: {where}.areas[{t}] must be a number where bboxes[{t}] is a box, null where it is null")
        visible = _per_frame(a, "visible", n, where, path) if "visible" in a else None
        clip.tracks.append(Track(cat[0], boxes, [None if x is None else float(x) for x in areas], a.get("color"),
                                 a.get("track"), a.get("motion"), visible))
    return ClipSet(root, split, clips, categories)
