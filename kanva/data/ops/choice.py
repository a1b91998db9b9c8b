"""Multiple choice with four options: the correct letter is uniform over A-D, distractors are plausible.

Plausible means hard to rule out without looking: for "which object is in the image" the distractors are the
KB siblings of the right answer that are absent from the image (and from its captions), then objects that
co-occur with what is present, then popular ones. A parent with a short answer and a list of wrong answers
(counts, colours, knowledge facts, printed words) is recast into multiple choice with its own distractors.
With `mc_circular`, all four rotations of the options are emitted (each answer letter once), as MMBench's
circular evaluation asks.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.geometry import ALL_REGIONS, region
from kanva.data.unit import LETTERS, Unit
from kanva.words import number_word


def make_mc(stem: str, correct: str, distractors: list[str], rng: random.Random, circular: bool, template: str,
            objects: list[str] | None = None, absent: list[str] | None = None, slots: dict | None = None,
            facts: list | None = None, params: dict | None = None) -> list[Draft]:
    """Drafts for a 4-option question: correct at a uniform letter (or at every letter when circular)."""
    options = list(distractors[:3])
    rng.shuffle(options)
    options.insert(rng.randrange(4), correct)
    out = []
    for r in range(4) if circular else (0,):
        opts = options[r:] + options[:r]
        p = dict(params or {})
        if circular:
            p["rotation"] = r
        out.append(Draft(stem, LETTERS[opts.index(correct)], "mc", template, objects=list(objects or []),
                         absent=list(absent or []), options=opts, slots=dict(slots or {}),
                         facts=[list(f) for f in facts or []], params=p))
    return out


def object_distractors(ctx: Context, correct: str, rng: random.Random, n: int = 3) -> list[str]:
    """Absent categories that look like good guesses for `correct`: KB siblings first, then co-occurring."""
    pool = set(ctx.absent_pool)
    sib = [c for c in ctx.kb.siblings(correct) if c in pool]
    rng.shuffle(sib)
    out = sib[:n]
    for source in (ctx.adversarial[:8], ctx.popular_absent[:8], ctx.absent_pool):
        rest = [c for c in source if c not in out]
        rng.shuffle(rest)
        out += rest[: n - len(out)]
        if len(out) >= n:
            break
    return out[:n]


PRESENT = ("Which of the following objects appears in the image?", "Which of these can be seen in the picture?",
           "Which object is present in this photo?")
ABSENT = ("Which of the following objects is not in the image?", "Which of these does the picture not show?")
REGION = ("Where in the image is the {c}?", "In which part of the picture is the {c} located?")


class Choice(Operator):
    name = "choice"

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        opts: list[Variant] = []
        wrong = parent.params.get("wrong") or ()
        if parent.fmt == "short" and (len(wrong) >= 4 or (len(wrong) == 3 and parent.answer not in wrong)):
            opts.append((2.0, self._recast))
        if ctx.usable and len(ctx.absent_pool) >= 3:
            opts.append((1.0, self._present))
        if len(ctx.present) >= 3 and ctx.absent_pool:
            opts.append((0.6, self._absent))
        if ctx.memo("located", lambda: any(region(o, ctx.rec) for o in ctx.singles.values())):
            opts.append((0.6, self._region))
        return opts

    def _recast(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        wrong = [w for w in dict.fromkeys(parent.params["wrong"]) if w != parent.answer]
        distractors = rng.sample(wrong, 3)
        names = set(ctx.coco.category_names)
        absent = list(parent.absent) + [w for w in distractors if w in names]
        correct = parent.answer
        words = ctx.cfg.count_option_words  # drawn only when set, so the default draws as before
        if parent.template == "count" and words and rng.random() < words:
            correct, distractors = number_word(int(correct)), [number_word(int(w)) for w in distractors]
        return make_mc(parent.question, correct, distractors, rng, ctx.cfg.mc_circular, "choice.recast",
                       objects=list(parent.objects), absent=absent, slots=dict(parent.slots),
                       facts=parent.facts, params={"from": parent.template})

    def _present(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        correct = ctx.pick(rng, sorted({o.category for o in ctx.usable}), parent)
        distractors = object_distractors(ctx, correct, rng)
        if len(distractors) < 3:
            return []
        return make_mc(rng.choice(PRESENT), correct, distractors, rng, ctx.cfg.mc_circular, "choice.present",
                       objects=[correct], absent=distractors)

    def _absent(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        shown = rng.sample(ctx.present, 3)
        missing = object_distractors(ctx, rng.choice(shown), rng, n=1)
        if not missing:
            return []
        return make_mc(rng.choice(ABSENT), missing[0], shown, rng, ctx.cfg.mc_circular, "choice.absent",
                       objects=shown, absent=missing)

    def _region(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        located = {c: region(o, ctx.rec) for c, o in ctx.singles.items()}
        cats = sorted(c for c, r in located.items() if r)
        cat = ctx.pick(rng, cats, parent)
        correct = located[cat]
        others = [r for r in ALL_REGIONS if r != correct]
        return make_mc(rng.choice(REGION).format(c=cat), correct, rng.sample(others, 3), rng, ctx.cfg.mc_circular,
                       "choice.region", objects=[cat], slots={"object": cat})

