"""LLaVA answer files: JSON lines with `question_id` and `text` (plus, often, `prompt`, `category`, `image`).

Every benchmark scores a list of `Answer`s against its ground truth. Matching an answer to its question
is benchmark-specific (MME by subtask + image + question text, POPE by split + image + text, ...), but the
bookkeeping is shared: `assign` places each answer on at most one question and counts what did not fit,
so a missing answer is scored as wrong and reported, a duplicate is counted (the first one is kept), and
an answer that matches no question is counted as unmatched. Nothing is dropped without a count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from kanva.errors import KanvaError
from kanva.jsonfile import read_json, read_jsonl  # noqa: F401  (the readers every scorer uses)


def read_json_or_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a file that is either one JSON list of objects or JSON lines (LLaVA ships both)."""
    path = Path(path)
    if not path.is_file():
        raise KanvaError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        head = f.read(1 << 12).lstrip()
    if head.startswith("["):
        rows = read_json(path)
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise KanvaError(f"{path}: item {i} is not a JSON object")
            out.append((i + 1, row))
        return out
    return list(read_jsonl(path))


def qid_str(value: Any) -> str:
    """Question ids are compared as strings: 12 and "12" are the same question (files disagree on type)."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise ValueError(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def row_qid(row: dict, where: str) -> str:
    """A row's `question_id` as a string; a missing or non-scalar id is an error naming the row."""
    try:
        return qid_str(row.get("question_id"))
    except ValueError:
        raise KanvaError(f"{where}: needs a 'question_id' (string or number), got {row.get('question_id')!r}") from None


@dataclass(frozen=True)
class Answer:
    """One model answer. `where` is "file:line" for messages."""

    question_id: str
    text: str
    prompt: str | None = None
    category: str | None = None
    image: str | None = None
    where: str = ""


def _opt_str(row: dict, key: str, where: str) -> str | None:
    v = row.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise KanvaError(f"{where}: field {key!r} must be a string, got {type(v).__name__}")
    return v


def load_answers(path: Path) -> list[Answer]:
    """Reads a LLaVA answer file (JSON lines). Each row needs `question_id` and a string `text`."""
    out = []
    for n, row in read_jsonl(Path(path)):
        where = f"{path}:{n}"
        qid = row_qid(row, where)
        if "text" not in row:
            raise KanvaError(f"{where}: answer {qid!r} has no 'text'")
        text = row["text"]
        if not isinstance(text, str):
            raise KanvaError(f"{where}: answer {qid!r}: 'text' must be a string, got {type(text).__name__}")
        out.append(
            Answer(
                question_id=qid,
                text=text,
                prompt=_opt_str(row, "prompt", where),
                category=_opt_str(row, "category", where),
                image=_opt_str(row, "image", where),
                where=where,
            )
        )
    return out


@dataclass
class Coverage:
    """How the answers met the questions: reported with every score."""

    expected: int  # questions in the ground truth
    matched: int  # questions with an answer
    missing: int  # questions without one (scored as wrong)
    duplicates: int  # extra answers to an already-answered question (the first is kept)
    unmatched: int  # answers that fit no question (ignored for the score, counted here)
    examples: dict[str, list[str]]  # a few question ids / locations per problem, for the message

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        s = (
            f"answers: {self.matched}/{self.expected} questions answered, {self.missing} missing (scored wrong), "
            f"{self.duplicates} duplicate (first kept), {self.unmatched} unmatched"
        )
        for k, v in self.examples.items():
            if v:
                s += f"\n  {k}: {', '.join(v)}"
        return s


def assign(
    n_questions: int,
    answers: Sequence[Answer],
    locate: Callable[[Answer], int | None],
    describe: Callable[[int], str] = str,
    max_examples: int = 3,
    hint: str = "",
) -> tuple[list[Answer | None], Coverage]:
    """Places each answer on the question `locate` finds for it (or none); returns answers by question index.

    Answers that meet no question at all are not a score of 0 but a wrong pairing (another benchmark, split
    or run; ids renamed): KanvaError with the reason, `hint` (what the benchmark needs to place answers)
    appended."""
    by_q: list[Answer | None] = [None] * n_questions
    dup: list[str] = []
    unmatched: list[str] = []
    for a in answers:
        i = locate(a)
        if i is None:
            unmatched.append(f"{a.question_id!r} ({a.where})")
        elif by_q[i] is not None:
            dup.append(f"{a.question_id!r} ({a.where})")
        else:
            by_q[i] = a
    missing = [describe(i) for i, a in enumerate(by_q) if a is None]
    if n_questions and len(missing) == n_questions:
        if not answers:
            reason = f"there are no answers to score ({n_questions} questions)"
        else:
            reason = (f"none of the {len(answers)} answers matches any of the {n_questions} questions (answers "
                      f"{', '.join(unmatched[:max_examples]) or ', '.join(dup[:max_examples])}; questions "
                      f"{', '.join(missing[:max_examples])}): are the answers and the data from the same benchmark "
                      "and split?")
        raise KanvaError(reason + (f" {hint}" if hint else ""))
    cov = Coverage(
        expected=n_questions,
        matched=n_questions - len(missing),
        missing=len(missing),
        duplicates=len(dup),
        unmatched=len(unmatched),
        examples={
            "missing": missing[:max_examples],
            "duplicate": dup[:max_examples],
            "unmatched": unmatched[:max_examples],
        },
    )
    return by_q, cov
