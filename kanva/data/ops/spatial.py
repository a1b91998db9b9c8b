"""Relative position and relative size of two single objects, asked only where the relation clearly holds.

Yes/no questions ask either the true relation (yes) or its opposite (no), so "no" is as clear as "yes"; size
questions compare areas in the image (not real-world size) and need a ratio of at least `size_ratio`.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.geometry import RELATIONS
from kanva.data.unit import Unit
from kanva.words import join_list

WHICH = {  # relation of a to b -> question whose answer is a
    "to the left of": "Which is further to the left in the image, the {x} or the {y}?",
    "to the right of": "Which is further to the right in the image, the {x} or the {y}?",
    "above": "Which is higher up in the image, the {x} or the {y}?",
    "below": "Which is lower down in the image, the {x} or the {y}?",
}
IS_REL = ("Is the {a} {rel} the {b}?", "In the image, is the {a} {rel} the {b}?")
WHERE = ("Where is the {a} relative to the {b}?", "Describe where the {a} is compared with the {b}.")
LARGER = ("Which appears larger in the image, the {x} or the {y}?",
          "Which takes up more of the picture, the {x} or the {y}?")
SMALLER = ("Which appears smaller in the image, the {x} or the {y}?",
           "Which takes up less of the picture, the {x} or the {y}?", "Which looks smaller here, the {x} or the {y}?")
LARGER_YN = ("Does the {a} appear larger than the {b} in the image?", "Does the {a} look bigger than the {b}?",
             "In this picture, is the {a} larger than the {b}?")


def _pick_pair(ctx: Context, parent: Unit, rng: random.Random, pairs: list) -> tuple:
    focus = set(ctx.focus(parent))
    preferred = [p for p in pairs if p[0].category in focus or p[1].category in focus]
    if preferred and rng.random() < ctx.cfg.focus_bias:
        return rng.choice(preferred)
    return rng.choice(pairs)


def _asked_pairs(ctx: Context) -> list[tuple]:
    """The image's pairs with a clear relation among those the config asks (EvolveConfig.position_relations)."""
    asked = ctx.cfg.position_relations
    if asked is None:
        return ctx.pairs
    return ctx.memo("position_pairs", lambda: [(a, b, kept) for a, b, rels in ctx.pairs
                                               if (kept := [r for r in rels if r in asked])])


class Position(Operator):
    name = "position"
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not _asked_pairs(ctx):
            return []
        return [(1.0, self._yesno), (0.6, self._which), (0.4, self._where)]

    def follow_up(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        return self._yesno(ctx, parent, rng) if _asked_pairs(ctx) else []

    def _yesno(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        a, b, rels = _pick_pair(ctx, parent, rng, _asked_pairs(ctx))
        rel = rng.choice(rels)
        truth = rng.random() < 0.5
        asked = rel if truth else RELATIONS[rel]
        q = rng.choice(IS_REL).format(a=a.category, b=b.category, rel=asked)
        return [Draft(q, "Yes" if truth else "No", "yesno", "position.yesno", objects=[a.category, b.category],
                      slots={"a": a.category, "b": b.category, "relation": asked})]

    def _which(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        a, b, rels = _pick_pair(ctx, parent, rng, _asked_pairs(ctx))
        rel = rng.choice(rels)
        x, y = (a.category, b.category) if rng.random() < 0.5 else (b.category, a.category)
        q = WHICH[rel].format(x=x, y=y)
        return [Draft(q, a.category, "short", "position.which", objects=[a.category, b.category],
                      slots={"a": a.category, "b": b.category})]

    def _where(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        a, b, rels = _pick_pair(ctx, parent, rng, _asked_pairs(ctx))
        q = rng.choice(WHERE).format(a=a.category, b=b.category)
        ans = f"The {a.category} is {join_list(rels)} the {b.category}."
        return [Draft(q, ans, "open", "position.where", objects=[a.category, b.category],
                      slots={"a": a.category, "b": b.category})]


class Size(Operator):
    name = "size"
    parent_free = True

    def _pairs(self, ctx: Context) -> list[tuple]:
        singles = sorted(ctx.singles.values(), key=lambda o: o.category)
        r = ctx.cfg.size_ratio
        return [(a, b) for a in singles for b in singles
                if a is not b and a.area > 0 and b.area > 0 and a.area >= r * b.area]

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._which), (0.7, self._yesno)] if len(ctx.singles) >= 2 and self._pairs(ctx) else []

    def _choose(self, ctx: Context, parent: Unit, rng: random.Random) -> tuple:
        pairs = [(a, b, ["larger"]) for a, b in self._pairs(ctx)]
        a, b, _ = _pick_pair(ctx, parent, rng, pairs)
        return a, b

    def _which(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        big, small = self._choose(ctx, parent, rng)
        x, y = (big.category, small.category) if rng.random() < 0.5 else (small.category, big.category)
        if rng.random() < 0.7:
            q, ans = rng.choice(LARGER).format(x=x, y=y), big.category
        else:
            q, ans = rng.choice(SMALLER).format(x=x, y=y), small.category
        return [Draft(q, ans, "short", "size.which", objects=[big.category, small.category],
                      slots={"a": x, "b": y}, params={"ratio": round(big.area / small.area, 2)})]

    def _yesno(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        big, small = self._choose(ctx, parent, rng)
        truth = rng.random() < 0.5
        a, b = (big, small) if truth else (small, big)
        q = rng.choice(LARGER_YN).format(a=a.category, b=b.category)
        return [Draft(q, "Yes" if truth else "No", "yesno", "size.yesno", objects=[big.category, small.category],
                      slots={"a": a.category, "b": b.category}, params={"ratio": round(big.area / small.area, 2)})]
