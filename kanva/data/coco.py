"""COCO annotations (instances + captions) of any image set, loaded into per-image records: the one COCO reader
(data operators, the vision stage and scene text, the synthetic benchmarks and `kanva world show` use it).

Reads `DIR/annotations/instances_{split}.json` and `DIR/annotations/captions_{split}.json` (the layout of both
real COCO and the knowledge world). Only standard COCO fields are required; the world's extra fields are used
when present: image `texts` (OCR questions) and `scene`, annotation `color` and `visible`.
Every malformed entry raises KanvaError naming the file and the field (`annotations[12].bbox`).

Dataset-level statistics live here too, because POPE-style absent-object sampling needs them: how many images
contain each category (popular) and which categories co-occur (adversarial).
"""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanva.data.vocab import mentioned
from kanva.errors import KanvaError
from kanva.jsonfile import read_json


@dataclass(slots=True)
class Obj:
    """One annotated object instance. `bbox` is COCO [x, y, w, h] in pixels."""

    category: str
    bbox: tuple[float, float, float, float]
    area: float
    color: str | None = None
    visible: float | None = None
    crowd: bool = False
    track: int | None = None  # world set images: the same object across a set's images has the same track

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2

    def usable(self, min_visible: float) -> bool:
        """Clear enough to ask about: not a crowd region, and visible enough where visibility is recorded."""
        return not self.crowd and (self.visible is None or self.visible >= min_visible)


@dataclass(slots=True)
class Text:
    """A printed word in the image (world field `texts`)."""

    text: str
    bbox: tuple[float, float, float, float]


@dataclass(slots=True)
class ImageRec:
    """Everything the operators may know about one image: objects, captions, texts."""

    id: int
    file_name: str
    width: int
    height: int
    objects: list[Obj] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    scene: str | None = None
    # Derived once at load (the operators read them for every unit).
    counts: dict[str, int] = field(default_factory=dict)
    caption_mentions: frozenset[str] = frozenset()
    # Where the objects come from (kanva/data/image_sources.py): "coco" (annotated boxes), "text" (only the
    # categories its samples' answers name, in `named`; no boxes, no counts) or "none" (nothing known).
    grounding: str = "coco"
    named: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """The join key with LLaVA samples: the file's base name."""
        return posixpath.basename(self.file_name.replace("\\", "/"))

    def singles(self) -> list[Obj]:
        """Objects that are the only instance of their category (so 'the dog' refers to exactly one thing)."""
        return [o for o in self.objects if self.counts[o.category] == 1 and not o.crowd]


@dataclass
class CocoSet:
    """The images of one split, indexed by id and by file base name, plus dataset statistics."""

    root: Path
    split: str
    images: dict[int, ImageRec]
    categories: dict[int, tuple[str, str]]  # id -> (name, supercategory)
    image_freq: Counter  # category -> number of images containing it
    cooccur: dict[str, Counter]  # category -> Counter of categories in the same images
    text_vocab: tuple[str, ...]  # every printed word in the split, sorted (distractors for OCR questions)
    colors: tuple[str, ...]  # every recorded colour, sorted (distractors for colour questions)
    by_key: dict[str, int] = field(default_factory=dict)

    @property
    def image_dir(self) -> Path:
        return self.root / self.split

    @property
    def category_names(self) -> list[str]:
        return [name for name, _ in self.categories.values()]

    @property
    def category_ids(self) -> dict[str, int]:
        """name -> id (COCO names are unique)."""
        return {name: cid for cid, (name, _) in self.categories.items()}

    def supercategory(self, name: str) -> str | None:
        for n, sup in self.categories.values():
            if n == name:
                return sup
        return None

    def popular(self) -> list[str]:
        """Categories by how many images contain them, most first (ties by name: deterministic)."""
        return [c for c, _ in sorted(self.image_freq.items(), key=lambda kv: (-kv[1], kv[0]))]

    def lookup(self, image_path: str) -> ImageRec | None:
        iid = self.by_key.get(posixpath.basename(image_path.replace("\\", "/")))
        return None if iid is None else self.images[iid]


def _list_field(data: Any, key: str, path: Path) -> list:
    if not isinstance(data, dict):
        raise KanvaError(f"{path}: expected a JSON object with '{key}', got {type(data).__name__}")
    value = data.get(key)
    if not isinstance(value, list):
        raise KanvaError(f"{path}: field '{key}' must be a list, got {type(value).__name__}")
    return value


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bbox(value: Any, where: str, path: Path) -> tuple[float, float, float, float]:
    if not (isinstance(value, list) and len(value) == 4 and all(_num(v) for v in value)):
        raise KanvaError(f"{path}: {where}.bbox must be [x, y, w, h] (4 numbers), got {value!r}")
    x, y, w, h = (float(v) for v in value)
    if w < 0 or h < 0:
        raise KanvaError(f"{path}: {where}.bbox has a negative width or height: {value!r}")
    return x, y, w, h


def ref(table: dict, entry: dict, key: str, table_name: str, where: str, path: Path) -> Any:
    """`table[entry[key]]`, or a KanvaError naming the entry's field and the list it should be in."""
    got = table.get(entry.get(key))
    if got is None:
        raise KanvaError(f"{path}: {where}.{key} {entry.get(key)!r} is not in '{table_name}'")
    return got


def _parse_images(raw: list, path: Path) -> dict[int, ImageRec]:
    images: dict[int, ImageRec] = {}
    for i, im in enumerate(raw):
        where = f"images[{i}]"
        if not isinstance(im, dict):
            raise KanvaError(f"{path}: {where} must be an object")
        iid, fname = im.get("id"), im.get("file_name")
        if not isinstance(iid, int) or isinstance(iid, bool):
            raise KanvaError(f"{path}: {where}.id must be an integer, got {iid!r}")
        if not isinstance(fname, str) or not fname:
            raise KanvaError(f"{path}: {where}.file_name must be a non-empty string, got {fname!r}")
        w, h = im.get("width"), im.get("height")
        if not (_num(w) and _num(h) and w > 0 and h > 0):
            raise KanvaError(f"{path}: {where}.width/height must be positive numbers, got {w!r}/{h!r}")
        if iid in images:
            raise KanvaError(f"{path}: {where}.id {iid} is used by an earlier image")
        texts = []
        for j, t in enumerate(im.get("texts") or []):
            if not isinstance(t, dict) or not isinstance(t.get("text"), str):
                raise KanvaError(f"{path}: {where}.texts[{j}] must be {{'text': str, 'bbox': [x, y, w, h]}}")
            texts.append(Text(t["text"], _bbox(t.get("bbox"), f"{where}.texts[{j}]", path)))
        scene = im.get("scene")
        if scene is not None and not isinstance(scene, str):
            raise KanvaError(f"{path}: {where}.scene must be a string, got {scene!r}")
        images[iid] = ImageRec(iid, fname, int(w), int(h), texts=texts, scene=scene)
    return images


def _parse_categories(raw: list, path: Path) -> dict[int, tuple[str, str]]:
    cats: dict[int, tuple[str, str]] = {}
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise KanvaError(f"{path}: categories[{i}] must have an integer 'id' and a string 'name', got {c!r}")
        cats[c["id"]] = (c["name"], str(c.get("supercategory") or ""))
    return cats


def load_coco(root: str | Path, split: str, captions: bool = True) -> CocoSet:
    """Load and validate `root/annotations/{instances,captions}_{split}.json` into a CocoSet.

    `captions=False`: the instances alone (the vision stage and the benchmarks read no captions, and a
    detection-only data set has none)."""
    root = Path(root)
    ipath = root / "annotations" / f"instances_{split}.json"
    cpath = root / "annotations" / f"captions_{split}.json"
    inst, caps = read_annotations(ipath, cpath, captions, hint="expected COCO annotations at DIR/annotations/")
    return coco_from_dicts(inst, caps, root, split)


def read_annotations(ipath: Path, cpath: Path, captions: bool, hint: str) -> tuple[Any, Any]:
    """The parsed instances and captions files (`captions=False`: no captions file is read, and none is
    needed); `hint` says in a missing-file error where the files come from."""
    inst = read_json(ipath, hint=hint)
    caps = read_json(cpath, hint=hint) if captions else {"annotations": []}
    return inst, caps


def coco_from_dicts(inst: Any, caps: Any, root: str | Path, split: str, ipath: Path | None = None,
                    cpath: Path | None = None) -> CocoSet:
    """A CocoSet from already-parsed instances and captions (errors name the files they would be in, by
    default the layout's `root/annotations/{instances,captions}_{split}.json`)."""
    root = Path(root)
    ipath = ipath or root / "annotations" / f"instances_{split}.json"
    cpath = cpath or root / "annotations" / f"captions_{split}.json"
    images = _parse_images(_list_field(inst, "images", ipath), ipath)
    categories = _parse_categories(_list_field(inst, "categories", ipath), ipath)

    for i, a in enumerate(_list_field(inst, "annotations", ipath)):
        where = f"annotations[{i}]"
        if not isinstance(a, dict):
            raise KanvaError(f"{ipath}: {where} must be an object")
        rec = ref(images, a, "image_id", "images", where, ipath)
        cat = ref(categories, a, "category_id", "categories", where, ipath)
        bbox = _bbox(a.get("bbox"), where, ipath)
        x, y, w, h = bbox
        # A box may touch the border (rounding); one clearly outside the image is a broken file.
        tol = 1.0 + 0.01 * max(rec.width, rec.height)
        if x < -tol or y < -tol or x + w > rec.width + tol or y + h > rec.height + tol:
            raise KanvaError(f"{ipath}: {where}.bbox {list(bbox)} lies outside image {rec.id} "
                             f"({rec.width}x{rec.height})")
        area = a.get("area", w * h)
        if not _num(area):
            raise KanvaError(f"{ipath}: {where}.area must be a number, got {area!r}")
        color = a.get("color")
        if color is not None and not isinstance(color, str):
            raise KanvaError(f"{ipath}: {where}.color must be a string or null, got {color!r}")
        visible = a.get("visible")
        if visible is not None and not _num(visible):
            raise KanvaError(f"{ipath}: {where}.visible must be a number, got {visible!r}")
        track = a.get("track")
        if track is not None and (not isinstance(track, int) or isinstance(track, bool)):
            raise KanvaError(f"{ipath}: {where}.track must be an integer, got {track!r}")
        rec.objects.append(Obj(cat[0], bbox, float(area), color or None,
                               None if visible is None else float(visible), bool(a.get("iscrowd", 0)), track))

    for i, a in enumerate(_list_field(caps, "annotations", cpath)):
        where = f"annotations[{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("caption"), str):
            raise KanvaError(f"{cpath}: {where}.caption must be a string")
        rec = images.get(a.get("image_id"))
        if rec is None:
            raise KanvaError(f"{cpath}: {where}.image_id {a.get('image_id')!r} is not in {ipath.name}")
        rec.captions.append(a["caption"].strip())
    return index_records(root, split, images, categories, ipath)


def index_records(root: Path, split: str, images: dict[int, ImageRec], categories: dict[int, tuple[str, str]],
                  ipath: Path) -> CocoSet:
    """A CocoSet of records whose objects and captions are filled in: each record's counts and caption
    mentions, the dataset statistics and the base-name index (two records sharing a base name are an error
    naming `ipath`)."""
    freq: Counter = Counter()
    cooccur: dict[str, Counter] = {}
    texts: set[str] = set()
    colors: set[str] = set()
    by_key: dict[str, int] = {}
    for rec in images.values():
        rec.counts = dict(Counter(o.category for o in rec.objects))
        rec.caption_mentions = frozenset(c for cap in rec.captions for c in mentioned(cap))
        present = sorted(rec.counts)
        freq.update(present)
        for c in present:
            row = cooccur.setdefault(c, Counter())
            row.update(o for o in present if o != c)
        texts.update(t.text for t in rec.texts)
        colors.update(o.color for o in rec.objects if o.color)
        if rec.key in by_key:
            other = images[by_key[rec.key]].file_name
            raise KanvaError(f"{ipath}: images {other!r} and {rec.file_name!r} share the base name {rec.key!r}; "
                             "LLaVA samples are joined to images by base name")
        by_key[rec.key] = rec.id
    return CocoSet(root, split, images, categories, freq, cooccur, tuple(sorted(texts)), tuple(sorted(colors)),
                   by_key)
