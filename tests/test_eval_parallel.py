"""`accelerate launch -m kanva eval run` on 2 CPU processes writes the single-process answer file; an
interrupted multi-process run resumes on any number of processes."""

import json
import os
import socket
import subprocess
import sys

import pytest

from kanva.eval.parallel import part_files, part_path
from kanva.eval.run import run_benchmark
from kanva.eval.synthetic import make_synthetic

from test_eval_synthetic import TinyKB, world  # noqa: F401  (the tiny world fixture)

ARGS = dict(batch_size=3, max_new_tokens=3, limit=10)


@pytest.fixture
def pope(world, tmp_path):  # noqa: F811
    make_synthetic(world, tmp_path / "synth", kb=TinyKB(), seed=0)
    return tmp_path / "synth" / "pope"


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_write_the_single_process_file(pope, tiny_model, tmp_path):
    single = run_benchmark("pope", tiny_model, [pope], tmp_path / "one.jsonl", progress=False, **ARGS)
    out = tmp_path / "two.jsonl"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "kanva", "eval", "run", "pope", "--model", str(tiny_model),
           "--data", str(pope), "--out", str(out), "--batch-size", "3", "--max-new-tokens", "3", "--limit", "10"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _rows(out) == _rows(tmp_path / "one.jsonl")  # same answers, same order
    assert not part_files(out)
    two = json.loads(out.with_name("two.results.json").read_text())
    assert two["run"]["processes"] == 2 and two["run"]["generated"] == 10
    assert two["splits"] == single["splits"]


def test_interrupted_parts_resume_on_one_process(pope, tiny_model, tmp_path):
    ref = tmp_path / "ref.jsonl"
    run_benchmark("pope", tiny_model, [pope], ref, progress=False, **ARGS)
    rows = ref.read_text().splitlines(keepends=True)
    # A 2-process run stopped midway: rank 0 answered questions 0 and 2, rank 1 question 1 and half of 3.
    out = tmp_path / "ans.jsonl"
    part_path(out, 0).write_text(rows[0] + rows[2])
    part_path(out, 1).write_text(rows[1] + rows[3][:20])
    r = run_benchmark("pope", tiny_model, [pope], out, progress=False, **ARGS)
    assert r["run"]["resumed"] == 3 and r["run"]["generated"] == 7  # the cut row is asked again
    assert _rows(out) == _rows(ref) and not part_files(out)
