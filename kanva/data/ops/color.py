"""Colour questions, only where the annotation records the colour (the world sets `color` where it varies it,
so the answer cannot be guessed from the category: "What color is the car?" has no default answer).
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.unit import Unit
from kanva.words import with_article

WHAT = ("What color is the {c}?", "What is the color of the {c} in the image?", "Which color does the {c} have?")
IS = ("Is the {c} {color}?", "Is the {c} in the image {color}?", "Is there {a_color} {c} in the image?",
      "Can you see {a_color} {c} in this picture?")


class Color(Operator):
    name = "color"
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not any(o.color for o in ctx.singles.values()):
            return []
        return [(1.0, self._what), (0.8, self._is)]

    def _choose(self, ctx: Context, parent: Unit, rng: random.Random) -> tuple[str, str]:
        cats = sorted(c for c, o in ctx.singles.items() if o.color)
        cat = ctx.pick(rng, cats, parent)
        return cat, ctx.singles[cat].color or ""

    def _what(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat, color = self._choose(ctx, parent, rng)
        wrong = [c for c in ctx.coco.colors if c != color]
        return [Draft(rng.choice(WHAT).format(c=cat), color, "short", "color.what", objects=[cat],
                      slots={"object": cat}, params={"wrong": wrong})]

    def _is(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat, color = self._choose(ctx, parent, rng)
        truth = rng.random() < 0.5
        asked = color
        if not truth:
            others = [c for c in ctx.coco.colors if c != color]
            if not others:
                return []
            # another object's colour in the image, where there is one (EvolveConfig.hard_false_claims)
            held = sorted({o.color for o in ctx.rec.objects if o.color and o.color != color})
            asked = rng.choice(held) if held and ctx.hard_false_claim(rng) else rng.choice(others)
        q = rng.choice(IS).format(c=cat, color=asked, a_color=with_article(asked))
        return [Draft(q, "Yes" if truth else "No", "yesno", "color.yesno", objects=[cat],
                      slots={"object": cat, "color": asked})]
