"""ScienceQA-IMG: multiple choice science questions, scored on the test questions that have an image.

Data: `problems.json` ({pid: {question, choices, answer (index), hint, image (file name or null), split, ...}})
and `pid_splits.json` ({split: [pid, ...]}), in one folder (or `--data problems.json` with the splits file
beside it). IMG accuracy counts the test questions with an image (2017 of the 4241 in the release);
`accuracy` counts all test questions. Images live at `<root>/images/<split>/<pid>/<image>` or
`<root>/<split>/<pid>/<image>` (LLaVA's layout).

Prompt (LLaVA-1.5): a "Context: {hint}" line (omitted when the hint is empty), the question, the
options as "A. ..." lines, then "Answer with the option's letter from the given choices directly."
Extraction as LLaVA's evaluation does it: the answer is exactly a letter; else it starts with a letter
and ". "; else exactly one "The answer is X." match; else it failed. Letters are A-E as in LLaVA (the
most choices a ScienceQA question has); a letter beyond the question's options is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign, read_json
from kanva.eval.prompts import choice_prompt

# The letters LLaVA's extraction recognises; a question with more choices widens the set.
BASE_LETTERS = "ABCDE"
_THE_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")  # "." is any character, as in LLaVA's rule


@dataclass(frozen=True)
class SQAQuestion:
    pid: str
    question: str
    choices: tuple[str, ...]
    answer: int
    hint: str
    image: str | None
    where: str

    @property
    def letters(self) -> str:
        return "".join(chr(ord("A") + i) for i in range(len(self.choices)))


@dataclass
class SQAData:
    questions: list[SQAQuestion]
    root: Path
    split: str


def load_sqa(path: Path, split: str = "test") -> SQAData:
    path = Path(path)
    root = path if path.is_dir() else path.parent
    problems_path = path if path.is_file() else root / "problems.json"
    problems = read_json(problems_path)
    splits = read_json(root / "pid_splits.json")
    if not isinstance(problems, dict) or not isinstance(splits, dict):
        raise KanvaError(f"{root}: problems.json and pid_splits.json must be JSON objects")
    if split not in splits:
        raise KanvaError(f"{root / 'pid_splits.json'}: no split {split!r} (has {', '.join(splits)})")
    qs = []
    for pid in splits[split]:
        pid = str(pid)
        where = f"{problems_path} (pid {pid})"
        p = problems.get(pid)
        if not isinstance(p, dict):
            raise KanvaError(f"{where}: listed in split {split!r} but not in problems.json")
        choices = p.get("choices")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise KanvaError(f"{where}: 'choices' must be a list of at least two strings")
        ans = p.get("answer")
        if not isinstance(ans, int) or not 0 <= ans < len(choices):
            raise KanvaError(f"{where}: 'answer' must index one of the {len(choices)} choices, got {ans!r}")
        if not isinstance(p.get("question"), str):
            raise KanvaError(f"{where}: 'question' must be a string")
        hint = p.get("hint") or ""
        qs.append(SQAQuestion(pid, p["question"], tuple(choices), ans, hint, p.get("image") or None, where))
    return SQAData(qs, root, split)


def build_prompt(q: SQAQuestion, style: str = "llava") -> str:
    """The LLaVA-1.5 prompt (lmms-eval's ScienceQA prompt is the same)."""
    options = {chr(ord("A") + i): c for i, c in enumerate(q.choices)}
    return choice_prompt(q.question, options, q.hint.strip() or None, style, context_label=True)


def image_path(data: SQAData, q: SQAQuestion, image_root: Path | None = None) -> Path | None:
    if q.image is None:
        return None
    roots = [image_root] if image_root else [data.root / "images" / data.split, data.root / data.split]
    for r in roots:
        p = Path(r) / q.pid / q.image
        if p.is_file():
            return p
    raise KanvaError(f"{q.where}: image {q.image!r} not found under {', '.join(str(Path(r) / q.pid) for r in roots)}")


def extract_letter(answer: str, n_choices: int) -> str | None:
    """The letter an answer gives (may be beyond the choices: then it is wrong), or None if it failed."""
    letters = BASE_LETTERS if n_choices <= len(BASE_LETTERS) else "".join(chr(65 + i) for i in range(n_choices))
    if len(answer) == 1 and answer in letters:
        return answer
    if len(answer) >= 3 and answer[0] in letters and answer[1:3] == ". ":
        return answer[0]
    found = _THE_ANSWER_IS.findall(answer)
    if len(found) == 1:
        return found[0]
    return None


def score_sqa(data: SQAData, answers: list[Answer]) -> dict:
    """IMG accuracy and accuracy over the whole split (percent); missing and failed answers are wrong."""
    by_pid = {q.pid: i for i, q in enumerate(data.questions)}
    by_q, cov = assign(len(data.questions), answers, lambda a: by_pid.get(a.question_id), lambda i: data.questions[i].pid)
    right, img_right, failed = [], [], 0
    for q, a in zip(data.questions, by_q):
        letter = extract_letter(a.text, len(q.choices)) if a is not None else None
        failed += a is not None and letter is None
        ok = letter is not None and letter in q.letters and q.letters.index(letter) == q.answer
        right.append(ok)
        if q.image is not None:
            img_right.append(ok)
    return {
        "benchmark": "sqa",
        "img_accuracy": 100 * sum(img_right) / len(img_right) if img_right else 0.0,
        "accuracy": 100 * sum(right) / len(right) if right else 0.0,
        "img_questions": len(img_right),
        "questions": len(right),
        "split": data.split,
        "failed_extraction": failed,
        "answers": cov.as_dict(),
    }
