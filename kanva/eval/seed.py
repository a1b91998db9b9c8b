"""SEED-Bench (image part): four-option multiple choice, accuracy per evaluation dimension.

Data: the release's `SEED-Bench.json` ({"questions": [{question_id, question, choice_a..choice_d,
answer (a letter), question_type_id, data_type ("image"/"video"), data_id}], "question_type":
{dimension name: id}}); images `SEED-Bench-image/<data_id>` beside it (or `--image-root`). Only the
image questions are asked and scored (the video ones are counted in a note).

Rule, as LLaVA's SEED-Bench script scores it: an answer is right when its text equals the answer
letter exactly ("A" is right, "A." or "(A)" is not); a missing answer is wrong and counted. Reported:
the image accuracy (over all image questions, the figure LLaVA publishes as SEED-Bench-IMG) and the
accuracy per dimension, in percent (printed with 2 decimals, as the script does).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign, read_json

LETTERS = "ABCD"


@dataclass(frozen=True)
class SeedQuestion:
    qid: str
    question: str
    options: dict[str, str]
    answer: str
    dimension: str
    image: str
    where: str


@dataclass
class SeedData:
    questions: list[SeedQuestion]
    root: Path
    source: str
    skipped_video: int = 0
    order: tuple[str, ...] = ()  # dimension names by question_type_id, as the script prints them


def load_seed(path: Path) -> SeedData:
    path = Path(path)
    file = path / "SEED-Bench.json" if path.is_dir() else path
    obj = read_json(file)
    if not isinstance(obj, dict) or not isinstance(obj.get("questions"), list):
        raise KanvaError(f"{file}: SEED-Bench data is an object with a 'questions' list")
    names = {v: k for k, v in (obj.get("question_type") or {}).items()}
    qs, video = [], 0
    for i, q in enumerate(obj["questions"]):
        where = f"{file} (question {i})"
        if not isinstance(q, dict):
            raise KanvaError(f"{where}: not a JSON object")
        if q.get("data_type", "image") != "image":
            video += 1
            continue
        for key in ("question", "answer", "choice_a", "choice_b", "choice_c", "choice_d"):
            if not isinstance(q.get(key), str):
                raise KanvaError(f"{where}: needs a string {key!r}")
        if q["answer"] not in LETTERS:
            raise KanvaError(f"{where}: 'answer' must be one of A-D, got {q['answer']!r}")
        if q.get("question_id") is None or q.get("data_id") is None:
            raise KanvaError(f"{where}: needs 'question_id' and 'data_id'")
        tid = q.get("question_type_id")
        options = {c: q[f"choice_{c.lower()}"] for c in LETTERS}
        qs.append(SeedQuestion(str(q["question_id"]), q["question"], options, q["answer"],
                               names.get(tid, str(tid)), str(q["data_id"]), where))
    order = tuple(names[k] for k in sorted(names, key=lambda k: (str(type(k)), k)))
    return SeedData(qs, file.parent, str(file), video, order)


def image_dir(data: SeedData) -> Path:
    return data.root / "SEED-Bench-image"


def score_seed(data: SeedData, answers: list[Answer]) -> dict:
    if not data.questions:
        raise KanvaError(f"{data.source}: no image questions")
    by_qid = {q.qid: i for i, q in enumerate(data.questions)}
    by_q, cov = assign(len(data.questions), answers, lambda a: by_qid.get(a.question_id), lambda i: data.questions[i].qid)
    right, dims = [], defaultdict(list)
    for q, a in zip(data.questions, by_q):
        ok = a is not None and a.text == q.answer
        right.append(ok)
        dims[q.dimension].append(ok)
    result = {
        "benchmark": "seed",
        "image_accuracy": 100 * sum(right) / len(right),
        "dimensions": {d: 100 * sum(dims[d]) / len(dims[d])
                       for d in sorted(dims, key=lambda d: data.order.index(d) if d in data.order else len(data.order))},
        "questions": len(right),
        "answers": cov.as_dict(),
        "notes": [],
    }
    if data.skipped_video:
        result["notes"].append(f"{data.skipped_video} video questions not scored (image part only)")
    return result
