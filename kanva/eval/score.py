"""`score(bench, data, predictions)`: the one entry point from files to a results dict, per benchmark.

The results dict of each benchmark holds the metrics under the keys the CLI's `--json` promises
(see docs/eval.md), plus `answers` (coverage: missing, duplicate, unmatched counts) and `notes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kanva.errors import KanvaError

BENCHMARKS = ("mme", "mmbench", "pope", "sqa", "llava-bench", "vqav2", "vizwiz", "textvqa", "gqa")
# Benchmarks whose answers `--upload FILE` turns into the file an evaluation server takes.
UPLOADS = ("vqav2", "vizwiz", "textvqa", "gqa")


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
    judge_runs: int = 3,
    reviews_dir: Path | None = None,
    upload: Path | None = None,
) -> dict:
    """Scores answer files (or MME results folders, LLaVA-Bench review files) against the data.

    With `upload`, also writes the evaluation server's file for the benchmarks in UPLOADS.
    """
    from kanva.eval.answers import load_answers

    check_bench(bench)
    if upload is not None and bench not in UPLOADS:
        raise KanvaError(f"{bench}: --upload is for {', '.join(UPLOADS)}")
    data = [Path(p) for p in data] if data else None
    if bench in UPLOADS:
        from kanva.eval.tasks import get_task

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
    out_dir = Path(reviews_dir) if reviews_dir else answers_path.with_name(answers_path.stem + "_reviews")
    files, coverage = lb.judge_answers(lb_data, load_answers(answers_path), judge, out_dir, runs=judge_runs)
    result = lb.score_llava_bench(files)
    result["answers"] = coverage
    result["judge"] = judge.model
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
