"""Evaluation throughput: batched greedy answers vs batch size 1 on the synthetic MME set.

    python benchmarks/eval_batching.py [--model DIR] [--synthetic DIR | --world DIR] [--questions 64]
                                       [--batch-sizes 1 8 16] [--max-new-tokens 16] [--device cpu] [--threads N]

Runs `kanva eval run mme` (kanva.eval.run.run_benchmark, the real path: prompts, images, answer file)
once per batch size on the same first N questions, with one loaded model, and prints questions per
second of generation (model time, not loading) and whether every greedy answer equals batch size 1's.
Defaults build what is missing in a temporary folder: the `smol` preset (SmolLM2-135M + a small vision
tower), a 48-image world test split and its synthetic sets.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def model_and_synthetic(model: Path | None, synthetic: Path | None, tmp: Path, preset: str = "smol",
                        test_images: int = 48, world: Path | None = None) -> tuple[Path, Path]:
    """The model and synthetic benchmark folders to measure on: those given, else built in `tmp` (the `preset`
    model; synthetic sets from `world`, else from a fresh world of `test_images` test images)."""
    if model is None:
        from kanva.model import build_preset

        model = build_preset(preset, tmp / preset)
    if synthetic is None:
        from kanva.eval.synthetic import make_synthetic

        if world is None:
            from kanva.world.config import load_world_config
            from kanva.world.generate import generate_world

            world = generate_world(tmp / "world", {"test": test_images}, seed=0, cfg=load_world_config(None),
                                   progress=False)
        make_synthetic(world, tmp / "synthetic", seed=0)
        synthetic = tmp / "synthetic"
    return Path(model), Path(synthetic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: build the smol preset)")
    ap.add_argument("--synthetic", type=Path, help="output of `kanva eval make-synthetic` (default: make one)")
    ap.add_argument("--world", type=Path, help="world to make the synthetic set from (default: generate 48 images)")
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from kanva.eval.answers import load_answers
    from kanva.eval.run import run_benchmark
    from kanva.infer import Generator

    sizes = sorted(set(args.batch_sizes) | {1})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_dir, synthetic = model_and_synthetic(args.model, args.synthetic, tmp, world=args.world)
        gen = Generator.load(model_dir, device=args.device)
        # Warm up kernels and allocator once, outside the timings.
        run_benchmark("mme", model_dir, [synthetic / "mme"], tmp / "warm.jsonl", batch_size=max(sizes), limit=max(sizes),
                      max_new_tokens=2, generator=gen, progress=False, device=args.device)
        rows, answers = [], {}
        for bs in sizes:
            out = tmp / f"answers_b{bs}.jsonl"
            t0 = time.perf_counter()
            r = run_benchmark("mme", model_dir, [synthetic / "mme"], out, batch_size=bs, limit=args.questions,
                              max_new_tokens=args.max_new_tokens, generator=gen, progress=False, device=args.device)
            wall = time.perf_counter() - t0
            answers[bs] = {a.question_id: a.text for a in load_answers(out)}
            rows.append((bs, r["run"]["questions"], r["run"]["generation_seconds"], wall, r["perception"] + r["cognition"]))

    base = answers[1]
    base_qps = rows[0][1] / rows[0][2]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    print(f"model {model_dir.name}, device {device}, {rows[0][1]} synthetic MME questions, "
          f"max_new_tokens {args.max_new_tokens}, greedy")
    print(f"{'batch':>5}  {'questions':>9}  {'gen s':>7}  {'wall s':>7}  {'q/s':>7}  {'speedup':>7}  {'same answers':>12}  {'MME total':>9}")
    for bs, n, gen_s, wall, total in rows:
        same = sum(answers[bs].get(k) == v for k, v in base.items())
        print(f"{bs:>5}  {n:>9}  {gen_s:>7.2f}  {wall:>7.2f}  {n / gen_s:>7.2f}  {n / gen_s / base_qps:>6.2f}x  "
              f"{f'{same}/{len(base)}':>12}  {total:>9.2f}")


if __name__ == "__main__":
    main()
