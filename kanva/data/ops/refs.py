"""Ways to point at an object without naming it: "the animal in the picture", "the object on the far left".

A knowledge question that names its object ("What is the dog used for?") can be answered without the image.
Pointing at the object by a visual property instead makes the question need one visual fact (which object is
that?) and one knowledge fact (what is it used for?), which is the point of knowledge-aware evolution.
"""

from __future__ import annotations

from functools import lru_cache

from kanva.data.ops.base import Context
from kanva.data.ops.geometry import extreme_phrase
from kanva.data.vocab import mentioned

# Hypernyms too generic to ask about ("Is the animal a kind of object?").
TRIVIAL_HYPERNYMS = frozenset({
    "object", "thing", "entity", "physical entity", "whole", "artifact", "artefact", "physical object", "item",
    "unit", "matter", "living thing", "organism", "instrumentality", "abstraction",
})


def references(ctx: Context, cat: str) -> list[str]:
    """Phrases that pick out the one instance of `cat` (or an extreme instance) without naming it."""
    return ctx.memo(("refs", cat), lambda: _references(ctx, cat))


def _references(ctx: Context, cat: str) -> list[str]:
    out = []
    noun = ctx.supercat_unique.get(cat)
    if noun:
        out.append(f"the {noun} in the picture")
    for side, o in sorted(ctx.extremes.items()):
        if o.category == cat:
            out.append(extreme_phrase(side))
    single = ctx.singles.get(cat)
    others = [o for o in ctx.rec.objects if o is not single]
    # "the red object" is unambiguous only if every other object's colour is known (the world records colours
    # only where it varies them; an unrecorded stop sign is red too) and none of them has this one.
    if single is not None and single.color and all(o.color and o.color != single.color for o in others):
        out.append(f"the {single.color} object")
    return out


def hypernyms(ctx: Context, cat: str) -> list[str]:
    """Non-trivial hypernyms of `cat` that do not repeat its own name."""
    ci = ctx.kb.get(cat)
    return list(_askable(cat, ci.hypernyms)) if ci is not None else []


@lru_cache(maxsize=4096)
def _askable(cat: str, hyps: tuple[str, ...]) -> tuple[str, ...]:
    # A hypernym that is also a word for the category itself ("plant" for potted plant) gives the answer away.
    return tuple(h for h in hyps
                 if h not in TRIVIAL_HYPERNYMS and h != cat and cat not in h.split() and cat not in mentioned(h))
