"""`kanva eval run`: batched greedy answers for a benchmark, written incrementally, resumed, then scored.

The answer file is LLaVA's format (JSON lines: question_id, prompt, text, model_id, plus category/image
where the scorer can use them). Each batch is appended and flushed as soon as it is generated, so an
interrupted run resumes where it stopped: answered question ids are skipped. Rows record the model (by
content: `model_hash`, a hash of its config and weights, beside the display name `model_id`) and the prompt
style, and resuming with another model or style is refused rather than mixed: every `kanva train` output is
called `.../final`, so a name would let one model's answers be credited to another. The results JSON
holds the scores plus `run`: model, prompt style, decoding settings, timing.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from kanva.errors import KanvaError
from kanva.eval.answers import load_answers, read_jsonl
from kanva.eval.items import by_media, limit_items
from kanva.eval.parallel import deal, merge_parts, order_tail, part_files, part_path, processes
from kanva.eval.prompts import check_style
from kanva.eval.tasks import get_task
from kanva.model.fingerprint import model_hash


def _repair_tail(path: Path) -> bool:
    """Cuts a partial last line (a write interrupted mid-row); returns whether it did."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return False
        f.truncate(data.rfind(b"\n") + 1)
    return True


def _previous(path: Path, model: str, style: str) -> set[str]:
    """Question ids already answered in `path`; KanvaError if any row came from another model or style."""
    done = set()
    for n, row in read_jsonl(path):
        where = f"{path}:{n}"
        if "model_hash" not in row:
            raise KanvaError(
                f"{where}: this answer row does not record which model wrote it (model_hash; written by an older "
                "kanva), so resuming could mix two models' answers; write to a new --out"
            )
        for key, want in (("model_hash", model), ("prompt_style", style)):
            if key in row and row[key] != want:
                raise KanvaError(
                    f"{where}: this answer file was written with {key} {row[key]!r}"
                    + (f" (model_id {row.get('model_id')!r})" if key == "model_hash" else "")
                    + f", not {want!r}; resume with the same settings or write to a new --out"
                )
    done.update(a.question_id for a in load_answers(path))
    return done


def model_id_of(model_dir: Path) -> str:
    """The name answers are attributed to: the model directory's name (and its parent for `.../final`)."""
    p = Path(model_dir).resolve()
    return f"{p.parent.name}/{p.name}" if p.name in ("final", "model") else p.name


def run_benchmark(
    bench: str,
    model_dir: Path,
    data: Sequence[Path],
    out: Path,
    *,
    batch_size: int = 16,
    limit: int | None = None,
    style: str = "llava",
    max_new_tokens: int | None = None,
    image_root: Path | None = None,
    split: str = "test",
    device: str = "cpu",
    generator: Any = None,
    judge: Any = None,
    judge_runs: int | None = None,
    reviews_dir: Path | None = None,
    results_path: Path | None = None,
    judge_files: dict | None = None,
    progress: bool = True,
    share_prefix: bool = True,
) -> dict:
    """Generates missing answers into `out`, scores them and writes the results JSON; returns it.

    The questions about one image are asked in the same batches, which compute its prompt prefix once
    (`share_prefix`, kanva/infer/prefix.py); the rows a run appends are then put back in question order."""
    from tqdm import tqdm

    check_style(style)
    if batch_size < 1:
        raise KanvaError(f"--batch-size must be at least 1, got {batch_size}")
    task = get_task(bench)
    paths = [Path(p) for p in data]
    loaded = task.load(paths, split)
    items = limit_items(task.items(loaded, style, image_root), limit)
    max_new = max_new_tokens or task.max_new_tokens
    model_id = model_id_of(model_dir)
    model = model_hash(model_dir)
    out = Path(out)
    procs = processes()  # several under `accelerate launch`: each answers its share into a part file
    if procs.main:
        out.parent.mkdir(parents=True, exist_ok=True)
        for path in [out, *part_files(out)]:  # parts: what an interrupted multi-process run answered
            if _repair_tail(path):
                print(f"{path}: removed a partial last line (an interrupted write); that question is asked again")
        for path in part_files(out):
            _previous(path, model, style)  # another model or style in a part is refused, as in ANSWERS
        merge_parts(out, [it.uid for it in items])
    procs.barrier()
    done = _previous(out, model, style) if out.is_file() else set()
    todo = by_media([it for it in items if it.uid not in done])
    mine = deal(todo, batch_size, procs)
    target = part_path(out, procs.rank) if procs.world > 1 else out
    if procs.world > 1 and device.startswith("cuda") and ":" not in device:
        device = f"cuda:{procs.local_rank}"  # one GPU per process
    started = time.time()
    gen_seconds = 0.0
    if mine:
        if generator is None:
            from kanva.infer import Generator

            generator = Generator.load(model_dir, device=device, share_prefix=share_prefix)
        bar = tqdm(total=len(mine), desc=f"{bench} answers", unit="q", disable=not progress or not procs.main)
        with open(target, "a", encoding="utf-8") as f:
            offset = f.tell()
            for start in range(0, len(mine), batch_size):
                batch = mine[start : start + batch_size]
                rows = [(it.load_media(generator.proc), [{"role": "user", "content": it.prompt}]) for it in batch]
                t0 = time.perf_counter()
                texts = generator.generate(rows, max_new_tokens=max_new, temperature=0.0)
                gen_seconds += time.perf_counter() - t0
                for it, text in zip(batch, texts):
                    row = {"question_id": it.uid, "prompt": it.prompt, "text": text.strip(), **it.fields,
                           "model_id": model_id, "model_hash": model, "prompt_style": style}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                bar.update(len(batch))
        bar.close()
        if procs.world == 1:  # a multi-process run's parts are put in order by merge_parts
            order_tail(target, offset, [it.uid for it in items])
    procs.barrier()
    if not procs.main:  # the main process merges and scores
        return {"run": {"process": procs.rank, "processes": procs.world, "generated": len(mine)}}
    merge_parts(out, [it.uid for it in items])
    answers = load_answers(out)
    scored = task.subset(loaded, {it.uid for it in items}) if limit is not None else loaded
    result = task.score(scored, answers, judge=judge, judge_runs=judge_runs, reviews_dir=reviews_dir, answers_path=out,
                        **(judge_files or {}))
    result["run"] = {
        "benchmark": bench,
        "model": str(Path(model_dir)),
        "model_id": model_id,
        "model_hash": model,
        "model_info": _model_info(Path(model_dir)),
        "prompt_style": style,
        "data": [str(p) for p in paths],
        "answers": str(out),
        "questions": len(items),
        "generated": len(todo),
        "resumed": len(items) - len(todo),
        "limit": limit,
        "batch_size": batch_size,
        "max_new_tokens": max_new,
        "decoding": "greedy",
        "share_prefix": getattr(generator, "share_prefix", share_prefix),
        "device": device,
        "processes": procs.world,
        "generation_seconds": gen_seconds,  # the main process's share when several processes ran
        "questions_per_second": len(mine) / gen_seconds if gen_seconds else None,
        "wall_seconds": time.time() - started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    results_path = Path(results_path) if results_path else out.with_name(out.stem + ".results.json")
    result["run"]["results"] = str(results_path)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def _model_info(model_dir: Path) -> dict | None:
    """The `kanva.json` build record beside the checkpoint, if any (preset, parts, seed)."""
    p = model_dir / "kanva.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
