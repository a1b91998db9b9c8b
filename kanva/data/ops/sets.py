"""Operators over multi-image sets: which image shows an object, counts per image and across the set, what
one image has that another lacks, what changed between two images, and the knowledge-aware version of
"which image" ("Which image shows an animal that lays eggs?").

Answers come from kanva/data/sequence_facts.py (the rules the benchmarks use too), so they are correct by
construction; an object "not in" an image is one that image does not have in any way (annotated, captioned
or printed), and a knowledge "no" is asked only where the KB makes it certain (as single-image
`knowledge.exists` does). `ctx.media` is the ImageSet, `ctx.rec` the union of its images.
"""

from __future__ import annotations

import random

from kanva.data import sequence_facts as F
from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.choice import make_mc
from kanva.data.ops.sequence_common import (MC_SHARE, count_drafts, distractors, fact_or_hypernym, image_label,
                                            image_options, kb_fact, knowledge_index, ordered_mc, some)
from kanva.data.sequences import ImageSet
from kanva.data.unit import Unit
from kanva.words import join_list, plural, with_article

WHICH = ("Which image shows {a}?", "In which of the images can you see {a}?", "Which picture contains {a}?",
         "Where does {a} appear: in which image?")
IN_IMAGE = ("Is there {a} in image {k}?", "Does image {k} show {a}?", "Can you see {a} in image {k}?")
COUNT_ONE = ("How many {p} are there in image {k}?", "How many {p} can you see in image {k}?",
             "Count the {p} in image {k}. How many are there?")
COUNT_ALL = ("How many {p} are there in all the images together?",
             "Counting every image, how many {p} are there in total?",
             "Across all {n} images, how many {p} can you see altogether?")
DISTINCT = ("How many different {p} appear across these images?",
            "Counting the same {c} only once, how many {p} are there across the images?")
MOST = ("Which image has the most {p}?", "In which picture are there the most {p}?")
DIFF = ("Which of these is in image {i} but not in image {j}?",
        "Which of these objects does image {i} have that image {j} lacks?",
        "Image {i} shows one of these and image {j} does not. Which one?")
DIFF_SHORT = ("What does image {i} show that image {j} does not?",
              "What can you see in image {i} that is missing from image {j}?")
CHANGE = ("What changed from image {a} to image {b}?", "What is different in image {b} compared with image {a}?",
          "How does image {b} differ from image {a}?")
CHANGE_SHORT = {
    "add": ("Which object was added in image {b}?", "What appears in image {b} that was not in image {a}?"),
    "remove": ("Which object was removed in image {b}?", "What is gone in image {b} that was in image {a}?"),
}
KNOW_IN_IMAGE = ("Is there {a} in image {k}?", "Does image {k} show {a}?")


def _set(ctx: Context) -> ImageSet:
    return ctx.media


def shown_by_image(ctx: Context) -> list[set[str]]:
    mv = ctx.cfg.min_visible
    return ctx.memo("set_shown", lambda: [F.shown_in(rec, mv) for rec in _set(ctx).images])


def _which_answer(ctx: Context, cat: str) -> str | None:
    """The right option of "Which image shows <cat>?", or None when an image has it without clearly showing it."""
    s, shown = _set(ctx), shown_by_image(ctx)
    having = [k for k in range(len(s.images)) if cat in F.mentioned_in(s, k)]
    showing = [k for k in having if cat in shown[k]]
    if showing != having:
        return None
    n = len(s.images)
    if len(showing) == 1:
        return image_label(showing[0])
    if n == 2 and len(showing) == 2:
        return "Both images"
    if not showing and n <= 3:
        return "Neither image" if n == 2 else "None of them"
    return None


def change_phrase(ch: F.Change, before: int) -> str:
    """A change in words; `before` is how many of its category the earlier image had."""
    c, many = ch.category, before > 1
    one = f"one of the {plural(c)}" if many else f"the {c}"
    if ch.op == "add":
        return f"Another {c} was added." if before else f"{with_article(c).capitalize()} was added."
    if ch.op == "remove":
        return f"{one.capitalize()} was removed."
    if ch.op == "move":
        return f"{one.capitalize()} moved to the {ch.direction}."
    return f"{one.capitalize()} changed from {ch.before} to {ch.after}."


class SetWhich(Operator):
    name = "set_which"
    groundings = ("set",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._which), (0.8, self._in_image)] if any(shown_by_image(ctx)) else []

    def _which(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        n = len(_set(ctx).images)
        cands = sorted(c for c in set().union(*shown_by_image(ctx)) if _which_answer(ctx, c))
        if n <= 3 and rng.random() < 0.2:  # now and then an object no image has
            cands = [c for c in ctx.adversarial[:3] if _which_answer(ctx, c)] or cands
        if not cands:
            return []
        cat = ctx.pick(rng, cands, parent)
        answer = _which_answer(ctx, cat)
        absent = [] if cat in ctx.rec.counts else [cat]
        return [ordered_mc(rng.choice(WHICH).format(a=with_article(cat)), image_options(n), answer, "set.which",
                         objects=[] if absent else [cat], absent=absent, slots={"object": cat})]

    def _in_image(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        s, shown = _set(ctx), shown_by_image(ctx)
        k = rng.randrange(len(s.images))
        truth = rng.random() < 0.5
        if truth:
            pool = sorted(shown[k])
        else:  # shown elsewhere in the set, else an absent object that co-occurs with what is there
            pool = sorted(c for j in range(len(s.images)) for c in shown[j] if c not in F.mentioned_in(s, k))
            pool = pool or [c for c in ctx.adversarial[:3]]
        if not pool:
            return []
        cat = ctx.pick(rng, pool, parent)
        q = rng.choice(IN_IMAGE).format(a=with_article(cat), k=k + 1)
        absent = [] if truth else [cat]
        return [Draft(q, "Yes" if truth else "No", "yesno", "set.which_yn", objects=[cat] if truth else [],
                      absent=absent, slots={"object": cat, "image": k + 1})]


class SetCount(Operator):
    name = "set_count"
    groundings = ("set",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not any(shown_by_image(ctx)):
            return []
        return [(1.0, self._one), (1.0, self._total), (0.7, self._distinct), (0.5, self._most)]

    def _counts(self, ctx: Context) -> dict[str, F.SetCount]:
        s = _set(ctx)
        return ctx.memo("set_counts", lambda: {c: F.set_counts(s, c, ctx.cfg.min_visible, ctx.cfg.max_count)
                                                for c in F.shown_categories(s, ctx.cfg.min_visible)})

    def _one(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        s = _set(ctx)
        k = rng.randrange(len(s.images))
        pool = sorted(c for c, sc in self._counts(ctx).items() if sc.per_image[k] is not None
                      and (sc.per_image[k] or c not in F.mentioned_in(s, k)))
        if not pool:
            return []
        cat = ctx.pick(rng, pool, parent)
        n = self._counts(ctx)[cat].per_image[k]
        q = rng.choice(COUNT_ONE).format(p=plural(cat), k=k + 1)
        return count_drafts(ctx, rng, q, n, "set.count", [cat], {"object": plural(cat), "image": k + 1, "count": n})

    def _total(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        # Only where no object is in two images (a `change` set repeats its objects): then the sum is the
        # number of objects, and "how many in total" has one reading.
        pool = sorted(c for c, sc in self._counts(ctx).items() if sc.total and sum(1 for x in sc.per_image if x) >= 2
                      and (sc.tracks is None or sc.tracks == sc.total))
        if not pool:
            return []
        cat = ctx.pick(rng, pool, parent)
        n = self._counts(ctx)[cat].total
        q = rng.choice(COUNT_ALL).format(p=plural(cat), n=len(_set(ctx).images))
        return count_drafts(ctx, rng, q, n, "set.count_total", [cat], {"object": plural(cat), "count": n})

    def _distinct(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        """Objects, not sightings: in a `change` set one dog in three images is one dog (its track)."""
        pool = sorted(c for c, sc in self._counts(ctx).items() if sc.total and sc.tracks and sc.tracks < sc.total)
        if not pool:
            return []
        cat = ctx.pick(rng, pool, parent)
        n = self._counts(ctx)[cat].tracks
        q = rng.choice(DISTINCT).format(p=plural(cat), c=cat)
        return count_drafts(ctx, rng, q, n, "set.count_distinct", [cat], {"object": plural(cat), "count": n})

    def _most(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        n = len(_set(ctx).images)
        pool = []
        for c, sc in sorted(self._counts(ctx).items()):
            if None not in sc.per_image and sorted(sc.per_image)[-1] > sorted(sc.per_image)[-2]:
                pool.append(c)
        if n == 2 or not pool:  # two images: "which has more" reads better as a count of each
            return []
        cat = ctx.pick(rng, pool, parent)
        per = self._counts(ctx)[cat].per_image
        answer = image_label(per.index(max(per)))
        return [ordered_mc(rng.choice(MOST).format(p=plural(cat)), image_options(n), answer, "set.count_most",
                         objects=[cat], slots={"object": plural(cat)})]


class SetDiff(Operator):
    name = "set_diff"
    groundings = ("set",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._diff)] if self._pairs(ctx) else []

    def _pairs(self, ctx: Context) -> list[tuple[int, int, list[str]]]:
        s, mv = _set(ctx), ctx.cfg.min_visible
        return ctx.memo("set_pairs", lambda: [(i, j, d) for i in range(len(s.images)) for j in range(len(s.images))
                                               if i != j and (d := F.difference(s, i, j, mv))])

    def _diff(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        s = _set(ctx)
        i, j, diff = rng.choice(self._pairs(ctx))
        cat = ctx.pick(rng, diff, parent)
        slots = {"image": i + 1, "other": j + 1}
        if rng.random() < MC_SHARE or len(diff) > 3:
            # wrong: what image j has too, or what image i does not have at all
            inside = sorted(F.mentioned_in(s, j) | (set(ctx.rec.counts) - F.mentioned_in(s, i)))
            wrong = distractors(ctx, cat, [c for c in inside if c in ctx.rec.counts], rng)
            wrong = [w for w in wrong if w in F.mentioned_in(s, j) or w not in F.mentioned_in(s, i)]
            if len(wrong) < 3:
                return []
            q = rng.choice(DIFF).format(i=i + 1, j=j + 1)
            return make_mc(q, cat, wrong, rng, ctx.cfg.mc_circular, "set.diff", objects=[cat],
                           absent=[w for w in wrong if w not in ctx.rec.counts], slots=slots)
        q = rng.choice(DIFF_SHORT).format(i=i + 1, j=j + 1)
        return [Draft(q, join_list(diff), "short", "set.diff_short", objects=list(diff), slots=slots)]


class SetChange(Operator):
    name = "set_change"
    groundings = ("set",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._change)] if F.changes(_set(ctx)) else []

    def _change(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        s = _set(ctx)
        ch = rng.choice(F.changes(s))
        if not 1 <= ch.image < len(s.images):
            return []
        prev, cur = s.images[ch.image - 1], s.images[ch.image]
        slots = {"image": ch.image + 1, "other": ch.image}
        if ch.op in CHANGE_SHORT and rng.random() < MC_SHARE:
            q = rng.choice(CHANGE_SHORT[ch.op]).format(a=ch.image, b=ch.image + 1)
            return [Draft(q, ch.category, "short", "set.change_short", objects=[ch.category], slots=slots)]
        right = change_phrase(ch, prev.counts.get(ch.category, 0))
        # Wrong changes: other edits of the same object, and the same edit of other objects (one image of a
        # `change` set differs from the one before by exactly one recorded change, so each of these is false).
        wrong: list[F.Change] = []
        for op in ("add", "remove", "move", "recolor"):
            if op != ch.op:
                wrong.append(F.Change(ch.image, op, ch.category, direction=rng.choice(("left", "right")),
                                      before=ch.before, after=ch.after))
        if ch.op == "move":
            other = "left" if ch.direction == "right" else "right"
            wrong.append(F.Change(ch.image, "move", ch.category, direction=other))
        others = sorted((set(prev.counts) | set(cur.counts)) - {ch.category})
        for c in rng.sample(others, min(3, len(others))):
            wrong.append(F.Change(ch.image, ch.op if ch.op != "add" else "remove", c, direction=ch.direction,
                                  before=ch.before, after=ch.after))
        wrong = [w for w in wrong if w.op != "recolor" or (w.before and w.after)]
        texts = sorted({change_phrase(w, prev.counts.get(w.category, 0)) for w in wrong} - {right})
        if len(texts) < 3:
            return []
        q = rng.choice(CHANGE).format(a=ch.image, b=ch.image + 1)
        return make_mc(q, right, rng.sample(texts, 3), rng, ctx.cfg.mc_circular, "set.change", objects=[ch.category],
                       slots=slots, params={"op": ch.op})


class SetKnowledge(Operator):
    """'Which image shows an animal that lays eggs?', 'Is there a vehicle that travels on water in image 2?'."""

    name = "set_knowledge"
    groundings = ("set",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not len(ctx.kb) or not any(c in ctx.kb for c in ctx.rec.counts):
            return []
        return [(1.0, self._which), (1.0, self._yesno)]

    def _per_image(self, ctx: Context) -> list[tuple[set[str], list, list]]:
        """Per image: (shown categories, properties shown, properties surely absent)."""
        def make():
            kx = knowledge_index(ctx)
            out = []
            for rec, shown in zip(_set(ctx).images, shown_by_image(ctx)):
                out.append((shown, kx.shown_by(shown), kx.surely_absent(set(rec.counts))))
            return out
        return ctx.memo("set_knowledge", make)

    def _which(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        per = self._per_image(ctx)
        n = len(per)
        props = {p.phrase: p for _, yes, _ in per for p in yes}
        cands = []
        for phrase in sorted(props):
            p = props[phrase]
            yes = [k for k, (_, y, _) in enumerate(per) if p in y]
            sure_no = [k for k, (_, _, no) in enumerate(per) if p in no]
            if len(yes) + len(sure_no) == n and (len(yes) == 1 or (n == 2 and len(yes) == 2)):
                cands.append((p, yes))
        if not cands:
            return []
        p, yes = rng.choice(fact_or_hypernym(ctx, rng, cands, lambda c: c[0]))
        answer = image_label(yes[0]) if len(yes) == 1 else "Both images"
        cat = sorted(p.members & per[yes[0]][0])[0]
        return [ordered_mc(rng.choice(WHICH).format(a=some(p)), image_options(n), answer, "set.knowledge.which",
                         objects=[cat], slots={"property": p.phrase}, facts=[kb_fact(ctx, cat, p)])]

    def _yesno(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        per = self._per_image(ctx)
        k = rng.randrange(len(per))
        shown, yes, no = per[k]
        truth = rng.random() < 0.5
        pool = yes if truth else no
        if not pool:
            return []
        p = rng.choice(fact_or_hypernym(ctx, rng, pool))
        q = rng.choice(KNOW_IN_IMAGE).format(a=p.phrase, k=k + 1)
        if not truth:
            return [Draft(q, "No", "yesno", "set.knowledge.yesno", slots={"property": p.phrase, "image": k + 1},
                          params={"negative": True})]
        cat = ctx.pick(rng, sorted(p.members & shown), parent)
        return [Draft(q, "Yes", "yesno", "set.knowledge.yesno", objects=[cat],
                      slots={"property": p.phrase, "image": k + 1}, facts=[kb_fact(ctx, cat, p)])]


def set_operators() -> list[Operator]:
    return [SetWhich(), SetCount(), SetDiff(), SetChange(), SetKnowledge()]
