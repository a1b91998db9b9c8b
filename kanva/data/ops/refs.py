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

# More wordings of the same pointers, so that knowledge questions do not all read alike.
SUPERCATEGORY_REFS = ("the {noun} in the picture", "the {noun} in this photo", "the only {noun} here")
EXTREME_REFS = {
    "far left": ("the leftmost object", "the thing furthest to the left"),
    "far right": ("the rightmost object", "the thing furthest to the right"),
    "top": ("the highest object in the picture", "the thing nearest the top"),
    "bottom": ("the lowest object in the picture", "the thing nearest the bottom"),
}


def references(ctx: Context, cat: str) -> list[str]:
    """Phrases that pick out the one instance of `cat` (or an extreme instance) without naming it."""
    return ctx.memo(("refs", cat), lambda: _references(ctx, cat))


def _references(ctx: Context, cat: str) -> list[str]:
    out = []
    noun = ctx.supercat_unique.get(cat)
    if noun:
        out += [w.format(noun=noun) for w in SUPERCATEGORY_REFS]
    for side, o in sorted(ctx.extremes.items()):
        if o.category == cat:
            out += [extreme_phrase(side), *EXTREME_REFS[side]]
    single = ctx.singles.get(cat)
    others = [o for o in ctx.rec.objects if o is not single]
    # "the red object" is unambiguous only if every other object's colour is known (the world records colours
    # only where it varies them; an unrecorded stop sign is red too) and none of them has this one.
    if single is not None and single.color and all(o.color and o.color != single.color for o in others):
        out.append(f"the {single.color} object")
    return out


def hypernyms(ctx: Context, cat: str) -> list[str]:
    """Askable hypernyms of `cat` (the view keeps only those, see kbview.py) that do not repeat its own name."""
    ci = ctx.kb.get(cat)
    return list(_askable(cat, ci.hypernyms)) if ci is not None else []


@lru_cache(maxsize=4096)
def _askable(cat: str, hyps: tuple[str, ...]) -> tuple[str, ...]:
    # A hypernym that is also a word for the category itself ("plant" for potted plant) gives the answer away.
    return tuple(h for h in hyps if h != cat and cat not in h.split() and cat not in mentioned(h))
