"""A world split read as scenes: which objects each image shows, where, in what colour, and its texts.

Reads `WORLD/annotations/instances_<split>.json` (images in `WORLD/<split>/`) with the one COCO reader,
kanva/data/coco.py, which also reads Kanva's extra fields: image `texts`, annotation `color` and `visible`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

from kanva.data.coco import Obj, load_coco
from kanva.errors import KanvaError

# An object counts as "shown" (a yes-answer) only when at least this much of it is unoccluded; a
# category counts as absent (a no-answer) only when no instance at all is annotated.
VISIBLE = 0.5


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


def load_world_split(world: Path, split: str = "test") -> WorldSplit:
    """The split's scenes, from the COCO reader every package uses (kanva/data/coco.py); captions are not needed."""
    world = Path(world)
    coco = load_coco(world, split, captions=False)
    ann_path = world / "annotations" / f"instances_{split}.json"
    if not coco.categories:
        raise KanvaError(f"{ann_path}: no categories")
    scenes = []
    for im in coco.images.values():
        # An object without a recorded visibility is taken as wholly visible (real COCO has no such field).
        objects = tuple(o if o.visible is not None else replace(o, visible=1.0) for o in im.objects)
        texts = tuple(t.text for t in im.texts if t.text.strip())
        scenes.append(Scene(im.file_name, world / split / im.file_name, im.width, im.height, objects, texts))
    scenes.sort(key=lambda s: s.file_name)
    frequency: Counter = Counter()
    cooccur: Counter = Counter()
    for s in scenes:
        present = sorted(s.present)
        frequency.update(present)
        cooccur.update(combinations(present, 2))
    colors = sorted({o.color for s in scenes for o in s.objects if o.color})
    texts = sorted({t for s in scenes for t in s.texts})
    return WorldSplit(scenes, coco.category_names, frequency, cooccur, colors, texts, ann_path)
