"""Operators over clips: which way an object moves, which object moves, the order in which objects come into
view, which object leaves or appears, how many objects there are at the end, which object hides another,
and the knowledge-aware versions, with the object picked out by a KB property instead of its name ("Does the
animal that eats only plants move to the left?").

Answers come from kanva/data/sequence_facts.py (shared with the video benchmarks). "The dog" is said only of
a category with one track in the clip (one dog), and "the animal that eats only plants" only when exactly one
track has the property and the KB makes that certain for the others. `ctx.media` is the Clip, `ctx.rec` one
object per track.
"""

from __future__ import annotations

import random
from collections import Counter

from kanva.data import sequence_facts as F
from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.choice import make_mc
from kanva.data.ops.sequence_common import (count_drafts, distractors, fact_or_hypernym, kb_fact, knowledge_index,
                                            ordered_mc, the)
from kanva.data.sequences import Clip
from kanva.data.unit import Unit
from kanva.words import plural, with_article

WAYS = {"left": "to the left", "right": "to the right", "up": "upward", "down": "downward",
        None: "it stays in place"}
WHICH_WAY = ("Which way does {x} move?", "In which direction is {x} moving?", "Where does {x} go during the video?")
MOVES_YN = ("Does {x} move {w}?", "Is {x} moving {w}?", "In the video, does {x} go {w}?")
MOVER = ("Which of these objects moves during the video?", "Which object is in motion in this clip?",
         "Which of these is moving?")
MOVES_WAY = ("Which of these objects moves {w}?", "Which object goes {w} in this clip?")
ORDER_MC = ("Of {a} and {b}, which one shows up first in the video?", "Which is seen first: {a} or {b}?")
SAME, NEITHER = "they appear at the same time", "neither is in the video"
FIRST_PAIR = ("Which appears first, {a} or {b}?", "Which comes into view first: {a} or {b}?",
              "Which do you see earlier in the video, {a} or {b}?")
LAST = ("Which of these objects appears last in the video?", "Which of these is the last to come into view?")
LEAVES = ("Which object leaves the scene?", "Which of these objects goes out of view during the video?",
          "Which object is no longer in the picture at the end of the clip?")
ENTERS = ("Which object comes into view during the video?",
          "Which of these objects was not there at the start but is at the end?",
          "Which object appears during the clip?")
LEAVES_YN = ("Does {x} leave the scene?", "Does {x} go out of view before the video ends?",
             "Is {x} gone by the end of the clip?")
COUNT_END = ("How many {p} are there at the end of the video?", "In the last frame, how many {p} can you see?",
             "When the clip ends, how many {p} are in view?")
HIDES = ("Which object hides the {c} for a while?", "What blocks the view of the {c} during the clip?",
         "Which of these passes in front of the {c} or covers it?")
HIDDEN_YN = ("Is the {c} hidden from view at some point in the video?",
             "Does something block the {c} for a while during the clip?")


def _clip(ctx: Context) -> Clip:
    return ctx.media


def motions(ctx: Context) -> list[F.TrackMotion]:
    return ctx.memo("clip_motions", lambda: F.track_motions(_clip(ctx)))


def single_tracks(ctx: Context) -> dict[str, int]:
    """category -> its track, for categories with exactly one track in the clip ("the dog" is that one)."""
    def make():
        n = Counter(t.category for t in _clip(ctx).tracks)
        return {t.category: i for i, t in enumerate(_clip(ctx).tracks) if n[t.category] == 1}
    return ctx.memo("clip_singles", make)


def _first_by_category(ctx: Context) -> dict[str, int]:
    def make():
        out: dict[str, int] = {}
        for frame, i in F.appearance_order(_clip(ctx), ctx.cfg.min_visible):
            out.setdefault(_clip(ctx).tracks[i].category, frame)
        return out
    return ctx.memo("clip_first", make)


def _way_options(right: str | None, rng: random.Random) -> tuple[str, list[str]]:
    wrong = [w for d, w in WAYS.items() if d != right]
    return WAYS[right], rng.sample(wrong, 3)


class ClipMotion(Operator):
    name = "clip_motion"
    groundings = ("clip",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        # Yes/no forms only where both answers exist in the clip, so "no" is not the answer by default.
        opts: list[Variant] = []
        if single_tracks(ctx):
            opts.append((1.0, self._which_way))
        if any(motions(ctx)[i].direction for i in single_tracks(ctx).values()):
            opts.append((1.0, self._yesno))
        if len({m.category for m in motions(ctx) if m.direction}) == 1:
            opts.append((0.6, self._mover))
        if any(m.direction in ("left", "right") for m in motions(ctx)):
            opts.append((0.6, self._mover_way))
        return opts

    def _which_way(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat = ctx.pick(rng, sorted(single_tracks(ctx)), parent)
        m = motions(ctx)[single_tracks(ctx)[cat]]
        right, wrong = _way_options(m.direction, rng)
        return make_mc(rng.choice(WHICH_WAY).format(x=f"the {cat}"), right, wrong, rng, ctx.cfg.mc_circular,
                       "clip.motion", objects=[cat], slots={"object": cat}, params={"kind": m.kind})

    def _yesno(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        truth = rng.random() < 0.5
        singles = single_tracks(ctx)
        pool = sorted(c for c, i in singles.items() if not truth or motions(ctx)[i].direction)
        if not pool:
            return []
        cat = ctx.pick(rng, pool, parent)
        m = motions(ctx)[singles[cat]]
        asked = m.direction if truth else rng.choice([d for d in ("left", "right") if d != m.direction])
        q = rng.choice(MOVES_YN).format(x=f"the {cat}", w=WAYS[asked])
        return [Draft(q, "Yes" if truth else "No", "yesno", "clip.motion_yn", objects=[cat],
                      slots={"object": cat, "direction": asked})]

    def _mover(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat = next(m.category for m in motions(ctx) if m.direction)
        still = [t.category for t in _clip(ctx).tracks if t.category != cat]
        wrong = distractors(ctx, cat, still, rng)
        if not wrong:
            return []
        return make_mc(rng.choice(MOVER), cat, wrong, rng, ctx.cfg.mc_circular, "clip.mover", objects=[cat],
                       absent=[w for w in wrong if w not in ctx.rec.counts])


    def _mover_way(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        """'Which of these objects moves to the left?': the one category with a track going that way."""
        ms = motions(ctx)
        ways = [d for d in ("left", "right") if len({m.category for m in ms if m.direction == d}) == 1]
        if not ways:
            return []
        d = rng.choice(ways)
        cat = next(m.category for m in ms if m.direction == d)
        others = [t.category for t in _clip(ctx).tracks if not any(m.category == t.category and m.direction == d
                                                                   for m in ms)]
        wrong = distractors(ctx, cat, others, rng)
        if not wrong:
            return []
        return make_mc(rng.choice(MOVES_WAY).format(w=WAYS[d]), cat, wrong, rng, ctx.cfg.mc_circular,
                       "clip.mover_way", objects=[cat], absent=[w for w in wrong if w not in ctx.rec.counts],
                       slots={"direction": d})


class ClipOrder(Operator):
    name = "clip_order"
    groundings = ("clip",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if len(set(_first_by_category(ctx).values())) < 2:
            return []
        return [(1.0, self._pair), (0.8, self._pair_mc), (0.6, self._last)]

    def _pair(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        first = _first_by_category(ctx)
        late = sorted(c for c, f in first.items() if f > min(first.values()))
        b = ctx.pick(rng, late, parent)
        a = rng.choice(sorted(c for c, f in first.items() if f < first[b]))
        pair = [a, b] if rng.random() < 0.5 else [b, a]
        q = rng.choice(FIRST_PAIR).format(a=with_article(pair[0]), b=with_article(pair[1]))
        return [Draft(q, a, "short", "clip.order", objects=[a, b], slots={"first": a, "later": b})]

    def _pair_mc(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        """Two objects with one track each: one first, both at once, or (two absent objects) neither, in the
        shares of sequence_facts.order_question."""
        singles, first = single_tracks(ctx), _first_by_category(ctx)
        absent = ctx.adversarial[:6]
        asked = F.order_question({c: first[c] for c in singles if c in first}, rng.random(), len(absent) >= 2)
        if asked is None:
            return []
        kind, pool = asked
        if kind == "neither":
            a, b = rng.sample(absent, 2)
            right = NEITHER
        else:
            a, b = rng.choice(pool)
            right = SAME if kind == "same" else (a if first[a] < first[b] else b)
        if rng.random() < 0.5:
            a, b = b, a
        options = [a, b, SAME, NEITHER]
        q = rng.choice(ORDER_MC).format(a=f"the {a}", b=f"the {b}")
        present = [c for c in (a, b) if c in ctx.rec.counts]
        return [ordered_mc(q, options, right, "clip.order_mc", objects=present,
                         absent=[c for c in (a, b) if c not in present])]

    def _last(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        first = _first_by_category(ctx)
        top = max(first.values())
        last = [c for c, f in first.items() if f == top]
        if len(last) != 1 or len(first) < 4:
            return []
        wrong = rng.sample(sorted(c for c in first if c != last[0]), 3)
        return make_mc(rng.choice(LAST), last[0], wrong, rng, ctx.cfg.mc_circular, "clip.order_last",
                       objects=[last[0], *wrong])


class ClipLeave(Operator):
    name = "clip_leave"
    groundings = ("clip",)
    parent_free = True

    def _moved(self, ctx: Context) -> tuple[list[str], list[str]]:
        clip, mv = _clip(ctx), ctx.cfg.min_visible
        return ctx.memo("clip_left", lambda: (sorted({clip.tracks[i].category for i in F.leaving(clip, mv)}),
                                              sorted({clip.tracks[i].category for i in F.appearing(clip, mv)})))

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        left, came = self._moved(ctx)
        opts: list[Variant] = [(1.0, self._leaves)] if left else []
        opts += [(1.0, self._enters)] if came else []
        singles = single_tracks(ctx)
        clip = _clip(ctx)
        if set(left) & set(singles) and any(F.shown_at(clip.tracks[i], clip.length - 1, ctx.cfg.min_visible)
                                            for i in singles.values()):
            opts.append((1.0, self._yesno))
        return opts

    def _mc(self, ctx: Context, parent: Unit, rng: random.Random, cats: list[str], stay: list[str],
            questions: tuple[str, ...], template: str) -> list[Draft]:
        cat = ctx.pick(rng, cats, parent)
        wrong = distractors(ctx, cat, [c for c in stay if c not in cats], rng)
        if not wrong:
            return []
        return make_mc(rng.choice(questions), cat, wrong, rng, ctx.cfg.mc_circular, template, objects=[cat],
                       absent=[w for w in wrong if w not in ctx.rec.counts])

    def _leaves(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        # wrong: objects still shown at the end (and absent ones, which never leave)
        stay = [c for c, n in F.end_counts(_clip(ctx), ctx.cfg.min_visible).items() if n]
        return self._mc(ctx, parent, rng, self._moved(ctx)[0], stay, LEAVES, "clip.leave")

    def _enters(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        clip = _clip(ctx)
        start = [t.category for t in clip.tracks if F.shown_at(t, 0, ctx.cfg.min_visible)]
        return self._mc(ctx, parent, rng, self._moved(ctx)[1], start, ENTERS, "clip.appear")

    def _yesno(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        clip, mv = _clip(ctx), ctx.cfg.min_visible
        singles = single_tracks(ctx)
        left = {c for c in self._moved(ctx)[0] if c in singles}
        stay = {c for c, i in singles.items() if F.shown_at(clip.tracks[i], clip.length - 1, mv)}
        truth = rng.random() < 0.5
        pool = sorted(left if truth else stay)
        if not pool:
            return []
        cat = ctx.pick(rng, pool, parent)
        q = rng.choice(LEAVES_YN).format(x=f"the {cat}")
        return [Draft(q, "Yes" if truth else "No", "yesno", "clip.leave_yn", objects=[cat], slots={"object": cat})]


class ClipCount(Operator):
    name = "clip_count"
    groundings = ("clip",)
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._end)] if self._counts(ctx) else []

    def _counts(self, ctx: Context) -> dict[str, int]:
        return ctx.memo("clip_end", lambda: F.end_counts(_clip(ctx), ctx.cfg.min_visible, ctx.cfg.max_count))

    def _end(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        counts = self._counts(ctx)
        cat = ctx.pick(rng, sorted(counts), parent)
        n = counts[cat]
        if parent.template == "clip.count_end" and cat in parent.objects:
            return []
        q = rng.choice(COUNT_END).format(p=plural(cat))
        return count_drafts(ctx, rng, q, n, "clip.count_end", [cat], {"object": plural(cat), "count": n})


class ClipOcclusion(Operator):
    name = "clip_occlusion"
    groundings = ("clip",)
    parent_free = True

    def _cases(self, ctx: Context) -> tuple[list[F.Occlusion], list[str]]:
        """(occlusions of single-track objects by one kind of object, single-track objects never hidden)."""
        def make():
            clip, singles = _clip(ctx), single_tracks(ctx)
            occ = [o for o in F.occlusions(clip, ctx.cfg.min_visible) if o.category in singles]
            hidden = {o.category for o in occ}
            whole = sorted(c for c, i in singles.items() if c not in hidden
                           and all(F.shown_at(clip.tracks[i], t, ctx.cfg.min_visible) for t in range(clip.length)))
            return [o for o in occ if len(o.by) == 1 and o.by[0] != o.category], whole
        return ctx.memo("clip_occlusion", make)

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        occ, whole = self._cases(ctx)
        return ([(1.0, self._hides)] if occ else []) + ([(0.6, self._yesno)] if occ and whole else [])

    def _hides(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        o = rng.choice(self._cases(ctx)[0])
        others = [t.category for t in _clip(ctx).tracks if t.category not in (o.category, o.by[0])]
        wrong = distractors(ctx, o.by[0], others, rng)
        if not wrong:
            return []
        return make_mc(rng.choice(HIDES).format(c=o.category), o.by[0], wrong, rng, ctx.cfg.mc_circular,
                       "clip.occlusion", objects=[o.category, o.by[0]],
                       absent=[w for w in wrong if w not in ctx.rec.counts], slots={"object": o.category})

    def _yesno(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        occ, whole = self._cases(ctx)
        truth = rng.random() < 0.5
        pool = sorted({o.category for o in occ}) if truth else whole
        if not pool:
            return []
        cat = ctx.pick(rng, pool, parent)
        return [Draft(rng.choice(HIDDEN_YN).format(c=cat), "Yes" if truth else "No", "yesno", "clip.occlusion_yn",
                      objects=[cat], slots={"object": cat})]


class ClipKnowledge(Operator):
    """The object picked out by what the KB says of it: 'Does the animal that eats only plants move to the
    left?', 'Which way does the vehicle that travels on water move?', 'Does the fruit leave the scene?'."""

    name = "clip_knowledge"
    groundings = ("clip",)
    parent_free = True

    def _subjects(self, ctx: Context) -> list[tuple]:
        """(property, category, track) where exactly one track of the clip has the property, certainly."""
        def make():
            kx = knowledge_index(ctx)
            clip = _clip(ctx)
            present = {t.category for t in clip.tracks}
            out = []
            for p in kx.properties:
                holders = [i for i, t in enumerate(clip.tracks) if t.category in p.holders]
                if len(holders) == 1 and clip.tracks[holders[0]].category in p.members and kx.decidable(p, present):
                    out.append((p, clip.tracks[holders[0]].category, holders[0]))
            return out
        return ctx.memo("clip_knowledge", make)

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not len(ctx.kb) or not self._subjects(ctx):
            return []
        clip, mv = _clip(ctx), ctx.cfg.min_visible
        tracks = [i for _, _, i in self._subjects(ctx)]
        opts: list[Variant] = [(1.0, self._which_way)]
        if any(motions(ctx)[i].direction for i in tracks):
            opts.append((1.0, self._motion_yn))
        if set(tracks) & set(F.leaving(clip, mv)) and any(F.shown_at(clip.tracks[i], clip.length - 1, mv)
                                                          for i in tracks):
            opts.append((0.6, self._leaves_yn))
        return opts

    def _pick(self, ctx: Context, parent: Unit, rng: random.Random, keep=lambda i: True) -> tuple | None:
        """A (property, category, track) subject whose track passes `keep`, preferring the parent's objects."""
        subjects = [s for s in self._subjects(ctx) if keep(s[2])]
        if not subjects:
            return None
        subjects = fact_or_hypernym(ctx, rng, subjects, lambda s: s[0])
        cat = ctx.pick(rng, sorted({c for _, c, _ in subjects}), parent)
        return rng.choice([s for s in subjects if s[1] == cat])

    def _motion_yn(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        truth = rng.random() < 0.5  # a "yes" needs a subject that moves
        picked = self._pick(ctx, parent, rng, lambda i: not truth or motions(ctx)[i].direction is not None)
        if picked is None:
            return []
        p, cat, i = picked
        m = motions(ctx)[i]
        asked = m.direction if truth else rng.choice([d for d in ("left", "right") if d != m.direction])
        q = rng.choice(MOVES_YN).format(x=the(p), w=WAYS[asked])
        return [Draft(q, "Yes" if truth else "No", "yesno", "clip.knowledge.motion_yn", objects=[cat],
                      slots={"property": p.phrase, "direction": asked}, facts=[kb_fact(ctx, cat, p)])]

    def _which_way(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        p, cat, i = self._pick(ctx, parent, rng)  # type: ignore[misc]  # subjects exist (options)
        right, wrong = _way_options(motions(ctx)[i].direction, rng)
        return make_mc(rng.choice(WHICH_WAY).format(x=the(p)), right, wrong, rng, ctx.cfg.mc_circular,
                       "clip.knowledge.motion", objects=[cat], slots={"property": p.phrase},
                       facts=[kb_fact(ctx, cat, p)])

    def _leaves_yn(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        clip, mv = _clip(ctx), ctx.cfg.min_visible
        truth = rng.random() < 0.5  # yes: it leaves; no: it is still shown in the last frame
        left = set(F.leaving(clip, mv))
        picked = self._pick(ctx, parent, rng, lambda i: i in left if truth
                            else F.shown_at(clip.tracks[i], clip.length - 1, mv))
        if picked is None:
            return []
        p, cat, _ = picked
        q = rng.choice(LEAVES_YN).format(x=the(p))
        return [Draft(q, "Yes" if truth else "No", "yesno", "clip.knowledge.leave_yn", objects=[cat],
                      slots={"property": p.phrase}, facts=[kb_fact(ctx, cat, p)])]


def clip_operators() -> list[Operator]:
    return [ClipMotion(), ClipOrder(), ClipLeave(), ClipCount(), ClipOcclusion(), ClipKnowledge()]
