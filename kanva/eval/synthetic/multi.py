"""Multi-image multiple choice from a world split's held-out sets, written in MUIRBench's layout.

Every answer is computed from the set's annotations with the shared rules of kanva/data/sequence_facts.py
(which images show X, counts per image and over the set, what one image has that another lacks) and, for the
knowledge task, the knowledge base's properties (kanva/knowledge/properties.py). Tasks (MUIRBench's `task`):

- "Image Finding": which image shows a category ("Image 2"; with two or three images also "Both images" /
  "Neither image" / "None of the images", so four options always exist and each can be right);
- "Counting": how many of a category the set shows in all (distinct objects: the same object in two images
  of a `change` set is one), or which image has the most of it;
- "Difference Spotting": which object is in image i but not in image j;
- "Knowledge Finding" (kind "knowledge"): which image shows, e.g., "an animal that lays eggs": answering needs
  both seeing the objects and knowing the fact, so it is the task the knowledge-aware and knowledge-free data
  are compared on.

A claim is only made where it is certain: "shown" needs a clearly visible instance (the single-image
benchmarks' VISIBLE), "not in image k" needs the category to be nowhere in image k (not annotated even
hidden, captioned or printed), a count needs every instance countable. A set that supports a task gives one
question for it, drawn with an RNG seeded by (seed, set, task); wordings are drawn with an RNG of their own.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from kanva.data import sequence_facts as sf
from kanva.data.sequences import ImageSet, load_sets
from kanva.eval.muirbench import FILE
from kanva.eval.synthetic.mc import Draft, draft, place
from kanva.eval.synthetic.scenes import VISIBLE
from kanva.knowledge.properties import KnowledgeIndex, Property, build_index
from kanva.words import article, number_word, plural

# Several wordings per task, each other than evolution's (kanva/data/ops/sets.py), so a score measures the
# skill and not one phrasing learned in training.
FIND = ("{A_x} appears in which image?", "Which of the images has {a_x} in it?", "In which picture is there {a_x}?",
        "Look at the images: which one includes {a_x}?")
TOTAL = ("How many different {p} can be seen in these images altogether?",
         "Over the whole set of images, how many separate {p} appear?",
         "Taking every picture into account, how many distinct {p} are shown?")
MOST = ("Which image contains the greatest number of {p}?", "In which picture are there more {p} than in any other?",
        "Which of the images shows the largest number of {p}?")
DIFF = ("Comparing Image {i} with Image {j}, which object is only in Image {i}?",
        "Which object appears in Image {i} and is absent from Image {j}?",
        "Of these objects, which does Image {i} contain but Image {j} not?")
KNOW = ("In which of the images is there {pred}?", "Which picture has {pred} in it?", "{Pred} can be seen in which image?")

IMAGE_RELATION = {"change": "Temporal", "same_scene": "Complementary"}  # two of MUIRBench's ten relation categories
IMAGE_TYPE = "Synthetic scenes"


def image_name(k: int) -> str:
    return f"Image {k + 1}"


def which_images(n: int, hits: set[int]) -> tuple[str, list[str]] | None:
    """(right option, the other options) for "which image ...?" with `hits` the images where it holds; None when
    no option says exactly that (e.g. two of three images)."""
    fill = {2: {frozenset({0, 1}): "Both images", frozenset(): "Neither image"},
            3: {frozenset(): "None of the images"}}.get(n, {})
    options = {frozenset({k}): image_name(k) for k in range(n)} | fill
    right = options.get(frozenset(hits))
    return None if right is None else (right, [o for o in options.values() if o != right])


def _truth(s: ImageSet, holds, lacks) -> set[int] | None:
    """Images where a claim holds, or None when some image is neither surely yes nor surely no."""
    hits = set()
    for k in range(len(s.images)):
        if holds(k):
            hits.add(k)
        elif not lacks(k):
            return None
    return hits


def _rng(seed: int, s: ImageSet, what: str) -> random.Random:
    return random.Random(f"{seed}:set{s.id}:{what}")


def _find(s: ImageSet, vocab: list[str], seed: int, src: dict) -> Draft | None:
    r = _rng(seed, s, "find")
    shown = [set(c for c in sf.shown_categories(s, VISIBLE) if k in sf.showing(s, c, VISIBLE)) for k in range(len(s.images))]
    mentioned = [sf.mentioned_in(s, k) for k in range(len(s.images))]
    absent = [c for c in vocab if not any(c in m for m in mentioned)]
    found = []
    for c in sf.shown_categories(s, VISIBLE):
        hits = _truth(s, lambda k: c in shown[k], lambda k: c not in mentioned[k])
        opts = which_images(len(s.images), hits) if hits is not None else None
        if opts:
            found.append((c, hits, opts))
    none = which_images(len(s.images), set())
    # "none of the images" is one answer among n + 1: asked about that often (a category of the split that no
    # image has), so the filler options are right about as often as an image is, and not more
    if absent and none and r.random() < 1 / (len(s.images) + 1):
        found = [(r.choice(absent), set(), none)]
    if not found:
        return None
    c, hits, (right, wrong) = r.choice(found)
    t = _rng(seed, s, "find:wording").choice(FIND)
    a_x = f"{article(c)} {c}"
    q = t.format(a_x=a_x, A_x=a_x[0].upper() + a_x[1:])
    return draft("Image Finding", q, right, wrong, source=src, facts={"category": c, "images": sorted(hits)})


def _counting(s: ImageSet, seed: int, src: dict) -> Draft | None:
    r = _rng(seed, s, "count")
    n = len(s.images)
    found = []
    for c in sf.shown_categories(s, VISIBLE):
        sc = sf.set_counts(s, c, VISIBLE)
        if sc.total is None:
            continue  # some instance is not countable
        distinct = sc.tracks if sc.tracks is not None else (sc.total if s.kind != "change" else None)
        if distinct:
            found.append(("total", c, distinct, sc))
        most = max(sc.per_image)
        if most and list(sc.per_image).count(most) == 1:
            found.append(("most", c, sc.per_image.index(most), sc))
    if not found:
        return None
    form, c, value, sc = r.choice(found)
    facts = {"category": c, "per_image": list(sc.per_image), "distinct": sc.tracks, "total": sc.total}
    if form == "total":
        lo = max(0, value - r.randint(0, 3))
        t = _rng(seed, s, "count:wording").choice(TOTAL)
        return draft("Counting", t.format(p=plural(c)), number_word(value),
                     [number_word(m) for m in range(lo, lo + 4) if m != value], source=src, facts=facts)
    fill = {2: ["Both have the same number", "Neither has any"], 3: ["They all have the same number"]}.get(n, [])
    t = _rng(seed, s, "most:wording").choice(MOST)
    return draft("Counting", t.format(p=plural(c)), image_name(value),
                 [image_name(k) for k in range(n) if k != value] + fill, source=src, facts=facts)


def _difference(s: ImageSet, vocab: list[str], seed: int, src: dict) -> Draft | None:
    r = _rng(seed, s, "diff")
    pairs = [(i, j) for i in range(len(s.images)) for j in range(len(s.images)) if i != j and sf.difference(s, i, j, VISIBLE)]
    if not pairs:
        return None
    i, j = r.choice(pairs)
    diff = sf.difference(s, i, j, VISIBLE)
    right = r.choice(diff)
    in_j = set(c for c in sf.shown_categories(s, VISIBLE) if j in sf.showing(s, c, VISIBLE))
    not_i = sf.mentioned_in(s, i)
    # wrong: shown in image j, or nowhere in image i; the set's own objects first, then two absent ones
    own = [c for c in sf.shown_categories(s, VISIBLE) if c not in diff and (c in in_j or c not in not_i)]
    absent = [c for c in vocab if c not in not_i and c not in diff and c not in own]
    wrong = own + r.sample(absent, min(2, len(absent)))
    q = _rng(seed, s, "diff:wording").choice(DIFF).format(i=i + 1, j=j + 1)
    return draft("Difference Spotting", q, right, wrong, source=src,
                 facts={"image": i, "other": j, "category": right, "in_image_not_other": diff})


def _phrase(p: Property) -> str:
    return p.phrase if p.is_fact else f"{article(p.hypernym)} {p.hypernym}"


def _knowledge(s: ImageSet, kx: KnowledgeIndex | None, familiar, seed: int, src: dict) -> Draft | None:
    if kx is None:
        return None
    r = _rng(seed, s, "know")
    n = len(s.images)
    shown = [set(c for c in sf.shown_categories(s, VISIBLE) if k in sf.showing(s, c, VISIBLE)) for k in range(n)]
    mentioned = [set(sf.mentioned_in(s, k)) for k in range(n)]
    found = []
    for p in kx.properties:
        if not (p.is_fact or familiar(p.hypernym)):
            continue  # "Which image shows a conveyance?": a word a general reader would not use
        hits = _truth(s, lambda k: bool(p.members & shown[k]),
                      lambda k: not (p.holders & mentioned[k]) and kx.decidable(p, mentioned[k]))
        opts = which_images(n, hits) if hits else None
        if opts:
            found.append((p, hits, opts))
    facts_first = [f for f in found if f[0].is_fact] or found  # facts read naturally, hypernyms less so
    if not facts_first:
        return None
    p, hits, (right, wrong) = r.choice(facts_first)
    pred = _phrase(p)
    q = _rng(seed, s, "know:wording").choice(KNOW).format(pred=pred, Pred=pred[0].upper() + pred[1:])
    holders = {k: sorted(p.members & shown[k]) for k in sorted(hits)}
    return draft("Knowledge Finding", q, right, wrong, kind="knowledge", source=src,
                 facts={"property": _phrase(p), "kind": p.kind, "hypernym": p.hypernym, "images": sorted(hits),
                        "shown_holders": {image_name(k): v for k, v in holders.items()}})


def set_drafts(s: ImageSet, vocab: list[str], kx: KnowledgeIndex | None, seed: int, split: str,
               familiar=lambda name: True) -> list[Draft]:
    """The set's questions, one per task it supports; `familiar(hypernym)` (the KB's) filters hypernyms."""
    src = {"set_id": s.id, "split": split, "set_kind": s.kind}
    out = [_find(s, vocab, seed, src), _counting(s, seed, src), _difference(s, vocab, seed, src),
           _knowledge(s, kx, familiar, seed, src)]
    return [d for d in out if d is not None]


def write_multi_image(world: Path, split: str, kb, seed: int, out: Path) -> dict:
    """Writes OUT/muirbench_synthetic.json (MUIRBench's fields + Kanva's) and OUT/images/; returns counts."""
    from kanva.eval.synthetic import copy_file

    sets = load_sets(world, split)
    vocab = sorted({o.category for rec in sets.coco.images.values() for o in rec.objects})
    kx = build_index(kb, sets.coco.category_names) if kb is not None else None
    familiar = getattr(kb, "familiar", None) or (lambda name: True)
    by_set = [(s, set_drafts(s, vocab, kx, seed, split, familiar)) for s in sorted(sets.sets, key=lambda s: s.id)]
    placed = iter(place([d for _, ds in by_set for d in ds], seed))
    rows, tasks = [], {}
    for s, ds in by_set:
        names = [rec.file_name for rec in s.images]
        for _ in ds:
            p = next(placed)
            d = p.draft
            rows.append({"idx": str(len(rows)), "task": d.task, "image_relation": IMAGE_RELATION.get(s.kind, "Other"),
                         "image_type": IMAGE_TYPE, "question": d.question, "options": list(p.options),
                         "answer": p.answer, "image_list": [f"images/{n}" for n in names], "kind": d.kind,
                         **d.source, "facts": d.facts})
            tasks[d.task] = tasks.get(d.task, 0) + 1
        if ds:
            for rec in s.images:
                copy_file(sets.coco.image_dir / rec.file_name, out / "images" / rec.file_name)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    letters = {c: sum(r["answer"] == c for r in rows) for c in "ABCD"}
    return {"file": str(path), "sets": len(sets.sets), "questions": len(rows), "tasks": dict(sorted(tasks.items())),
            "letters": letters}
