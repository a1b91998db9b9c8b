"""Dataset quality figures for the report (and quickstart's summary): computed from LLaVA samples + annotations.

Every figure is computed the same way for the seed and the evolved set, so they can stand side by side:
sizes, question/answer lengths, distinct-n, near-duplicate rate (MinHash, within an image), yes ratio,
answer-letter distribution, answer formats, category coverage, a CHAIR-style hallucination rate, and the
share of units that use knowledge (where provenance says so).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kanva.data.coco import CocoSet
from kanva.data.llava import sample_images
from kanva.data.minhash import near_duplicate_flags
from kanva.data.text import distinct_n, normalize, words
from kanva.data.unit import LETTERS, mc_letter, parse_human
from kanva.data.vocab import mentions


@dataclass
class QA:
    """One question-answer turn of a sample, with what provenance knows about it."""

    sample: str
    image: str | None
    question: str
    answer: str
    fmt: str
    absent: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # values of the KB facts the unit used


def unit_key(image: str | list[str], question: str, options: list[str], answer: str) -> tuple[str, str]:
    """Join key of a turn with its provenance record. For multiple choice it uses the option set and the correct
    option's text, not the letter: balancing may rotate the options after the record was written. A set's
    images (a list) key as one '|'-joined string."""
    if options and answer in LETTERS[: len(options)]:
        answer = options[LETTERS.index(answer)]
        options = sorted(options)
    key = image if isinstance(image, str) else "|".join(image)
    return key, normalize(f"{question} {' '.join(options)} {answer}")


def media_of(sample: dict) -> str | list[str]:
    """What a sample's provenance records name as its image: its image (or list of images), else its video."""
    return sample.get("image") or sample.get("video") or ""


def units_of(samples: list[dict], info: dict[tuple[str, str], dict] | None = None) -> list[QA]:
    """Every turn of every sample; `info` maps (image, normalized q+a) to provenance (absent, facts)."""
    out = []
    for s in samples:
        images = sample_images(s)
        image = images[0] if len(images) == 1 else None
        conv = s["conversations"]
        for t in range(0, len(conv) - 1, 2):
            answer = conv[t + 1]["value"]
            q, fmt, opts = parse_human(conv[t]["value"], answer)
            answer = mc_letter(answer, opts) if fmt == "mc" else answer
            qa = QA(str(s["id"]), image, q, answer, fmt)
            meta = (info or {}).get(unit_key(media_of(s), q, opts, answer))
            if meta:
                qa.absent = list(meta.get("absent") or [])
                qa.facts = [str(f[2]) for f in meta.get("facts") or []]
            out.append(qa)
    return out


HIST_BINS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 60)  # upper edges (words); the last bin is 60+


def _dist(values: list[int]) -> dict[str, Any]:
    """Summary statistics and a histogram (counts per bin of HIST_BINS, plus one bin for longer)."""
    hist = [0] * (len(HIST_BINS) + 1)
    for v in values:
        hist[next((i for i, edge in enumerate(HIST_BINS) if v <= edge), len(HIST_BINS))] += 1
    if not values:
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0, "hist": hist}
    ordered = sorted(values)
    return {"mean": round(statistics.fmean(values), 2), "median": float(statistics.median(values)),
            "p90": float(ordered[int(0.9 * (len(ordered) - 1))]), "max": ordered[-1], "hist": hist}


def chair(units: list[QA], coco: CocoSet | None) -> dict[str, Any]:
    """CHAIR-style rates over answers: object mentions (not negated) absent from annotations and captions.

    CHAIR_i = hallucinated mentions / all mentions; CHAIR_s = answers with one or more hallucinated mentions /
    answers with any mention. Objects a unit names on purpose as absent, objects named inside the KB facts it
    used ("used for driving people around"; both known from provenance) and words printed in the image (an
    OCR answer "TAXI" is not a car) do not count: the same allowances as elimination's hallucination check.
    """
    if coco is None:
        return {"chair_i": None, "chair_s": None, "mentions": 0}
    total = bad = answers = bad_answers = 0
    for u in units:
        rec = coco.lookup(u.image) if u.image else None
        if rec is None:
            continue
        allowed = set(rec.counts) | rec.caption_mentions | set(u.absent)
        allowed.update(m.category for v in u.facts for m in mentions(v))
        allowed.update(m.category for t in rec.texts for m in mentions(t.text))
        found = [m for m in mentions(u.answer) if not m.negated]
        if not found:
            continue
        answers += 1
        wrong = [m for m in found if m.category not in allowed]
        total += len(found)
        bad += len(wrong)
        bad_answers += bool(wrong)
    return {"chair_i": round(bad / total, 4) if total else 0.0,
            "chair_s": round(bad_answers / answers, 4) if answers else 0.0, "mentions": total}


def dataset_metrics(samples: list[dict], coco: CocoSet | None, info: dict | None = None,
                    with_provenance: bool = False) -> dict[str, Any]:
    units = units_of(samples, info)
    qs = [u.question for u in units]
    ans = [u.answer for u in units]
    yn = Counter(normalize(u.answer) for u in units if normalize(u.answer) in ("yes", "no"))
    letters = Counter(u.answer.strip() for u in units if u.fmt == "mc")
    cats: Counter = Counter()
    for u in units:
        cats.update({m.category for m in mentions(f"{u.question} {u.answer}") if not m.negated})
    names = coco.category_names if coco is not None else sorted(cats)
    dup = near_duplicate_flags([f"{u.question} {u.answer}" for u in units], [u.image or u.sample for u in units])
    out: dict[str, Any] = {
        "samples": len(samples),
        "units": len(units),
        "images": len({u.image for u in units if u.image}),
        "formats": dict(sorted(Counter(u.fmt for u in units).items())),
        "question_words": _dist([len(words(q)) for q in qs]),
        "answer_words": _dist([len(words(a)) for a in ans]),
        "distinct": {f"question_{n}": round(distinct_n(qs, n), 4) for n in (1, 2, 3)}
        | {f"answer_{n}": round(distinct_n(ans, n), 4) for n in (1, 2, 3)},
        "near_duplicate_rate": round(sum(dup) / len(dup), 4) if dup else 0.0,
        "yes_no": {"yes": yn["yes"], "no": yn["no"],
                   "yes_ratio": round(yn["yes"] / (yn["yes"] + yn["no"]), 4) if yn else None},
        "letters": {k: letters.get(k, 0) for k in ("A", "B", "C", "D")},
        "categories": {"covered": sum(1 for c in names if cats[c]), "of": len(names),
                       "counts": {c: cats[c] for c in names if cats[c]}},
        "chair": chair(units, coco),
        "knowledge_share": (round(sum(bool(u.facts) for u in units) / len(units), 4) if units else 0.0)
        if with_provenance else None,
    }
    return out


def provenance_metrics(records: list[dict]) -> dict[str, Any]:
    """Volumes, acceptance and rejection reasons from provenance (finalize drops applied to 'kept')."""
    dropped = {r["id"]: r["reason"] for r in records if r.get("stage") == "finalize" and r.get("status") == "rejected"}
    cands = [r for r in records if "operator" in r and r.get("round")]
    per_op: dict[str, Counter] = {}
    volume: dict[str, Counter] = {}
    reasons: Counter = Counter()
    reasons_by_op: dict[str, Counter] = {}
    templates: Counter = Counter()
    for r in cands:
        op = r["operator"]
        status = r["status"]
        reason = r.get("reason")
        if status == "kept" and r["id"] in dropped:
            status, reason = "rejected", dropped[r["id"]]
        per_op.setdefault(op, Counter())[status] += 1
        if status == "kept":
            volume.setdefault(op, Counter())[str(r["round"])] += 1
            templates[r.get("template", op)] += 1
        else:
            reasons[reason] += 1
            reasons_by_op.setdefault(op, Counter())[reason] += 1
    acceptance = {op: {"candidates": sum(c.values()), "kept": c["kept"],
                       "rate": round(c["kept"] / sum(c.values()), 4)} for op, c in sorted(per_op.items())}
    inputs = Counter(r["status"] for r in records if r.get("stage") == "input")
    # Per image grounding (kanva/data/image_sources.py): input samples, candidates and kept units; samples
    # with no image or several, and excluded ones, under "(passthrough)" and "(excluded)".
    ground_of = {r["image_id"]: r["grounding"] for r in records if r.get("stage") == "input" and "grounding" in r}
    grounding: dict[str, Counter] = {}
    for r in records:
        if r.get("stage") == "input":
            grounding.setdefault(r.get("grounding") or f"({r['status']})", Counter())["samples"] += 1
    for r in cands:
        g = ground_of.get(r.get("image_id"))
        if g is not None:
            row = grounding.setdefault(g, Counter())
            row["candidates"] += 1
            row["kept"] += r["status"] == "kept" and r["id"] not in dropped
            row[f"op:{r['operator']}"] += r["status"] == "kept" and r["id"] not in dropped
    return {
        "candidates": len(cands),
        "kept": sum(a["kept"] for a in acceptance.values()),
        "acceptance": acceptance,
        "volume": {op: dict(sorted(c.items())) for op, c in sorted(volume.items())},
        "rejections": dict(reasons.most_common()),
        "rejections_by_operator": {op: dict(c.most_common()) for op, c in sorted(reasons_by_op.items())},
        "templates": dict(templates.most_common()),
        "inputs": dict(sorted(inputs.items())),
        "grounding": {g: {"samples": c["samples"], "candidates": c["candidates"], "kept": c["kept"],
                          "kept_by_operator": {k[3:]: v for k, v in sorted(c.items()) if k.startswith("op:") and v}}
                      for g, c in sorted(grounding.items())},
        "models": sorted({r["model"] for r in cands if r.get("model")}),
        "prompts": sorted({r["prompt"] for r in cands if r.get("prompt")}),
    }
