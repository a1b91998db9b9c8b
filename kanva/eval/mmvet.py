"""MM-Vet: open answers graded 0-1 by a judge, totals per capability and capability combination.

Data: the release's `mm-vet.json` ({"v1_0": {imagename, capability: [rec, ocr, ...], question, answer}})
in a folder with `images/`. The official grader writes a grade file, {id: {"model": [...],
"content": [...], "score": [...]}} with one entry per judge run; Kanva reads and writes that format.

Scores, as the official grader computes them: per run, a capability's score = 100 * sum of the scores
of the questions having it / the number of such questions in the metadata (so an ungraded question
counts 0 and is reported); `total` likewise over all questions; a capability combination (the exact
set of a question's capabilities) likewise. Reported: the mean over runs (printed with 1 decimal, as
the grader rounds), `std` = population standard deviation of the per-run totals, and the per-run
totals. Capabilities are ordered by how many questions have them, combinations by how many questions
have exactly them (ties in order of appearance); a combination is named by joining its capabilities
with "_" in capability order (the grader joins a Python set, whose order varies between runs of it).
Without metadata only the total is computed, over the questions of the grade file.

Grading (`grade_answers`): the judge gets one user message, the few-shot prompt + "\\n" + "question |
ground truth (<AND>/<OR> spaced) | prediction | " with max_tokens 3 at temperature 0; the reply's first
space-separated token must be a number in [0, 1]. An unusable reply is asked again at temperature
+0.5, up to 5 tries; then that question's run is a failure, counted and reported, never a default 0.0
(the official grader writes 0.0 there). The prompt is the official one when `--judge-prompt` gives it
(a text file, or the official `mm-vet_evaluator.py`, whose `prompt` string is read); else Kanva's own
prompt, and the results say `comparable: false`.
"""

from __future__ import annotations

import ast
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign, read_json
from kanva.eval.judge import JudgeError, ask_parsed, judge_record, prompt_hash

MAX_TRIES = 5
KANVA_PROMPT = (
    "You grade an AI model's answer against a ground-truth answer. In the ground truth, <AND> joins "
    "elements that must all appear in the prediction for full credit, and <OR> joins alternatives of which "
    "any one gives full credit. Give partial credit for partly correct answers. Reply with the correctness "
    "only: one of 0.0, 0.1, 0.2, ..., 0.9, 1.0, where 1.0 is fully correct. Complete the correctness of "
    "the last row.\n\n"
    "Question | Ground truth | Prediction | Correctness\n"
    "--- | --- | --- | ---\n"
    "How many apples are there? | 3 | There are three apples on the plate. | 1.0\n"
    "Which two colours does the flag have? | red <AND> white | The flag is red. | 0.5\n"
    "Which city is shown? | Paris <OR> Paris, France | This is London. | 0.0\n"
)


@dataclass(frozen=True)
class MMVetQuestion:
    qid: str
    image: str
    capabilities: tuple[str, ...]
    question: str
    answer: str
    where: str


@dataclass
class MMVetData:
    questions: list[MMVetQuestion]
    root: Path
    source: str


def load_mmvet(path: Path) -> MMVetData:
    path = Path(path)
    file = path / "mm-vet.json" if path.is_dir() else path
    obj = read_json(file)
    if not isinstance(obj, dict):
        raise KanvaError(f"{file}: MM-Vet metadata is a JSON object keyed by question id")
    qs = []
    for qid, v in obj.items():
        where = f"{file} (question {qid})"
        caps = v.get("capability") if isinstance(v, dict) else None
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
            raise KanvaError(f"{where}: 'capability' must be a non-empty list of strings")
        for key in ("question", "answer", "imagename"):
            if not isinstance(v.get(key), str):
                raise KanvaError(f"{where}: needs a string {key!r}")
        qs.append(MMVetQuestion(str(qid), v["imagename"], tuple(dict.fromkeys(caps)), v["question"], v["answer"], where))
    return MMVetData(qs, file.parent, str(file))


def is_grade_file(path: Path) -> bool:
    """A grade file is one JSON object whose values hold a `score` list."""
    path = Path(path)
    if not path.is_file() or path.suffix == ".jsonl":
        return False
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, dict) and "score" in v for v in obj.values())


def load_grades(path: Path) -> dict[str, dict]:
    path = Path(path)
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise KanvaError(f"{path}: a grade file is a JSON object keyed by question id")
    for qid, g in obj.items():
        where = f"{path} (question {qid})"
        scores = g.get("score") if isinstance(g, dict) else None
        if not isinstance(scores, list) or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores):
            raise KanvaError(f"{where}: 'score' must be a list of numbers (one per run)")
        bad = [s for s in scores if not 0.0 <= s <= 1.0]
        if bad:
            raise KanvaError(f"{where}: scores must lie in [0, 1], got {bad[0]}")
        for key in ("content", "model"):
            if key in g and isinstance(g[key], list) and len(g[key]) != len(scores):
                raise KanvaError(f"{where}: {key!r} has {len(g[key])} entries, 'score' {len(scores)}")
    return obj


def load_mmvet_answers(path: Path) -> list[Answer]:
    """LLaVA answer lines (question_id "v1_7" or 7), or the official results file {id: answer}."""
    from kanva.eval.answers import load_answers

    path = Path(path)
    if path.suffix == ".json":
        obj = read_json(path)
        if isinstance(obj, dict):
            bad = [k for k, v in obj.items() if not isinstance(v, str)]
            if bad:
                raise KanvaError(f"{path}: answer of {bad[0]!r} must be a string")
            return [Answer(str(k), v, where=f"{path} ({k})") for k, v in obj.items()]
    return load_answers(path)


def write_results_file(data: MMVetData, answers: list[Answer], path: Path) -> dict:
    """The official grader's input, {id: answer} for every question ("" where none, counted)."""
    by_id = {q.qid: i for i, q in enumerate(data.questions)}
    by_q, cov = assign(len(data.questions), answers, lambda a: by_id.get(_qid(a.question_id)),
                       lambda i: data.questions[i].qid)
    rows = {q.qid: (a.text if a is not None else "") for q, a in zip(data.questions, by_q)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"file": str(path), "rows": len(rows), "missing": cov.missing}


def _qid(raw: str) -> str:
    return f"v1_{raw}" if raw.isdigit() else raw  # LLaVA numbers MM-Vet questions 0..217


def score_grades(grades: dict[str, dict], data: MMVetData | None = None, source: str = "") -> dict:
    """Totals as the official grader computes them (see the module docstring)."""
    if not grades:
        raise KanvaError(f"{source or 'grades'}: no graded questions")
    n_runs = max(len(g["score"]) for g in grades.values())
    if n_runs == 0:
        raise KanvaError(f"{source}: no question has a score")
    if data is not None:
        ids = [q.qid for q in data.questions]
        caps_of = {q.qid: q.capabilities for q in data.questions}
    else:
        ids, caps_of = list(grades), {}
    unknown = [k for k in grades if k not in set(ids)]
    cap_count: Counter = Counter()
    combo_count: Counter = Counter()
    cap_order = {c: i for i, c in enumerate(dict.fromkeys(c for q in ids for c in caps_of.get(q, ())))}
    for q in ids:
        cap_count.update(caps_of.get(q, ()))
    caps = [c for c, _ in sorted(cap_count.items(), key=lambda kv: (-kv[1], cap_order[kv[0]]))]
    rank = {c: i for i, c in enumerate(caps)}

    def combo(q: str) -> str:
        return "_".join(sorted(caps_of[q], key=rank.__getitem__))

    first_seen: dict[str, int] = {}
    for i, q in enumerate(ids):
        if caps_of:
            combo_count[combo(q)] += 1
            first_seen.setdefault(combo(q), i)
    combos = sorted(combo_count, key=lambda c: (-combo_count[c], first_seen[c]))
    per_run = {"total": [0.0] * n_runs, **{c: [0.0] * n_runs for c in caps}}
    per_run_combo = {c: [0.0] * n_runs for c in combos}
    ungraded = []
    for q in ids:
        scores = grades.get(q, {}).get("score", [])
        for k in range(n_runs):
            if k >= len(scores):
                ungraded.append(f"{q} (run {k + 1})")
                continue
            per_run["total"][k] += scores[k]
            for c in caps_of.get(q, ()):
                per_run[c][k] += scores[k]
            if caps_of:
                per_run_combo[combo(q)][k] += scores[k]
    counts = {"total": len(ids), **cap_count}
    runs_pct = {c: [100 * v / counts[c] for v in vals] for c, vals in per_run.items()}
    combo_pct = {c: [100 * v / combo_count[c] for v in vals] for c, vals in per_run_combo.items()}
    totals = runs_pct["total"]
    mean_total = sum(totals) / n_runs
    std = (sum((t - mean_total) ** 2 for t in totals) / n_runs) ** 0.5
    versions = sorted({str(m) for g in grades.values() for m in (g.get("model") if isinstance(g.get("model"), list) else [g.get("model")]) if m})
    result = {
        "benchmark": "mm-vet",
        "total": mean_total,
        "std": std,
        "runs": totals,
        "capabilities": {c: sum(runs_pct[c]) / n_runs for c in caps},
        "capability_integrations": {c: sum(v) / n_runs for c, v in combo_pct.items()},
        "counts": {"capabilities": dict(cap_count), "capability_integrations": dict(combo_count)},
        "questions": len(ids),
        "grades": {"runs": n_runs, "ungraded": len(ungraded), "examples": ungraded[:3],
                   "not_in_metadata": len(unknown)},
        "judge_versions": versions,
        "notes": [],
    }
    if ungraded:
        result["notes"].append(f"{len(ungraded)} (question, run) pairs have no grade and count 0, as in the official "
                               "grader's denominator; regrade to fill them")
    if unknown:
        result["notes"].append(f"{len(unknown)} graded ids are not in the metadata and are ignored: {unknown[:3]}")
    if data is None:
        result["notes"].append("no --data (mm-vet.json): total only, over the questions of the grade file")
    return result


def judge_prompt(path: Path | None) -> tuple[str, bool]:
    """(few-shot prompt, official?) from a text file or the official evaluator's `prompt = \"\"\"...\"\"\"`."""
    if path is None:
        return KANVA_PROMPT, False
    path = Path(path)
    if not path.is_file():
        raise KanvaError(f"{path}: no such judge prompt file")
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return text, True
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise KanvaError(f"{path}: not valid Python ({e.msg}, line {e.lineno})") from None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "prompt" for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value, True
    raise KanvaError(f"{path}: no top-level `prompt = \"...\"` string (expected the official mm-vet_evaluator.py)")


def grade_request(prompt: str, q: MMVetQuestion, prediction: str) -> list[dict]:
    gt = q.answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return [{"role": "user", "content": prompt + "\n" + " | ".join([q.question, gt, prediction, ""])}]


def parse_grade(content: str) -> float | None:
    try:
        score = float(content.split(" ")[0].strip())
    except ValueError:
        return None
    return score if 0.0 <= score <= 1.0 else None


def _write_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def grade_answers(data: MMVetData, answers: list[Answer], judge, grade_file: Path, runs: int = 1,
                  prompt_file: Path | None = None) -> dict:
    """Grades answers into `grade_file` (resuming it); returns the scores with judge and failure records."""
    from tqdm import tqdm

    prompt, official = judge_prompt(prompt_file)
    by_id = {q.qid: i for i, q in enumerate(data.questions)}
    by_q, cov = assign(len(data.questions), answers, lambda a: by_id.get(_qid(a.question_id)),
                       lambda i: data.questions[i].qid)
    grade_file = Path(grade_file)
    grades = load_grades(grade_file) if grade_file.is_file() else {}
    grade_file.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    todo = [(q, a) for q, a in zip(data.questions, by_q) if a is not None and len(grades.get(q.qid, {}).get("score", [])) < runs]
    for q, a in tqdm(todo, desc="MM-Vet grading", unit="q", disable=not todo):
        g = grades.setdefault(q.qid, {"model": [], "content": [], "score": []})
        while len(g["score"]) < runs:
            try:
                reply, score = ask_parsed(judge, grade_request(prompt, q, a.text), parse_grade,
                                          [{"temperature": 0.5 * t, "max_tokens": 3} for t in range(MAX_TRIES)])
            except JudgeError as e:
                failures.append(f"{q.qid} (run {len(g['score']) + 1}): {e}")
                break
            if score is None:
                failures.append(f"{q.qid} (run {len(g['score']) + 1}): no score in {MAX_TRIES} replies, "
                                f"last {reply.content[:40]!r}")
                break
            g["model"].append(reply.version)
            g["content"].append(reply.content)
            g["score"].append(score)
        if not g["score"]:
            del grades[q.qid]
        _write_atomic(grade_file, grades)
    result = score_grades(grades, data, str(grade_file))
    result["answers"] = cov.as_dict()
    result["grade_file"] = str(grade_file)
    result["judge"] = judge_record(judge, result["judge_versions"], prompt_hash(prompt), official,
                                   "" if official else "Kanva's own grading prompt: not comparable with published MM-Vet scores "
                                   "(give the official prompt with --judge-prompt)")
    result["judge_failures"] = {"count": len(failures), "examples": failures[:3]}
    if failures:
        result["notes"].append(f"{len(failures)} judge calls failed or gave no score; those grades are missing "
                               "(counted above), not defaulted; a rerun asks again where a call failed")
    return result

