"""False-premise questions: they presuppose an object that is absent, and the answer rejects the premise.

"What color is the giraffe in the image?" -> "There is no giraffe in the image." Training on these teaches a
model to check presence before describing, the behaviour POPE measures. The absent object is one no caption
mentions and the image does not print, drawn like POPE's absent objects.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.unit import Unit
from kanva.words import counted, join_list, plural, with_article

QUESTIONS = (
    "What color is the {x} in the image?",
    "What is the {x} next to the {p} doing?",
    "Why is the {x} placed near the {p}?",
    "How big is the {x} in this picture?",
    "Where exactly is the {x} in the image?",
    "What is the {x} in the photo made of?",
)
ANSWERS = (
    "There is no {x} in the image.",
    "The image does not show {ax}, so the question does not apply.",
    "I don't see any {xp} in this picture. It shows {scene}.",
)


class Premise(Operator):
    name = "premise"
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._premise)] if ctx.usable and ctx.absent_pool else []

    def _premise(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        x = ctx.draw_absent(rng, rng.choice(ctx.cfg.exist_strategies))
        if x is None:
            return []
        p = ctx.pick(rng, sorted({o.category for o in ctx.usable}), parent)
        qt, at = rng.choice(QUESTIONS), rng.choice(ANSWERS)
        shown = ctx.present[:4]
        scene = join_list([counted(c, ctx.rec.counts[c]) for c in shown])
        objects = ([p] if "{p}" in qt else []) + ([c for c in shown if c != p] if "{scene}" in at else [])
        return [Draft(qt.format(x=x, p=p), at.format(x=x, ax=with_article(x), xp=plural(x), scene=scene), "open",
                      "premise", objects=objects, absent=[x], slots={"object": x})]
