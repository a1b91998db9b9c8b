"""VQAv2, VizWiz and TextVQA: open short answers scored against ten human answers (soft accuracy).

Accuracy of an answer = min(#humans giving it / 3, 1), averaged over the ten subsets of nine humans
(`vqa_normalize.soft_accuracy`), in percent; a missing answer scores 0 and is counted. What is
normalized differs per official evaluator (kept exact, see `vqa_normalize`):

- VQAv2 (the VQA tool): the prediction gets punctuation + digit/article processing; the human answers
  only punctuation, and only when they are not all identical. Per answer type (yes/no, number, other).
- VizWiz (its tool, the same code): the prediction as VQAv2; human answers compared as written.
  Per answer type, `unanswerable` among them.
- TextVQA (LLaVA's evaluation, EvalAI's processor): both sides through `evalai_answer`.

Data: VQAv2 `v2_OpenEnded_mscoco_<split>_questions.json` (+ `v2_mscoco_<split>_annotations.json` to
score); VizWiz `val.json` / `test.json` (a list of {image, question, answers, answer_type}); TextVQA
`TextVQA_0.5.1_<split>.json` (+ the Rosetta OCR file `TextVQA_Rosetta_OCR_v0.2_<split>.json` for the
prompt variant with "Reference OCR token: ..." that LLaVA-1.5 used). A test split has no human
answers: `upload_rows` gives the file the evaluation server takes instead.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign, read_json
from kanva.eval.prompts import SHORT_ANSWER, normalize_question
from kanva.eval.vqa_normalize import evalai_answer, soft_accuracy, vqa_answer, vqa_punctuation

VQA_BENCHES = ("vqav2", "vizwiz", "textvqa")
# LLaVA-1.5's VizWiz instruction, placed before the short-answer one (its figures depend on it).
UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."
OCR_PREFIX = "Reference OCR token: "


@dataclass(frozen=True)
class VQAQuestion:
    qid: str  # the answer file's question_id
    question: str
    image: str  # file name under the image folder
    humans: tuple[str, ...] | None  # ten human answers; None on a test split
    answer_type: str | None
    where: str
    image_id: str = ""
    question_type: str | None = None  # VQAv2's question_type ("what color", "how many", ...)
    ocr: tuple[str, ...] = ()
    index: int = 0  # position in the file (LLaVA numbers VizWiz questions so)


@dataclass
class VQAData:
    bench: str
    questions: list[VQAQuestion]
    sources: list[str]
    image_dir: Path  # default image folder: beside the data
    ocr: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def annotated(self) -> bool:
        return all(q.humans is not None for q in self.questions)


def _str(obj: dict, key: str, where: str) -> str:
    v = obj.get(key)
    if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
        raise KanvaError(f"{where}: needs {key!r} (a string or number), got {v!r}")
    return str(v)


def _humans(obj: dict, where: str, key: str = "answers") -> tuple[str, ...]:
    raw = obj.get(key)
    if not isinstance(raw, list) or not raw:
        raise KanvaError(f"{where}: {key!r} must be a non-empty list of human answers")
    out = []
    for a in raw:
        a = a.get("answer") if isinstance(a, dict) else a
        if not isinstance(a, str):
            raise KanvaError(f"{where}: every human answer must be a string, got {a!r}")
        out.append(a)
    return tuple(out)


# --- loading ---------------------------------------------------------------------------------------------
def _load_vqav2(paths: list[Path]) -> VQAData:
    questions_file = annotations_file = None
    for p in paths:
        obj = read_json(p)
        if isinstance(obj, dict) and "questions" in obj:
            questions_file, qobj = p, obj
        elif isinstance(obj, dict) and "annotations" in obj:
            annotations_file, aobj = p, obj
        else:
            raise KanvaError(f"{p}: neither a VQA questions file ('questions') nor an annotations file ('annotations')")
    if questions_file is None:
        raise KanvaError("vqav2: --data needs the questions file (v2_OpenEnded_mscoco_<split>_questions.json)")
    subtype = str(qobj.get("data_subtype") or "")
    image_split = "test2015" if subtype.startswith("test") else subtype  # test-dev images live in test2015
    ann: dict[str, dict] = {}
    if annotations_file is not None:
        for i, a in enumerate(aobj["annotations"]):
            where = f"{annotations_file} (annotation {i})"
            ann[_str(a, "question_id", where)] = {**a, "_where": where}
    qs = []
    for i, q in enumerate(qobj["questions"]):
        where = f"{questions_file} (question {i})"
        qid = _str(q, "question_id", where)
        image_id = _str(q, "image_id", where)
        humans = atype = qtype = None
        if annotations_file is not None:
            a = ann.get(qid)
            if a is None:
                raise KanvaError(f"{where}: question {qid} has no annotation in {annotations_file}")
            humans, atype, qtype = _humans(a, a["_where"]), a.get("answer_type"), a.get("question_type")
        name = f"COCO_{image_split}_{int(image_id):012d}.jpg" if image_split and image_id.isdigit() else f"{image_id}.jpg"
        qs.append(VQAQuestion(qid, _str(q, "question", where), name, humans, atype, where, image_id, index=i,
                              question_type=qtype))
    return VQAData("vqav2", qs, [str(p) for p in paths], Path(questions_file).parent / image_split)


def _load_vizwiz(paths: list[Path]) -> VQAData:
    if len(paths) != 1:
        raise KanvaError(f"vizwiz: give one annotation file (val.json or test.json), got {len(paths)}")
    path = paths[0]
    rows = read_json(path)
    if not isinstance(rows, list):
        raise KanvaError(f"{path}: a VizWiz annotation file is a JSON list of questions")
    qs = []
    for i, r in enumerate(rows):
        where = f"{path} (item {i})"
        if not isinstance(r, dict):
            raise KanvaError(f"{where}: not a JSON object")
        image = _str(r, "image", where)
        humans = _humans(r, where) if "answers" in r else None
        qs.append(VQAQuestion(image, _str(r, "question", where), image, humans, r.get("answer_type"), where, index=i))
    split = Path(path).stem
    return VQAData("vizwiz", qs, [str(path)], Path(path).parent / split)


def _load_textvqa(paths: list[Path]) -> VQAData:
    qa_file, ocr = None, {}
    for p in paths:
        obj = read_json(p)
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list):
            raise KanvaError(f"{p}: a TextVQA file is an object with a 'data' list")
        if data and isinstance(data[0], dict) and "question" in data[0]:
            qa_file, qa = p, data
        else:  # OCR: {"image_id", "ocr_tokens"} per image
            for i, r in enumerate(data):
                where = f"{p} (item {i})"
                toks = r.get("ocr_tokens") if isinstance(r, dict) else None
                if not isinstance(toks, list) or not all(isinstance(t, str) for t in toks):
                    raise KanvaError(f"{where}: needs 'ocr_tokens', a list of strings")
                ocr[_str(r, "image_id", where)] = tuple(toks)
    if qa_file is None:
        raise KanvaError("textvqa: --data needs the question file (TextVQA_0.5.1_<split>.json)")
    qs = []
    for i, r in enumerate(qa):
        where = f"{qa_file} (item {i})"
        image_id = _str(r, "image_id", where)
        humans = _humans(r, where) if "answers" in r else None
        toks = ocr.get(image_id, tuple(r["ocr_tokens"]) if isinstance(r.get("ocr_tokens"), list) else ())
        qs.append(VQAQuestion(_str(r, "question_id", where), _str(r, "question", where), f"{image_id}.jpg", humans,
                              r.get("answer_type"), where, image_id, ocr=toks, index=i))
    has_ocr = bool(ocr) or any("ocr_tokens" in r for r in qa[:1])
    return VQAData("textvqa", qs, [str(p) for p in paths], Path(qa_file).parent / "train_images", ocr=has_ocr)


LOADERS = {"vqav2": _load_vqav2, "vizwiz": _load_vizwiz, "textvqa": _load_textvqa}


def load_vqa(bench: str, paths) -> VQAData:
    if not paths:
        raise KanvaError(f"{bench}: --data is required")
    return LOADERS[bench]([Path(p) for p in paths])


# --- prompts ---------------------------------------------------------------------------------------------
def build_prompt(data: VQAData, q: VQAQuestion) -> str:
    """LLaVA-1.5's prompts: question, [OCR line | VizWiz instruction], short-answer instruction."""
    lines = [q.question]
    if data.bench == "textvqa" and data.ocr and q.ocr:
        lines.append(OCR_PREFIX + ", ".join(q.ocr))
    if data.bench == "vizwiz":
        lines.append(UNANSWERABLE)
    lines.append(SHORT_ANSWER)
    return "\n".join(lines)


def _question_of_prompt(prompt: str) -> str:
    """The question line of a prompt (LLaVA's TextVQA answers are matched by image id + question)."""
    lines = [ln for ln in prompt.replace("<image>", "").strip().split("\n") if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(OCR_PREFIX)]
    return normalize_question("\n".join(lines)).split("\n")[0].strip().lower() if lines else ""


def locate_fn(data: VQAData):
    by_qid = {q.qid: i for i, q in enumerate(data.questions)}
    by_image_question = {(q.image_id, q.question.strip().lower()): i for i, q in enumerate(data.questions)}
    by_index = {str(q.index): i for i, q in enumerate(data.questions)}
    stems = {Path(q.image).stem: i for i, q in enumerate(data.questions)} if data.bench == "vizwiz" else {}

    def locate(a: Answer) -> int | None:
        if a.question_id in by_qid:
            return by_qid[a.question_id]
        if data.bench == "vizwiz":
            if a.image and a.image in by_qid:
                return by_qid[a.image]
            return stems.get(a.question_id, by_index.get(a.question_id))
        if data.bench == "textvqa" and a.prompt:  # LLaVA's file: question_id holds the image id
            return by_image_question.get((a.question_id, _question_of_prompt(a.prompt)))
        return None

    return locate


def _matched(data: VQAData, answers: list[Answer]):
    return assign(len(data.questions), answers, locate_fn(data), lambda i: data.questions[i].qid)


# --- scoring ---------------------------------------------------------------------------------------------
def question_accuracy(bench: str, prediction: str, humans: tuple[str, ...]) -> float:
    if bench == "textvqa":
        return soft_accuracy(evalai_answer(prediction), [evalai_answer(h) for h in humans])
    pred = vqa_answer(prediction)
    if bench == "vqav2":
        gts = [h.replace("\n", " ").replace("\t", " ").strip() for h in humans]
        if len(set(gts)) > 1:
            gts = [vqa_punctuation(h) for h in gts]
        return soft_accuracy(pred, gts)
    return soft_accuracy(pred, list(humans))  # vizwiz: human answers as written


def score_vqa(data: VQAData, answers: list[Answer]) -> dict:
    """Accuracy (percent) overall and per answer type; a test split gives a note instead of scores."""
    by_q, cov = _matched(data, answers)
    if not data.annotated:
        return {
            "benchmark": data.bench,
            "answers": cov.as_dict(),
            "notes": [f"{data.sources[0]}: no human answers (a test split); `kanva eval score {data.bench} "
                      "--upload FILE` writes the evaluation server's file"],
        }
    accs, by_type, by_qtype = [], defaultdict(list), defaultdict(list)
    for q, a in zip(data.questions, by_q):
        acc = question_accuracy(data.bench, a.text, q.humans) if a is not None else 0.0
        accs.append(acc)
        if q.answer_type:
            by_type[q.answer_type].append(acc)
        if q.question_type:
            by_qtype[q.question_type].append(acc)
    result = {
        "benchmark": data.bench,
        "accuracy": 100 * sum(accs) / len(accs) if accs else 0.0,
        "answer_types": {t: 100 * sum(v) / len(v) for t, v in sorted(by_type.items())},
        "questions": len(accs),
        "answers": cov.as_dict(),
    }
    if by_qtype:  # the VQA tool's perQuestionType
        result["question_types"] = {t: 100 * sum(v) / len(v) for t, v in sorted(by_qtype.items())}
    return result


def upload_rows(data: VQAData, answers: list[Answer]) -> tuple[list[dict], int]:
    """The server's result file: one row per question (a missing answer is ""), and the missing count.

    Answers pass through EvalAI's processor first, as LLaVA's submission scripts do.
    """
    by_q, cov = _matched(data, answers)
    rows = []
    for q, a in zip(data.questions, by_q):
        text = evalai_answer(a.text) if a is not None else ""
        if data.bench == "vizwiz":
            rows.append({"image": q.image, "answer": text})
        else:
            rows.append({"question_id": int(q.qid) if q.qid.isdigit() else q.qid, "answer": text})
    return rows, cov.missing
