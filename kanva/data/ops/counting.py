"""Counting: "How many dogs are there?" answered with the annotation count (and "0" for a truly absent object).

Only categories whose every instance is a usable, visible object are counted: a half-hidden instance makes
the count a guess. The zero variant uses an absent object that no caption mentions either.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator
from kanva.data.unit import Unit
from kanva.words import number_word, plural

QUESTIONS = (
    "How many {p} are there in the image?",
    "How many {p} can you see in this picture?",
    "How many {p} are visible in the photo?",
    "What is the number of {p} in the image?",
    "Count the {p} in this image. How many are there?",
)
ZERO_SHARE = 0.15  # share of counting questions about an absent object (answer 0)
YESNO_SHARE = 0.4  # share asked as a yes/no claim about the number (half true, half false)
# A claim about the number ("Are there three dogs in the image?"); the singular reads "only one".
CLAIM_MANY = ("Are there {n} {p} in the image?", "Are there exactly {n} {p} in this picture?",
              "Does the image show {n} {p}?")
CLAIM_ONE = ("Is there only one {c} in the image?", "Is there exactly one {c} in this picture?",
             "Does the image show just one {c}?")


def wrong_counts(n: int) -> list[str]:
    """Plausible wrong counts near n (for multiple-choice recasts)."""
    out = []
    for d in (1, -1, 2, -2, 3, 4):
        m = n + d
        if m >= 0 and str(m) not in out:
            out.append(str(m))
    return out


def _hard_wrong_count(ctx: Context, cat: str, n: int, rng: random.Random) -> int:
    """A wrong number for a claim about `cat` (n of them) that only reading `cat`'s own number rejects: another
    category's count in the same image, else one off."""
    held = sorted({m for c, m in ctx.rec.counts.items() if c != cat and m != n})
    return rng.choice(held or [m for m in (n - 1, n + 1) if m >= 1])


class Count(Operator):
    name = "count"
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list:
        if not ctx.countable:
            return []
        opts = [(1.0 - ZERO_SHARE - YESNO_SHARE, self._present), (YESNO_SHARE, self._claim)]
        if ctx.absent_pool:
            opts.append((ZERO_SHARE, self._zero))
        return opts

    def _present(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat = ctx.pick(rng, sorted(ctx.countable), parent)
        n = ctx.countable[cat]
        if parent.template.startswith("count") and cat in parent.objects:
            return []  # the parent already counted this: no gain
        q = rng.choice(QUESTIONS).format(p=plural(cat))
        return [Draft(q, str(n), "short", "count", objects=[cat], slots={"object": plural(cat), "count": n},
                      params={"wrong": wrong_counts(n)})]

    def _claim(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        """'Are there three dogs?': true for the annotated count, false for another count (never zero: that is
        an existence question; EvolveConfig.hard_false_claims: how often one only reading rejects)."""
        cat = ctx.pick(rng, sorted(ctx.countable), parent)
        n = ctx.countable[cat]
        truth = rng.random() < 0.5
        if truth:
            asked = n
        elif ctx.hard_false_claim(rng):
            asked = _hard_wrong_count(ctx, cat, n, rng)
        else:
            asked = int(rng.choice([w for w in wrong_counts(n) if w != "0"]))
        if number_word(asked).isdigit():  # a claim spells its number
            return []
        if asked == 1:
            q = rng.choice(CLAIM_ONE).format(c=cat)
        else:
            q = rng.choice(CLAIM_MANY).format(n=number_word(asked), p=plural(cat))
        return [Draft(q, "Yes" if truth else "No", "yesno", "count.yesno", objects=[cat],
                      slots={"object": plural(cat), "count": n, "asked": asked})]

    def _zero(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat = ctx.draw_absent(rng, rng.choice(ctx.cfg.exist_strategies))
        if cat is None:
            return []
        q = rng.choice(QUESTIONS).format(p=plural(cat))
        return [Draft(q, "0", "short", "count.zero", absent=[cat], slots={"object": plural(cat), "count": 0},
                      params={"wrong": ["1", "2", "3", "4"]})]
