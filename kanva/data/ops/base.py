"""What every operator sees (the image context) and the operator interface.

An operator turns a parent unit into candidate children. Rule operators compute the children from the
annotations and the knowledge base, so their answers are correct by construction; LLM operators (ops/llm.py)
ask a backend and are judged by elimination. `applicable` is the precondition: the evolution loop draws, by
weight, only among operators whose precondition holds for (image, parent).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kanva.data.coco import CocoSet, ImageRec, Obj
from kanva.data.config import EvolveConfig
from kanva.data.kbview import KBView
from kanva.data.ops import geometry
from kanva.data.unit import Unit
from kanva.data.vocab import mentioned


@dataclass
class Context:
    """One image (or set, or clip) with everything derived from it that operators reuse across units and rounds."""

    rec: ImageRec
    coco: CocoSet
    kb: KBView
    cfg: EvolveConfig
    popular: list[str]  # dataset categories, most frequent first (shared by all images)
    coverage: Counter = field(default_factory=Counter)  # category -> kept units about it (for breadth)
    questions: list[str] = field(default_factory=list)  # questions kept so far (shown to the breadth operator)
    shared: dict = field(default_factory=dict, repr=False)  # one dict for all images of a run (see shared_memo)
    # A multi-image set (kanva.data.sequences.ImageSet) or a clip (Clip) when the unit is about one; `rec` is
    # then the union of its images' or tracks' objects and captions (kanva/data/sequence_join.py).
    media: Any = None
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, key: object, make: Callable[[], Any]) -> Any:
        """Compute once per image: operators ask the same precondition questions for every unit and round."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def shared_memo(self, key: object, make: Callable[[], Any]) -> Any:
        """Compute once per run, for what depends only on the dataset and the KB (never on the image)."""
        if key not in self.shared:
            self.shared[key] = make()
        return self.shared[key]

    @cached_property
    def present(self) -> list[str]:
        return sorted(self.rec.counts)

    @cached_property
    def text_mentions(self) -> frozenset[str]:
        return frozenset(c for t in self.rec.texts for c in mentioned(t.text))

    @cached_property
    def absent_pool(self) -> list[str]:
        """Categories that are truly absent: not annotated, not in any caption, not printed in the image."""
        taken = set(self.rec.counts) | self.rec.caption_mentions | self.text_mentions
        return [c for c in self.coco.category_names if c not in taken]

    @cached_property
    def adversarial(self) -> list[str]:
        """Absent categories by how often they co-occur with the present ones in the dataset, most first."""
        score: Counter = Counter()
        for p in self.present:
            row = self.coco.cooccur.get(p)
            if row:
                for c, n in row.items():
                    score[c] += n
        pool = [c for c in self.absent_pool if score[c] > 0]
        return sorted(pool, key=lambda c: (-score[c], c))

    @cached_property
    def popular_absent(self) -> list[str]:
        pool = set(self.absent_pool)
        return [c for c in self.popular if c in pool]

    def hard_false_claim(self, rng: random.Random) -> bool:
        """Whether this false claim names another object's value (EvolveConfig.hard_false_claims). At share 0 it
        draws no number, so the default's output is what it was before the setting."""
        share = self.cfg.hard_false_claims
        return bool(share) and rng.random() < share

    def draw_absent(self, rng: random.Random, strategy: str, top: int = 3) -> str | None:
        """An absent category drawn as POPE does: uniformly, among the most popular, or among co-occurring."""
        if not self.absent_pool:
            return None
        if strategy == "popular" and self.popular_absent:
            return rng.choice(self.popular_absent[:top])
        if strategy == "adversarial" and self.adversarial:
            return rng.choice(self.adversarial[:top])
        return rng.choice(self.absent_pool)

    @cached_property
    def usable(self) -> list[Obj]:
        """Objects clear enough to ask about: not crowd regions, visible enough."""
        mv = self.cfg.min_visible
        return [o for o in self.rec.objects if o.usable(mv)]

    @cached_property
    def singles(self) -> dict[str, Obj]:
        """category -> its only instance, for categories with exactly one usable, well-visible instance."""
        usable_ids = {id(o) for o in self.usable}
        return {o.category: o for o in self.rec.objects
                if self.rec.counts[o.category] == 1 and id(o) in usable_ids}

    @cached_property
    def countable(self) -> dict[str, int]:
        """category -> count, where every instance is usable (a hidden instance makes the count a guess)."""
        mv = self.cfg.min_visible
        bad = {o.category for o in self.rec.objects if not o.usable(mv)}
        return {c: n for c, n in self.rec.counts.items() if c not in bad and n <= self.cfg.max_count}

    @cached_property
    def extremes(self) -> dict[str, Obj]:
        return geometry.extremes(self.rec, self.cfg.min_visible)

    @cached_property
    def pairs(self) -> list[tuple[Obj, Obj, list[str]]]:
        """(a, b, relations of a to b) for single objects of different categories with a clear relation."""
        singles = sorted(self.singles.values(), key=lambda o: o.category)
        out = []
        for a in singles:
            for b in singles:
                if a is not b:
                    rel = geometry.relations(a, b)
                    if rel:
                        out.append((a, b, rel))
        return out

    @cached_property
    def supercat_unique(self) -> dict[str, str]:
        """category -> 'the animal' style phrase, when it is the only object of its supercategory."""
        by_sup: dict[str, list[str]] = {}
        for c in self.present:
            sup = self.coco.supercategory(c) or ""
            by_sup.setdefault(sup, []).append(c)
        out = {}
        for sup, cats in by_sup.items():
            noun = SUPERCATEGORY_NOUNS.get(sup)
            if noun and len(cats) == 1 and cats[0] in self.singles:
                out[cats[0]] = noun
        return out

    def focus(self, parent: Unit) -> list[str]:
        """The parent's present objects: what evolution keeps asking about when it can."""
        return [c for c in parent.objects if c in self.rec.counts]

    def pick(self, rng: random.Random, eligible: list[str], parent: Unit) -> str:
        """One of `eligible` (non-empty), preferring the parent's objects with probability focus_bias."""
        focus = [c for c in self.focus(parent) if c in eligible]
        if focus and rng.random() < self.cfg.focus_bias:
            return rng.choice(focus)
        return rng.choice(eligible)


# Nouns for COCO supercategories that make a natural reference ("the animal in the picture").
# "person", "outdoor" and "indoor" have none: "the indoor object" is no way to point at a thing.
SUPERCATEGORY_NOUNS = {
    "vehicle": "vehicle", "animal": "animal", "accessory": "accessory", "sports": "piece of sports equipment",
    "kitchen": "kitchen item", "food": "food item", "furniture": "piece of furniture",
    "electronic": "electronic device", "appliance": "appliance",
}


@dataclass
class Draft:
    """An operator's proposed child before the loop gives it an id, lineage and round."""

    question: str
    answer: str
    fmt: str
    template: str
    objects: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    slots: dict = field(default_factory=dict)
    facts: list[list[str]] = field(default_factory=list)
    params: dict = field(default_factory=dict)


# A variant of an operator: (weight, make) with make(ctx, parent, rng) -> list[Draft].
Variant = tuple[float, Callable[[Context, Unit, random.Random], list[Draft]]]


class Operator:
    """Base of rule operators.

    `options(ctx, parent)` is the precondition: the variants that can apply to this image and parent (an empty
    list means the operator is not applicable). The loop draws an operator by weight among applicable ones,
    then a variant by its weight, and calls it. A variant may return [] when its random choices lead nowhere;
    the loop then draws again among the rest.
    """

    name = "operator"
    kind = "rule"
    # The image groundings (kanva/data/image_sources.py) under which the operator may run: most rule
    # operators need boxes and the full object list ("coco"); some need only that a named object is there.
    groundings: tuple[str, ...] = ("coco",)
    # True when options() depends on the image only, not on the parent: the loop then asks once per image.
    parent_free = False
    # follow_up(ctx, parent, rng) -> [Draft]: the one-answer question this operator asks as a turn after another
    # unit's (EvolveConfig.follow_up); None when it has none.
    follow_up = None

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:  # pragma: no cover - interface
        raise NotImplementedError
