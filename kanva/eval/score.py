"""`score(bench, data, predictions)`: the one entry point from files to a results dict, per benchmark.

The results dict of each benchmark holds the metrics under the keys the CLI's `--json` promises
(see docs/eval.md), plus `answers` (coverage: missing, duplicate, unmatched counts) and `notes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kanva.errors import KanvaError

BENCHMARKS = ("mme", "mmbench", "pope", "sqa", "llava-bench", "vqav2", "vizwiz", "textvqa", "gqa", "mm-vet", "seed",
              "muirbench", "mvbench")
# Benchmarks whose answers `--upload FILE` turns into the file an evaluation server takes.
UPLOADS = ("vqav2", "vizwiz", "textvqa", "gqa", "mmbench", "mm-vet")
# Benchmarks scored through their `kanva.eval.tasks` entry alone (no options beyond data and answers).
_TASK_SCORED = ("vqav2", "vizwiz", "textvqa", "gqa", "seed", "muirbench", "mvbench")


def check_bench(bench: str) -> str:
    if bench not in BENCHMARKS:
        raise KanvaError(f"unknown benchmark {bench!r} (choose from {', '.join(BENCHMARKS)})")
    return bench


def _one(paths: Sequence[Path] | None, what: str, bench: str) -> Path:
    if not paths:
        raise KanvaError(f"{bench}: --{what} is required")
    if len(paths) != 1:
        raise KanvaError(f"{bench}: give one --{what} path, got {len(paths)}")
    return Path(paths[0])


def score(
    bench: str,
    data: Sequence[Path] | None,
    predictions: Sequence[Path],
    *,
    split: str = "test",
    judge=None,
    judge_runs: int | None = None,
    reviews_dir: Path | None = None,
    upload: Path | None = None,
    judge_files: dict | None = None,
) -> dict:
    """Scores answer files (or MME results folders, LLaVA-Bench review files) against the data.

    With `upload`, also writes the evaluation server's file for the benchmarks in UPLOADS. `judge_files`:
    judge_prompt (mm-vet), judge_rules and judge_system (llava-bench).
    """
    from kanva.eval.answers import load_answers

    check_bench(bench)
    if upload is not None and bench not in UPLOADS:
        raise KanvaError(f"{bench}: --upload is for {', '.join(UPLOADS)}")
    data = [Path(p) for p in data] if data else None
    if bench == "mmbench" and upload is not None:
        return mmbench_upload(_one(data, "data", bench), load_answers(_one(predictions, "predictions", bench)), Path(upload))
    if bench == "mm-vet" and upload is not None:
        from kanva.eval import mmvet

        meta = mmvet.load_mmvet(_one(data, "data", bench))
        up = mmvet.write_results_file(meta, mmvet.load_mmvet_answers(_one(predictions, "predictions", bench)), Path(upload))
        return {"benchmark": "mm-vet", "upload": up,
                "notes": ["graded by the official MM-Vet grader from the upload file (or here with --judge-model)"]}
    if bench in _TASK_SCORED:
        from kanva.eval.tasks import get_task

        if not data:
            raise KanvaError(f"{bench}: --data is required")

        task = get_task(bench)
        loaded = task.load(data, split)
        answers = load_answers(_one(predictions, "predictions", bench))
        result = task.score(loaded, answers)
        if upload is not None:
            result["upload"] = write_upload(bench, loaded, answers, Path(upload))
        return result
    if bench == "mme":
        from kanva.eval.mme import load_mme, load_mme_results, score_mme, score_mme_matched  # noqa: F401

        pred = _one(predictions, "predictions", bench)
        if pred.is_dir():
            gt, answers = load_mme_results(pred)
            if data:
                gt = load_mme(_one(data, "data", bench))
            return score_mme(gt, answers)
        return score_mme(load_mme(_one(data, "data", bench)), load_answers(pred))
    if bench == "mm-vet":
        return score_mmvet(data, predictions, judge, judge_runs, reviews_dir, (judge_files or {}).get("judge_prompt"))
    if bench == "pope":
        from kanva.eval.pope import load_pope, score_pope

        if not data:
            raise KanvaError("pope: --data is required (POPE's annotation files, or a folder holding them)")
        return score_pope(load_pope(data), load_answers(_one(predictions, "predictions", bench)))
    if bench == "mmbench":
        from kanva.eval.mmbench import load_mmbench, score_mmbench

        return score_mmbench(load_mmbench(_one(data, "data", bench)), load_answers(_one(predictions, "predictions", bench)))
    if bench == "sqa":
        from kanva.eval.sqa import load_sqa, score_sqa

        return score_sqa(load_sqa(_one(data, "data", bench), split), load_answers(_one(predictions, "predictions", bench)))
    # llava-bench
    from kanva.eval import llava_bench as lb

    if not predictions:
        raise KanvaError("llava-bench: --predictions is required")
    if all(lb.is_review_file(Path(p)) for p in predictions):
        if data:
            raise KanvaError("llava-bench: review files are scored without --data")
        return lb.score_llava_bench([Path(p) for p in predictions])
    answers_path = _one(predictions, "predictions", bench)
    if judge is None:
        raise KanvaError("llava-bench: scoring an answer file needs a judge (--judge-model, --judge-base-url)")
    lb_data = lb.load_llava_bench(_one(data, "data", bench))
    out_dir = lb.reviews_dir_for(answers_path, reviews_dir)
    return lb.judge_and_score(lb_data, load_answers(answers_path), judge, out_dir, judge_runs, **(judge_files or {}))

def mmbench_upload(tsv: Path, answers, path: Path) -> dict:
    """The submission spreadsheet; a dev TSV (with answers) is scored as well."""
    from kanva.eval.mmbench import load_mmbench, score_mmbench
    from kanva.eval.mmbench_upload import write_submission

    data = load_mmbench(tsv)
    upload = write_submission(tsv, answers, path)
    if all(r.answer is not None for r in data.rows):
        result = score_mmbench(data, answers)
    else:
        result = {"benchmark": "mmbench", "notes": [f"{tsv}: a test split (no answers): scored by the server from the upload file"]}
    result["upload"] = upload
    return result


def write_upload(bench: str, data, answers, path: Path) -> dict:
    """Writes the server file (JSON) for `bench`; returns where and how many answers were missing."""
    import json

    if bench == "gqa":
        from kanva.eval.gqa import upload_rows
    else:
        from kanva.eval.vqa import upload_rows
    rows, missing = upload_rows(data, answers)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"file": str(path), "rows": len(rows), "missing": missing}


def grade_file_for(answers_path: Path, judge, runs: int, out_dir: Path | None = None) -> Path:
    """The official grader's name for a grade file: <answers>_<judge>-grade-<runs>runs.json."""
    name = f"{Path(answers_path).stem}_{judge.model.replace('/', '_')}-grade-{runs}runs.json"
    return (Path(out_dir) if out_dir else Path(answers_path).parent) / name


def score_mmvet(data, predictions, judge, judge_runs, reviews_dir, judge_prompt) -> dict:
    """A grade file is scored as is; an answer file is graded by the judge first (grade file beside it)."""
    from kanva.eval import mmvet

    pred = _one(predictions, "predictions", "mm-vet")
    meta = mmvet.load_mmvet(_one(data, "data", "mm-vet")) if data else None
    if mmvet.is_grade_file(pred):
        result = mmvet.score_grades(mmvet.load_grades(pred), meta, str(pred))
        result["grade_file"] = str(pred)
        return result
    if judge is None:
        raise KanvaError("mm-vet: an answer file is graded by a judge (--judge-model, --judge-base-url); "
                         "or give the official grader's grade file as --predictions")
    if meta is None:
        raise KanvaError("mm-vet: grading needs --data (the folder with mm-vet.json, or the file)")
    return grade_mmvet_answers(meta, mmvet.load_mmvet_answers(pred), judge, pred, judge_runs, reviews_dir, judge_prompt)


def grade_mmvet_answers(meta, answers, judge, answers_path: Path, judge_runs, out_dir, judge_prompt) -> dict:
    """Grades MM-Vet answers into the grade file named for `answers_path` (judge cache beside it)."""
    from kanva.eval import mmvet

    runs = judge_runs or 1
    grade_file = grade_file_for(answers_path, judge, runs, out_dir)
    if judge.cache is None:
        judge.use_cache(grade_file.with_name(grade_file.stem + ".judge-cache.jsonl"))
    return mmvet.grade_answers(meta, answers, judge, grade_file, runs=runs, prompt_file=judge_prompt)
