"""`kanva eval run` on several processes (`accelerate launch -m kanva eval run ...`).

The questions still unanswered, in the run's batch order (the questions about one image together), are dealt
out a batch at a time: process r of W answers batches r, r + W, r + 2W, ..., so each batch is the one a single
process would run, appending it to its own part file `ANSWERS.partR` (flushed per batch, like the single-process
answer file). When every process is done, the main process merges the parts into ANSWERS in question order, after
any rows ANSWERS already held, and deletes them: the file is the one a single process writes (which also puts the
rows of a run in question order at its end, `order_tail`).
An interrupted run leaves its part files; the next run, on any number of processes, counts their
answers as done and merges them, so nothing is asked twice and nothing is lost.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from kanva.eval.answers import qid_str


@dataclass(frozen=True)
class Processes:
    rank: int
    world: int
    barrier: Callable[[], None]
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def processes() -> Processes:
    """This process's place among those `accelerate launch`/`torchrun` started (one process: 0 of 1,
    without touching torch.distributed)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes(0, 1, lambda: None)
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # As Accelerator does: ACCELERATE_USE_CPU (CPU processes, gloo); PartialState alone would not read it.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    return Processes(state.process_index, state.num_processes, state.wait_for_everyone, state.local_process_index)


def part_path(out: Path, rank: int) -> Path:
    return out.with_name(f"{out.name}.part{rank}")


def part_files(out: Path) -> list[Path]:
    """Part files an earlier (maybe interrupted) multi-process run left beside `out`, in rank order."""
    found = [p for p in out.parent.glob(f"{out.name}.part*") if p.name[len(out.name) + 5 :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(out.name) + 5 :]))


def deal(todo: list, batch_size: int, procs: Processes) -> list:
    """This process's share of `todo`: batches rank, rank + world, ... of `batch_size` items."""
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    return [it for batch in batches[procs.rank :: procs.world] for it in batch]


def _lines(data: str) -> list[str]:
    return [line for line in data.splitlines(keepends=True) if line.strip()]


def _write_ordered(out: Path, head: bytes, rows: list[str], order: Sequence[str]) -> None:
    """Atomically make `out` `head` followed by `rows` in question order (`order`: question ids; rows of other
    ids keep their place after them)."""
    rank = {uid: i for i, uid in enumerate(order)}
    rows = sorted(rows, key=lambda line: rank.get(qid_str(json.loads(line)["question_id"]), len(rank)))
    tmp = out.with_name(out.name + ".merging")
    with open(tmp, "wb") as f:
        f.write(head + "".join(rows).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)


def order_tail(out: Path, offset: int, order: Sequence[str]) -> None:
    """Put the rows `out` holds after byte `offset` (what this run appended, batched by image) in question order."""
    data = out.read_bytes()
    _write_ordered(out, data[:offset], _lines(data[offset:].decode("utf-8")), order)


def merge_parts(out: Path, order: Sequence[str]) -> int:
    """Append the parts' rows to `out` in question order (`order`: question ids), atomically; delete the
    parts. Returns the rows added."""
    parts = part_files(out)
    if not parts:
        return 0
    rows = [line for p in parts for line in _lines(p.read_text(encoding="utf-8"))]
    _write_ordered(out, out.read_bytes() if out.is_file() else b"", rows, order)
    for p in parts:
        p.unlink()
    return len(rows)
