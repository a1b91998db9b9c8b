"""GQA (test-dev balanced): exact match of the normalized answer, as LLaVA's figures were computed.

Data: the official question file (`testdev_balanced_questions.json`: {questionId: {imageId, question,
answer, types: {structural, semantic, detailed}, isBalanced}}); images `<imageId>.jpg`.

Normalization: LLaVA's conversion to GQA's prediction format lower-cases the answer and strips
trailing periods (`text.rstrip('.').lower()`, nothing else: surrounding spaces stay); GQA's
evaluation script then compares it to `answer` exactly. Accuracy counts the balanced questions
(`isBalanced`, all of test-dev balanced); `binary` / `open` split them by structural type ("query"
is open, everything else binary), and per structural and semantic type, as the script prints them.
A missing answer is wrong and counted. The prediction file (`--upload`) is the script's input:
[{"questionId", "prediction"}].
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign, read_json


@dataclass(frozen=True)
class GQAQuestion:
    qid: str
    question: str
    image: str
    answer: str | None
    structural: str | None
    semantic: str | None
    balanced: bool
    where: str


@dataclass
class GQAData:
    questions: list[GQAQuestion]
    source: str
    image_dir: Path


def load_gqa(paths) -> GQAData:
    if not paths or len(paths) != 1:
        raise KanvaError("gqa: --data takes one question file (testdev_balanced_questions.json)")
    path = Path(paths[0])
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise KanvaError(f"{path}: a GQA question file is a JSON object keyed by questionId")
    qs = []
    for qid, q in obj.items():
        where = f"{path} (question {qid})"
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or q.get("imageId") is None:
            raise KanvaError(f"{where}: needs 'question' and 'imageId'")
        ans = q.get("answer")
        if ans is not None and not isinstance(ans, str):
            raise KanvaError(f"{where}: 'answer' must be a string")
        types = q.get("types") if isinstance(q.get("types"), dict) else {}
        qs.append(GQAQuestion(str(qid), q["question"], f"{q['imageId']}.jpg", ans, types.get("structural"),
                              types.get("semantic"), bool(q.get("isBalanced", True)), where))
    return GQAData(qs, str(path), path.parent / "images")


def normalize(text: str) -> str:
    return text.rstrip(".").lower()


def _matched(data: GQAData, answers: list[Answer]):
    by_qid = {q.qid: i for i, q in enumerate(data.questions)}
    return assign(len(data.questions), answers, lambda a: by_qid.get(a.question_id), lambda i: data.questions[i].qid)


def _pct(v: list[bool]) -> float:
    return 100 * sum(v) / len(v) if v else 0.0


def score_gqa(data: GQAData, answers: list[Answer]) -> dict:
    by_q, cov = _matched(data, answers)
    if any(q.answer is None for q in data.questions):
        return {"benchmark": "gqa", "answers": cov.as_dict(),
                "notes": [f"{data.source}: questions without 'answer' cannot be scored; --upload writes predictions"]}
    acc, kinds = [], defaultdict(list)
    structural, semantic = defaultdict(list), defaultdict(list)
    for q, a in zip(data.questions, by_q):
        if not q.balanced:
            continue
        ok = a is not None and normalize(a.text) == q.answer
        acc.append(ok)
        if q.structural:
            kinds["open" if q.structural == "query" else "binary"].append(ok)
            structural[q.structural].append(ok)
        if q.semantic:
            semantic[q.semantic].append(ok)
    return {
        "benchmark": "gqa",
        "accuracy": _pct(acc),
        "binary": _pct(kinds["binary"]),
        "open": _pct(kinds["open"]),
        "structural": {k: _pct(v) for k, v in sorted(structural.items())},
        "semantic": {k: _pct(v) for k, v in sorted(semantic.items())},
        "questions": len(acc),
        "answers": cov.as_dict(),
    }


def upload_rows(data: GQAData, answers: list[Answer]) -> tuple[list[dict], int]:
    by_q, cov = _matched(data, answers)
    rows = [{"questionId": q.qid, "prediction": normalize(a.text) if a is not None else ""}
            for q, a in zip(data.questions, by_q)]
    return rows, cov.missing
