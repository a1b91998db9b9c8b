"""Multiple choice over several images or a video (MUIRBench and MVBench layouts): one question record and
one scorer for both.

Each layout has its own reader (kanva/eval/muirbench.py, kanva/eval/mvbench.py) that turns its file into
`McQuestion`s; scoring is the same for both: an answer is placed on its question by `question_id`, its letter
is read as MMBench's judge-free extraction reads it (`kanva.eval.mmbench.extract_choice`: the letter alone,
else exactly one letter standing as a word, else exactly one option's text inside the answer), and the result
is the percent right per task and overall, each with a 95% bootstrap interval over its questions
(kanva/eval/bootstrap.py). A missing answer is wrong and counted. Kanva's synthetic sets also mark each
question's `kind` ("perception" or "knowledge": the answer needs a fact of the knowledge base), and the
knowledge questions are reported together as their own row, since that is what the knowledge-aware and
knowledge-free data are compared on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, Coverage, assign
from kanva.eval.bootstrap import accuracy_ci
from kanva.eval.mmbench import extract_choice

KINDS = ("perception", "knowledge")


@dataclass(frozen=True)
class McQuestion:
    qid: str  # the answer file's question_id
    task: str
    question: str
    options: dict[str, str]  # letter -> text, in letter order
    answer: str  # the right letter
    images: tuple[Path, ...] = ()  # multi-image questions
    video: Path | None = None  # video questions
    kind: str | None = None  # Kanva's synthetic sets: "perception" or "knowledge"; None for other data
    where: str = ""  # file and entry, for messages


@dataclass
class McData:
    benchmark: str  # "muirbench" or "mvbench"
    questions: list[McQuestion]
    source: str


def letters_for(n: int, where: str) -> list[str]:
    if n < 2 or n > 26:
        raise KanvaError(f"{where}: needs 2 to 26 options, got {n}")
    return [chr(ord("A") + i) for i in range(n)]


def check_unique(questions: list[McQuestion]) -> None:
    seen: dict[str, str] = {}
    for q in questions:
        if q.qid in seen:
            raise KanvaError(f"{q.where}: question id {q.qid!r} is used again (first at {seen[q.qid]})")
        seen[q.qid] = q.where


def match_choices(data: McData, answers: list[Answer]) -> tuple[list[Answer | None], Coverage]:
    index = {q.qid: i for i, q in enumerate(data.questions)}
    return assign(len(data.questions), answers, lambda a: index.get(a.question_id), lambda i: data.questions[i].qid)


def outcomes(data: McData, answers: list[Answer]) -> tuple[list[Answer | None], list[str | None], list[bool], Coverage]:
    """Per question: its answer (None: missing), the letter it picks (None: missing or unreadable) and whether
    that is right; with the coverage of the answers. The unit a paired comparison of two models resamples."""
    by_q, cov = match_choices(data, answers)
    picked = [extract_choice(a.text, q.options) if a is not None else None for q, a in zip(data.questions, by_q)]
    return by_q, picked, [p == q.answer for p, q in zip(picked, data.questions)], cov


def _row(correct: list[bool], seed: int) -> dict:
    lo, hi = accuracy_ci(correct, seed=seed)
    return {"accuracy": 100 * sum(correct) / len(correct), "ci": [lo, hi], "questions": len(correct)}


def score_choices(data: McData, answers: list[Answer], seed: int = 0) -> dict:
    """Percent right overall, per task and per kind, each with its 95% bootstrap interval."""
    if not data.questions:
        raise KanvaError(f"{data.source}: no questions")
    by_q, picked, right, cov = outcomes(data, answers)
    tasks: dict[str, list[bool]] = {}
    kinds: dict[str, list[bool]] = {}
    for q, ok in zip(data.questions, right):
        tasks.setdefault(q.task, []).append(ok)
        if q.kind is not None:
            kinds.setdefault(q.kind, []).append(ok)
    overall = _row(right, seed)
    answered = [p for p, a in zip(picked, by_q) if a is not None]
    return {
        "benchmark": data.benchmark,
        "overall": overall["accuracy"],
        "overall_ci": overall["ci"],
        "tasks": {t: _row(v, seed) for t, v in sorted(tasks.items())},
        "kinds": {k: _row(kinds[k], seed) for k in KINDS if k in kinds},
        "questions": len(data.questions),
        "failed_extraction": sum(p is None for p in answered),
        "letters": {"truth": dict(sorted(Counter(q.answer for q in data.questions).items())),
                    "predicted": dict(sorted(Counter(p for p in answered if p is not None).items()))},
        "answers": cov.as_dict(),
        "notes": ["percent right; [lo, hi] are 95% bootstrap intervals over the questions "
                  "(a missing or unreadable answer is wrong)"],
    }
