"""OCR questions where the image has printed words (the world's `texts`): read a word, or check one is there.

A word is asked about by position only when it is the only word in that region; "no" questions use a word
printed in other images of the set (a plausible word) that is neither in this image nor in its captions.
"""

from __future__ import annotations

import random

from kanva.data.coco import Obj
from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.geometry import region, region_phrase
from kanva.data.unit import Unit

READ_ONE = ("What word is written in the image?", "What does the text in the image say?",
            "What is printed on the sign in this picture?")
READ_AT = ("What word is written in {where}?", "What does the text in {where} say?")
HAS = ('Is the word "{w}" written anywhere in the image?', 'Does the image show the word "{w}"?')


def _regions(ctx: Context) -> dict[str, str]:
    """region -> the only text in it."""
    by: dict[str, list[str]] = {}
    for t in ctx.rec.texts:
        r = region(Obj("text", t.bbox, t.bbox[2] * t.bbox[3]), ctx.rec)
        if r:
            by.setdefault(r, []).append(t.text)
    return {r: ts[0] for r, ts in by.items() if len(ts) == 1}


def _absent_words(ctx: Context) -> list[str]:
    here = {t.text.lower() for t in ctx.rec.texts}
    caps = " ".join(ctx.rec.captions).lower()
    return [w for w in ctx.coco.text_vocab if w.lower() not in here and w.lower() not in caps]


class OCR(Operator):
    name = "ocr"
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not ctx.rec.texts:
            return []
        opts: list[Variant] = [(1.0, self._has)]
        if len({t.text for t in ctx.rec.texts}) == 1:
            opts.append((1.0, self._read_one))
        elif _regions(ctx):
            opts.append((1.0, self._read_at))
        return opts

    def _wrong(self, ctx: Context, rng: random.Random) -> list[str]:
        pool = _absent_words(ctx)
        return rng.sample(pool, min(6, len(pool)))

    def _read_one(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        w = ctx.rec.texts[0].text
        return [Draft(rng.choice(READ_ONE), w, "short", "ocr.read", slots={}, params={"wrong": self._wrong(ctx, rng)})]

    def _read_at(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        regions = _regions(ctx)
        r = rng.choice(sorted(regions))
        q = rng.choice(READ_AT).format(where=region_phrase(r))
        return [Draft(q, regions[r], "short", "ocr.region", slots={"region": r},
                      params={"wrong": self._wrong(ctx, rng)})]

    def _has(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        truth = rng.random() < 0.5
        if truth:
            w = rng.choice(ctx.rec.texts).text
        else:
            pool = _absent_words(ctx)
            if not pool:
                return []
            w = rng.choice(pool)
        q = rng.choice(HAS).format(w=w)
        return [Draft(q, "Yes" if truth else "No", "yesno", "ocr.yesno", slots={"word": w})]
