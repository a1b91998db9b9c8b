"""Video multiple choice from a world split's held-out clips, written in MVBench's layout (json/<task>.json).

Answers come from the clips' per-frame annotations through the shared rules of kanva/data/sequence_facts.py
(motion per track, first frame seen, leaving and appearing tracks, counts at the end) and, for the knowledge
task, the knowledge base's fact properties (kanva/knowledge/properties.py). Tasks (MVBench-style file names):

- `moving_direction`: which object moves to the left (right); the distractors do not;
- `leaving_object` / `appearing_object`: which object leaves the scene / comes into view;
- `appearance_order`: which of two objects comes into view first (or both at once, or neither). A clip is
  drawn for "neither" a quarter of the time, for "both" a quarter, and otherwise for an ordered pair if it
  has one (the comment in `_order` has the rule). Clips of 8-16 frames rarely have an ordered pair, so "neither" and "both"
  are the gold answer of most questions (44% and 32% on the onevision quickstart's test clips): the task's
  chance is not a quarter;
- `count_at_end`: how many of a category are in view at the end;
- `knowledge_motion` (kind "knowledge"): which way "the animal that eats only plants" moves: the clip holds
  exactly one object with the property, so the question can only be answered by knowing the fact.

"Shown" needs a clearly visible instance (the single-image benchmarks' VISIBLE); a distractor is only offered
when it is certainly wrong (an object that does not move that way, is in view in the last frame, is not in
the clip at all, ...). A clip gives at most one question per task, drawn with an RNG seeded by (seed, clip,
task); wordings have an RNG of their own.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from kanva.data import sequence_facts as sf
from kanva.data.sequences import Clip, load_clips
from kanva.eval.mvbench import VIDEO_DIR, question_id
from kanva.eval.synthetic.mc import Draft, draft, place
from kanva.eval.synthetic.scenes import VISIBLE
from kanva.knowledge.properties import KnowledgeIndex, build_index
from kanva.words import number_word, plural

# Several wordings per task, each other than evolution's (kanva/data/ops/clips.py).
DIRECTION = ("What is moving towards the {d} side of the picture?", "Which of these travels to the {d} during the video?",
             "Which object heads {d}ward across the scene?")
LEAVING = ("What goes out of the picture before the video is over?", "Which of these exits the scene during the video?",
           "Which object is visible at first but has left by the final frame?")
APPEARING = ("What enters the picture after the video starts?", "Which of these shows up partway through the video?",
             "Which object is absent at the start and visible by the final frame?")
ORDER = ("Of the {a} and the {b}, which appears first?", "Between the {a} and the {b}, which shows up sooner?",
         "Which is in the picture sooner, the {a} or the {b}?")
END_COUNT = ("By the end of the video, how many {p} remain in view?",
             "How many {p} are left in the picture when the video finishes?",
             "At the final moment of the video, how many {p} are visible?")
KNOW_MOTION = ("What does {the_x} do in this video?", "How does {the_x} move during the video?",
               "Watch {the_x}: which way does it go?")

MOTION_OPTIONS = {"left": "It moves to the left", "right": "It moves to the right", None: "It stays where it is"}
NOT_THERE = "There is no such thing in the video"


def _rng(seed: int, clip: Clip, what: str) -> random.Random:
    return random.Random(f"{seed}:clip{clip.id}:{what}")


def _cats(clip: Clip) -> list[str]:
    return sorted({t.category for t in clip.tracks})


def _the(phrase: str) -> str:
    """"an animal that lays eggs" -> "the animal that lays eggs"."""
    head, _, rest = phrase.partition(" ")
    return f"the {rest}" if head in ("a", "an") else f"the {phrase}"


def _direction(clip: Clip, absent: list[str], seed: int, src: dict) -> Draft | None:
    r = _rng(seed, clip, "direction")
    motions = sf.track_motions(clip)
    found = []
    for d in ("left", "right"):
        cats = {m.category for m in motions if m.direction == d}
        if len(cats) == 1:
            c = cats.pop()
            wrong = [x for x in _cats(clip) if x != c and not any(m.category == x and m.direction == d for m in motions)]
            found.append((d, c, wrong))
    if not found:
        return None
    d, c, wrong = r.choice(found)
    q = _rng(seed, clip, "direction:wording").choice(DIRECTION).format(d=d)
    return draft("moving_direction", q, c, wrong + r.sample(absent, min(2, len(absent))), source=src,
                 facts={"category": c, "direction": d})


def _leave_or_appear(clip: Clip, absent: list[str], seed: int, src: dict, task: str) -> Draft | None:
    r = _rng(seed, clip, task)
    leaving = task == "leaving_object"
    movers = sf.leaving(clip, VISIBLE) if leaving else sf.appearing(clip, VISIBLE)
    if not movers:
        return None
    frame = clip.length - 1 if leaving else 0
    right = clip.tracks[r.choice(movers)].category
    # wrong: every track of the category in view (shown) at the frame that tells: the last for leaving, the
    # first for appearing; or not in the clip at all
    moved = {clip.tracks[i].category for i in movers}
    stay = [c for c in _cats(clip) if c not in moved
            and all(sf.shown_at(t, frame, VISIBLE) for t in clip.tracks if t.category == c)]
    q = _rng(seed, clip, f"{task}:wording").choice(LEAVING if leaving else APPEARING)
    return draft(task, q, right, stay + r.sample(absent, min(2, len(absent))), source=src,
                 facts={"category": right, "frame": frame})


def _order(clip: Clip, absent: list[str], seed: int, src: dict) -> Draft | None:
    r = _rng(seed, clip, "order")
    single = [c for c in _cats(clip) if sum(t.category == c for t in clip.tracks) == 1]
    index = {clip.tracks[i].category: i for i in range(len(clip.tracks)) if clip.tracks[i].category in single}
    first = {c: f for c, i in index.items() if (f := sf.first_seen(clip, i, VISIBLE)) is not None}
    asked = sf.order_question(first, r.random(), len(absent) >= 2)
    if asked is None:
        return None
    together, neither = "Both at the same moment", "Neither of them appears"
    kind, pool = asked
    if kind == "neither":
        a, b = r.sample(absent, 2)
        right, facts = neither, {"first_seen": {a: None, b: None}}
    else:
        a, b = r.choice(pool)
        if r.random() < 0.5:
            a, b = b, a  # either object may be named first
        right = together if first[a] == first[b] else f"The {a if first[a] < first[b] else b}"
        facts = {"first_seen": {a: first[a], b: first[b]}}
    q = _rng(seed, clip, "order:wording").choice(ORDER).format(a=a, b=b)
    return draft("appearance_order", q, right, [f"The {a}", f"The {b}", together, neither], source=src, facts=facts)


def _end_count(clip: Clip, seed: int, src: dict) -> Draft | None:
    r = _rng(seed, clip, "count")
    counts = sf.end_counts(clip, VISIBLE)
    moving = {m.category for m in sf.track_motions(clip) if m.kind != "static"}
    cands = sorted(c for c in counts if c in moving) or sorted(counts)  # a count that changed is the question
    if not cands:
        return None
    c = r.choice(cands)
    n = counts[c]
    lo = max(0, n - r.randint(0, 3))
    q = _rng(seed, clip, "count:wording").choice(END_COUNT).format(p=plural(c))
    return draft("count_at_end", q, number_word(n), [number_word(m) for m in range(lo, lo + 4) if m != n],
                 source=src, facts={"category": c, "count": n})


def _knowledge(clip: Clip, kx: KnowledgeIndex | None, seed: int, src: dict) -> Draft | None:
    if kx is None:
        return None
    r = _rng(seed, clip, "know")
    cats = set(_cats(clip))
    motions = sf.track_motions(clip)
    found = []
    for p in kx.properties:
        holders = p.holders & cats
        if not p.is_fact or len(holders) != 1 or not kx.decidable(p, cats):
            continue
        c = next(iter(holders))
        tracks = [i for i, t in enumerate(clip.tracks) if t.category == c]
        if c not in p.members or len(tracks) != 1 or sf.first_seen(clip, tracks[0], VISIBLE) is None:
            continue
        d = motions[tracks[0]].direction
        if d in MOTION_OPTIONS:
            found.append((p, c, d))
    if not found:
        return None
    p, c, d = r.choice(found)
    q = _rng(seed, clip, "know:wording").choice(KNOW_MOTION).format(the_x=_the(p.phrase))
    right = MOTION_OPTIONS[d]
    return draft("knowledge_motion", q, right, [o for o in MOTION_OPTIONS.values() if o != right] + [NOT_THERE],
                 kind="knowledge", source=src, facts={"property": p.phrase, "category": c, "direction": d})


def clip_drafts(clip: Clip, vocab: list[str], kx: KnowledgeIndex | None, seed: int, split: str) -> list[Draft]:
    src = {"clip_id": clip.id, "split": split}
    absent = [c for c in vocab if c not in set(_cats(clip))]
    out = [_direction(clip, absent, seed, src), _leave_or_appear(clip, absent, seed, src, "leaving_object"),
           _leave_or_appear(clip, absent, seed, src, "appearing_object"), _order(clip, absent, seed, src),
           _end_count(clip, seed, src), _knowledge(clip, kx, seed, src)]
    return [d for d in out if d is not None]


def write_video(world: Path, split: str, kb, seed: int, out: Path) -> dict:
    """Writes OUT/json/<task>.json (MVBench's fields + Kanva's) and OUT/video/*.mp4; returns counts."""
    from kanva.errors import KanvaError
    from kanva.eval.synthetic import copy_file

    clips = load_clips(world, split)
    vocab = sorted({t.category for c in clips.clips.values() for t in c.tracks})
    kx = build_index(kb, [name for name, _ in clips.categories.values()]) if kb is not None else None
    ordered = [clips.clips[k] for k in sorted(clips.clips)]
    drafts = [(clip, d) for clip in ordered for d in clip_drafts(clip, vocab, kx, seed, split)]
    placed = place([d for _, d in drafts], seed)
    files: dict[str, list[dict]] = {}
    for (clip, _), p in zip(drafts, placed):
        if clip.video is None:
            raise KanvaError(f"{clips.root}/annotations/clips_{split}.json: video {clip.id} has no 'video' (mp4) file name")
        rows = files.setdefault(p.draft.task, [])
        rows.append({"video": clip.video.name, "question": p.draft.question, "candidates": list(p.options),
                     "answer": p.right_text, "question_id": question_id(p.draft.task, len(rows)),
                     "kind": p.draft.kind, **p.draft.source, "facts": p.draft.facts})
        copy_file(clip.video, out / VIDEO_DIR / clip.video.name)
    folder = out / "json"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        if stale.stem not in files:
            stale.unlink()  # a task file of an earlier run would be scored as part of this set
    for task, rows in files.items():
        (folder / f"{task}.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    letters = {c: sum(p.answer == c for p in placed) for c in "ABCD"}
    return {"file": str(folder), "clips": len(ordered), "questions": len(drafts),
            "tasks": {t: len(v) for t, v in sorted(files.items())}, "letters": letters}
