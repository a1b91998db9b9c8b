"""A world split read as scenes: which objects each image shows, where, in what colour, and its texts.

Reads the COCO files `kanva world generate` writes (docs/design.md): `WORLD/annotations/instances_<split>.json`
with images in `WORLD/<split>/`. Kanva's extra fields are used when present: image `texts`
([{"text", "bbox"}]), annotation `color` (a recorded fact or null) and `visible` (unoccluded fraction).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from kanva.errors import KanvaError

# An object counts as "shown" (a yes-answer) only when at least this much of it is unoccluded; a
# category counts as absent (a no-answer) only when no instance at all is annotated.
VISIBLE = 0.5


@dataclass(frozen=True)
class Obj:
    category: str
    bbox: tuple[float, float, float, float]  # x, y, w, h
    color: str | None
    visible: float


@dataclass(frozen=True)
class Scene:
    file_name: str
    path: Path
    width: int
    height: int
    objects: tuple[Obj, ...]
    texts: tuple[str, ...]

    @property
    def present(self) -> set[str]:
        """Categories with any instance (even occluded): never asked as absent."""
        return {o.category for o in self.objects}

    @property
    def shown(self) -> list[str]:
        """Categories with a clearly visible instance, in a stable order."""
        return sorted({o.category for o in self.objects if o.visible >= VISIBLE})

    def instances(self, category: str) -> list[Obj]:
        return [o for o in self.objects if o.category == category]


@dataclass
class WorldSplit:
    scenes: list[Scene]
    categories: list[str]  # the 80 (or however many the file lists), in file order
    frequency: Counter  # category -> images showing it (POPE "popular")
    cooccur: Counter  # (a, b) sorted -> images with both (POPE "adversarial")
    colors: list[str]  # colours recorded anywhere in the split
    texts: list[str]  # texts printed anywhere in the split
    source: Path

    @property
    def vocabulary(self) -> list[str]:
        """Categories that occur in this split: what negatives are drawn from."""
        return sorted(self.frequency)


def _need(obj: dict, key: str, typ, where: str):
    v = obj.get(key)
    if not isinstance(v, typ) or isinstance(v, bool):
        raise KanvaError(f"{where}: missing or mistyped {key!r}")
    return v


def load_world_split(world: Path, split: str = "test") -> WorldSplit:
    world = Path(world)
    ann_path = world / "annotations" / f"instances_{split}.json"
    if not ann_path.is_file():
        raise KanvaError(f"{ann_path}: not found (a world folder from `kanva world generate`, split {split!r})")
    try:
        coco = json.loads(ann_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise KanvaError(f"{ann_path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    cats = {}
    for c in coco.get("categories") or []:
        cats[_need(c, "id", int, f"{ann_path} category")] = _need(c, "name", str, f"{ann_path} category {c.get('id')}")
    if not cats:
        raise KanvaError(f"{ann_path}: no categories")
    by_image: dict[int, list[Obj]] = {}
    for a in coco.get("annotations") or []:
        where = f"{ann_path} annotation {a.get('id')}"
        cid = _need(a, "category_id", int, where)
        if cid not in cats:
            raise KanvaError(f"{where}: unknown category_id {cid}")
        bbox = _need(a, "bbox", list, where)
        if len(bbox) != 4:
            raise KanvaError(f"{where}: bbox must be [x, y, w, h]")
        color = a.get("color")
        by_image.setdefault(_need(a, "image_id", int, where), []).append(
            Obj(cats[cid], tuple(float(x) for x in bbox), color if isinstance(color, str) and color else None,
                float(a.get("visible", 1.0)))
        )
    scenes = []
    for im in coco.get("images") or []:
        where = f"{ann_path} image {im.get('id')}"
        fname = _need(im, "file_name", str, where)
        texts = tuple(
            t["text"] for t in im.get("texts") or [] if isinstance(t, dict) and isinstance(t.get("text"), str) and t["text"].strip()
        )
        scenes.append(
            Scene(fname, world / split / fname, int(im.get("width", 0)), int(im.get("height", 0)),
                  tuple(by_image.get(_need(im, "id", int, where), [])), texts)
        )
    scenes.sort(key=lambda s: s.file_name)
    frequency: Counter = Counter()
    cooccur: Counter = Counter()
    for s in scenes:
        present = sorted(s.present)
        frequency.update(present)
        cooccur.update(combinations(present, 2))
    colors = sorted({o.color for s in scenes for o in s.objects if o.color})
    texts = sorted({t for s in scenes for t in s.texts})
    return WorldSplit(scenes, list(cats.values()), frequency, cooccur, colors, texts, ann_path)
