"""`kanva data seed --kind set|clip`: seed instructions about multi-image sets and clips, from annotations.

Types: `detail` (a set: each image described from one of its captions and its objects, then what changed
from image to image or what the images share; a clip: a temporal caption, what is there, what moves which
way, what comes and goes, what hides what, what is left at the end) and `conversation` (a few questions about
the same facts). Everything is computed from kanva/data/sequence_facts.py, so seeds are correct by
construction, and checked by elimination like single-image seeds. Seeds use no knowledge base: the knowledge
comes in with evolution (so the quickstart's knowledge-free arm starts from the same seeds).

Samples are in LLaVA-OneVision's format (kanva/data/sequence_join.py): a set's `"image": [paths]` with one
labelled `Image k: <image>` line per image, a clip's `"video": path` with `<video>`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

from kanva.data import sequence_facts as F
from kanva.data.coco import ImageRec
from kanva.data.config import EvolveConfig
from kanva.data.ops.clips import WAYS
from kanva.data.ops.sets import change_phrase
from kanva.data.rng import unit_rng
from kanva.data.seed import check_turns
from kanva.data.sequence_join import MEDIA, Sequences
from kanva.data.sequences import Clip, ImageSet
from kanva.data.text import sentence
from kanva.data.unit import media_prefix, media_sample
from kanva.errors import KanvaError
from kanva.words import counted, join_list, plural, with_article

TYPES = ("conversation", "detail")
SET_DETAIL = ("Describe each of these images.", "What do these pictures show? Describe them one by one.",
              "Describe the images and how they differ.", "Give a short description of every image.")
CLIP_DETAIL = ("Describe what happens in the video.", "What happens in this clip? Describe it.",
               "Give a detailed account of the video.", "Describe the video from start to end.")
OTHER_SIDE = {"left": "right", "right": "left"}


def _inventory(counts: dict[str, int]) -> str:
    return join_list([counted(c, n) for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))])


def _is(counts: dict[str, int]) -> str:
    return "is" if sum(counts.values()) == 1 else "are"


def _shown_counts(rec: ImageRec, mv: float) -> dict[str, int]:
    return dict(Counter(o.category for o in rec.objects if o.usable(mv)))


# -- sets ------------------------------------------------------------------------------------------------------
SHOWS = ("It shows {inv}.", "You can see {inv}.", "In it there {be} {inv}.")


def set_detail(s: ImageSet, rng: random.Random, cfg: EvolveConfig) -> list[tuple[str, str]] | None:
    """Image by image; in a `change` set, the first image and then each change (the rest is the same)."""
    changes = {ch.image: ch for ch in F.changes(s) if 1 <= ch.image < len(s.images)}
    parts = []
    for k, rec in enumerate(s.images):
        if k in changes:
            ch = changes[k]
            what = change_phrase(ch, s.images[k - 1].counts.get(ch.category, 0))
            parts.append(f"Image {k + 1}: The same scene as image {k}, except that {what[0].lower()}{what[1:]}")
            continue
        counts = _shown_counts(rec, cfg.min_visible)
        text = sentence(rng.choice(rec.captions)) if rec.captions else ""
        if counts:
            shows = rng.choice(SHOWS).format(inv=_inventory(counts), be=_is(counts))
            text += f"{' ' if text else ''}{shows}"
        if text:
            parts.append(f"Image {k + 1}: {text}")
    if not changes and s.scene:
        parts.append(f"All {len(s.images)} images show the same {s.scene}.")
    return [(rng.choice(SET_DETAIL), "\n".join(parts))] if len(parts) >= 2 else None


def set_conversation(s: ImageSet, rng: random.Random, cfg: EvolveConfig) -> list[tuple[str, str]] | None:
    mv = cfg.min_visible
    pool: list[tuple[str, str]] = []
    every = [c for c in F.shown_categories(s, mv) if len(F.showing(s, c, mv)) == len(s.images)]
    names = [f"the {plural(c)}" if any(rec.counts.get(c, 0) > 1 for rec in s.images) else f"the {c}" for c in every]
    pool.append(("Which objects appear in every image?",
                 f"Every image shows {join_list(names)}." if every else "No object appears in all of the images."))
    # "which images show X" where every image that has X shows it clearly
    some = [c for c in F.shown_categories(s, mv) if len(F.showing(s, c, mv)) < len(s.images)
            and F.showing(s, c, mv) == tuple(k for k in range(len(s.images)) if c in F.mentioned_in(s, k))]
    if some:
        c = rng.choice(some)
        ks = [str(k + 1) for k in F.showing(s, c, mv)]
        pool.append((f"Which images show {with_article(c)}?",
                     f"{'Image' if len(ks) == 1 else 'Images'} {join_list(ks)}."))
    k = rng.randrange(len(s.images))
    counts = _shown_counts(s.images[k], mv)
    if counts:
        pool.append((f"What is in image {k + 1}?", f"Image {k + 1} shows {_inventory(counts)}."))
    for ch in F.changes(s)[:2]:
        if 1 <= ch.image < len(s.images):
            what = change_phrase(ch, s.images[ch.image - 1].counts.get(ch.category, 0))
            pool.append((f"What changed between image {ch.image} and image {ch.image + 1}?", what))
    if s.scene:
        pool.append(("What kind of place do these images show?", f"They all show {with_article(s.scene)}."))
    rng.shuffle(pool)
    return pool[: rng.randint(2, 4)] if len(pool) >= 2 else None


# -- clips -----------------------------------------------------------------------------------------------------
def _name(clip: Clip, cat: str) -> str:
    """'the dog' for the only dog of the clip, else 'a dog'."""
    return f"the {cat}" if sum(t.category == cat for t in clip.tracks) == 1 else with_article(cat)


def _subject(clip: Clip, cat: str, n: int) -> str:
    """The subject of a sentence about n of the clip's `cat` doing the same: 'the dog', 'a dog', 'two dogs'."""
    return _name(clip, cat) if n == 1 else counted(cat, n)


def motion_sentences(clip: Clip) -> list[str]:
    """One sentence per way of moving (movers of one category that move alike share one: "Two frisbees ...")."""
    same = Counter((m.category, m.kind, m.direction) for m in F.track_motions(clip) if m.direction)
    out = []
    for (cat, kind, d), n in same.items():  # in track order
        x, s = _subject(clip, cat, n), "s" if n == 1 else ""
        X = x[0].upper() + x[1:]
        if kind == "enter":
            out.append(f"{X} come{s} into view from the {OTHER_SIDE.get(d, d)} and move{s} {WAYS[d]}.")
        elif kind == "leave":
            out.append(f"{X} move{s} {WAYS[d]} and leave{s} the picture.")
        elif kind == "cross" and d in OTHER_SIDE:
            out.append(f"{X} cross{'es' if n == 1 else ''} the picture from the {OTHER_SIDE[d]} to the {d}.")
        elif kind == "appear":
            out.append(f"After a moment, {x} appear{s} and move{s} {WAYS[d]}.")
        else:
            out.append(f"{X} move{s} {WAYS[d]}.")
    return out


def clip_detail(clip: Clip, rng: random.Random, cfg: EvolveConfig) -> list[tuple[str, str]] | None:
    mv = cfg.min_visible
    start = Counter(t.category for t in clip.tracks if F.shown_at(t, 0, mv))
    parts = []
    if start:
        where = f"{with_article(clip.scene)} with " if clip.scene else ""
        parts.append(f"The video starts with {where}{_inventory(dict(start))}.")
    parts += motion_sentences(clip)
    for o in F.occlusions(clip, mv):
        if len(o.by) == 1 and o.by[0] != o.category and _name(clip, o.category).startswith("the"):
            parts.append(f"For a moment, the {o.category} is hidden by {_name(clip, o.by[0])}.")
    counts = F.end_counts(clip, mv, cfg.max_count)
    end = {c: n for c, n in counts.items() if n}
    if end and len(counts) == len({t.category for t in clip.tracks}):  # all of the end, or nothing
        parts.append(f"At the end, there {_is(end)} {_inventory(end)}.")
    return [(rng.choice(CLIP_DETAIL), " ".join(parts))] if len(parts) >= 2 else None


def clip_conversation(clip: Clip, rng: random.Random, cfg: EvolveConfig) -> list[tuple[str, str]] | None:
    mv = cfg.min_visible
    pool: list[tuple[str, str]] = []
    moving = motion_sentences(clip)
    pool.append(("What is moving in this video?",
                 " ".join(moving) if moving else "Nothing moves; everything stays in place."))
    left = Counter(clip.tracks[i].category for i in F.leaving(clip, mv))
    names = [_subject(clip, c, n) for c, n in sorted(left.items())]
    verb = "leaves" if sum(left.values()) == 1 else "leave"
    pool.append(("Does anything leave the scene?", f"Yes, {join_list(names)} {verb} the picture." if left
                 else "No, nothing leaves the scene."))
    start = Counter(t.category for t in clip.tracks if F.shown_at(t, 0, mv))
    if start:
        pool.append(("What can you see at the start of the video?",
                     f"At the start there {_is(start)} {_inventory(dict(start))}."))
    end = F.end_counts(clip, mv, cfg.max_count)
    if end:
        c = rng.choice(sorted(end))
        pool.append((f"How many {plural(c)} are there at the end of the video?",
                     f"There {_is({c: end[c]})} {counted(c, end[c])} at the end." if end[c]
                     else f"There are no {plural(c)} left at the end."))
    rng.shuffle(pool)
    return pool[: rng.randint(2, 4)]


RULES = {("set", "detail"): set_detail, ("set", "conversation"): set_conversation,
         ("clip", "detail"): clip_detail, ("clip", "conversation"): clip_conversation}


def make_sequence_seeds(seqs: Sequences, types: Iterable[str], seed: int = 0, exclude: set[str] | None = None,
                        cfg: EvolveConfig | None = None, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    """(samples, provenance records) for every set or clip of `seqs` (the first `limit` by id), for each type."""
    from kanva.data.exclude import image_key

    types = list(types)
    bad = [t for t in types if t not in TYPES]
    if bad or not types:
        raise KanvaError(f"--types {','.join(types)}: unknown type(s) {bad} for --kind {seqs.kind}; choose from "
                         f"{','.join(TYPES)}")
    cfg = cfg or EvolveConfig()
    media = MEDIA[seqs.kind]
    samples: list[dict] = []
    prov: list[dict] = []
    for iid in sorted(seqs.items)[:limit]:
        path = seqs.path(iid)
        paths = path if isinstance(path, list) else [path]
        if exclude and any(image_key(p) in exclude for p in paths):
            continue
        rec = seqs.coco.images[iid]
        for kind in types:
            sid = f"{iid}-{kind}"
            base = {"id": sid, "image": path, "image_id": iid, "type": kind, "seed": seed, "source": "rules",
                    "template": f"seed.{seqs.kind}.{kind}"}
            turns = RULES[(seqs.kind, kind)](seqs.items[iid], unit_rng(seed, iid, f"seed-{seqs.kind}-{kind}", 0), cfg)
            if not turns:
                prov.append({**base, "status": "skipped", "reason": "nothing to say (no objects or captions)"})
                continue
            reason = check_turns(rec, turns, None)
            if reason:
                prov.append({**base, "status": "rejected", "reason": reason})
                continue
            conv = []
            for i, (q, a) in enumerate(turns):
                conv += [{"from": "human", "value": f"{media_prefix(path, media)}{q}" if i == 0 else q},
                         {"from": "gpt", "value": a}]
            samples.append(media_sample(sid, path, media, conv))
            prov.append({**base, "status": "kept", "facts": []})
    return samples, prov
