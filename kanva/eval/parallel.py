"""`kanva eval run` on several processes (`accelerate launch -m kanva eval run ...`).

The questions still unanswered are dealt out round robin: process r of W answers questions
r, r + W, r + 2W, ... of the unanswered list, appending each batch to its own part file
`ANSWERS.partR` (flushed per batch, like the single-process answer file). When every process is
done, the main process merges the parts into ANSWERS in question order, after any rows ANSWERS
already held, and deletes them: with greedy decoding the file is the one a single process writes.
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


def merge_parts(out: Path, order: Sequence[str]) -> int:
    """Append the parts' rows to `out` in question order (`order`: question ids), atomically; delete the
    parts. Returns the rows added."""
    parts = part_files(out)
    if not parts:
        return 0
    rank = {uid: i for i, uid in enumerate(order)}
    rows = []
    for p in parts:
        rows += [line for line in p.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()]
    rows.sort(key=lambda line: rank.get(qid_str(json.loads(line)["question_id"]), len(rank)))  # stable: others keep theirs
    tmp = out.with_name(out.name + ".merging")
    head = out.read_bytes() if out.is_file() else b""
    with open(tmp, "wb") as f:
        f.write(head + "".join(rows).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    for p in parts:
        p.unlink()
    return len(rows)
