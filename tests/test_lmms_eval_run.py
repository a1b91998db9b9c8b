"""lmms-eval itself: `--model llava_hf` on a `kanva export`, and the `kanva` plugin model on the model
directory, answer a tiny local task as Kanva does.

Runs only where lmms-eval is importable (it is not in this project's environment: its install
replaces torch; docs/eval.md says how it was run in a side environment). The task is written here: three
image questions read from a local JSON-lines file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from kanva.cli import main

pytest.importorskip("lmms_eval")

SUFFIX = "\nAnswer the question using a single word or phrase."
UTILS = f'''
from PIL import Image


def doc_to_visual(doc):
    return [Image.open(doc["image"]).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"] + {SUFFIX!r}


def process_results(doc, results):
    return {{"match": float(results[0].strip().lower() == doc["answer"])}}
'''
TASK = """task: kanva_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 8
  temperature: 0
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: match
    aggregation: mean
    higher_is_better: true
"""


def _task(tmp_path):
    rows = []
    for i, (color, q) in enumerate([((200, 30, 30), "Is the square red?"), ((30, 30, 200), "What color is it?")]):
        im = Image.new("RGB", (40, 40), (240, 240, 240))
        im.paste(color, (5, 5, 30, 30))
        im.save(tmp_path / f"{i}.png")
        rows.append({"id": i, "image": str(tmp_path / f"{i}.png"), "question": q, "answer": "yes"})
    (tmp_path / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "task"
    task.mkdir()
    (task / "utils.py").write_text(UTILS)
    (task / "kanva_tiny.yaml").write_text(TASK.format(data=tmp_path / "tiny.jsonl"))
    return rows, task


def _lmms_eval(tmp_path, task, model: str, model_args: str, out: str, batch: int = 1, **env) -> dict[int, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env}
    subprocess.run([sys.executable, "-m", "lmms_eval", "--model", model, "--model_args", model_args, "--tasks",
                    "kanva_tiny", "--include_path", str(task), "--batch_size", str(batch), "--output_path",
                    str(tmp_path / out), "--log_samples"], check=True, cwd=tmp_path, env=env, capture_output=True)
    samples = next((tmp_path / out).rglob("*_samples_kanva_tiny.jsonl"))
    got = {}
    for line in samples.read_text().splitlines():
        r = json.loads(line)
        resp = r.get("resps") or r.get("filtered_resps")  # logged as a string or nested lists, by version
        while isinstance(resp, list):
            resp = resp[0]
        got[r["doc_id"]] = resp
    return got


def _kanva_answers(tiny_model, rows) -> dict[int, str]:
    from kanva.infer import Generator

    gen = Generator.load(tiny_model)
    rows_in = [([Image.open(r["image"]).convert("RGB")], [{"role": "user", "content": r["question"] + SUFFIX}]) for r in rows]
    return dict(zip((r["id"] for r in rows), gen.generate(rows_in, max_new_tokens=8, temperature=0.0)))


@pytest.mark.slow
def test_lmms_eval_answers_as_kanva(tiny_model, tmp_path):
    rows, task = _task(tmp_path)
    want = _kanva_answers(tiny_model, rows)
    assert all(v.strip() for v in want.values())
    hf = tmp_path / "hf"
    assert main(["export", "--model", str(tiny_model), "--out", str(hf)]) == 0
    got = _lmms_eval(tmp_path, task, "llava_hf", f"pretrained={hf},device=cpu,device_map=cpu,dtype=float32", "out-hf")
    assert {k: v.strip() for k, v in got.items()} == {k: v.strip() for k, v in want.items()}
    # The plugin model on the model directory itself (no export), batched.
    got = _lmms_eval(tmp_path, task, "kanva", f"pretrained={tiny_model}", "out-kanva", batch=2,
                     LMMS_EVAL_PLUGINS="kanva.lmms")
    assert {k: v.strip() for k, v in got.items()} == {k: v.strip() for k, v in want.items()}
