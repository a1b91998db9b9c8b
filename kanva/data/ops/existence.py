"""Existence pairs, as POPE builds them: one question about a present object (yes), one about an absent one (no).

The absent object is drawn by one of POPE's three strategies (uniformly at random, among the most frequent
categories, or among categories that co-occur with what is present) and must not be mentioned by any caption
or printed in the image, so "no" is true of everything we know about the image. Both questions use the same
wording, so the wording carries no hint about the answer.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.unit import Unit
from kanva.words import with_article

QUESTIONS = (
    "Is there {x} in the image?",
    "Is there {x} in this picture?",
    "Does the image contain {x}?",
    "Can you see {x} in the photo?",
    "Is {x} present in the image?",
)


class Exist(Operator):
    name = "exist"
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._pair)] if ctx.usable and ctx.absent_pool else []

    def _pair(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        present = ctx.pick(rng, sorted({o.category for o in ctx.usable}), parent)
        strategy = rng.choice(ctx.cfg.exist_strategies)
        absent = ctx.draw_absent(rng, strategy)
        if absent is None:
            return []
        template = rng.choice(QUESTIONS)
        tid = f"exist.{strategy}"
        yes = Draft(template.format(x=with_article(present)), "Yes", "yesno", tid, objects=[present],
                    slots={"object": present}, params={"strategy": strategy, "pair": "yes"})
        no = Draft(template.format(x=with_article(absent)), "No", "yesno", tid, absent=[absent],
                   slots={"object": absent}, params={"strategy": strategy, "pair": "no"})
        return [yes, no]
