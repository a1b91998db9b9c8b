"""Evaluation with and without shared prompt prefixes (kanva/infer/prefix.py), side by side in one run.

    python benchmarks/eval_prefix.py [--model DIR] [--bench DIR] [--benchmark mme] [--images 25] [--batch-size 16]
                                     [--max-new-tokens N] [--threads 1] [--device cpu]

Takes every question the benchmark asks about its first `--images` images (a run asks about each image in
several subtasks or splits; the first N questions of the file would be one subtask's, two per image), in the
batches `kanva eval run` makes (`by_media`, `--batch-size`), and runs `Generator.generate` on each batch with
`share_prefix` on and off, one right after the other (which goes first alternates by batch), so that load from
other work on the machine falls on both alike. Images are loaded once, before timing; prompts are encoded inside
the timings (both sides do it). Prints the questions, questions per image, wall and CPU seconds per side, their
ratios and whether every answer agrees (greedy: the same up to float noise). On a machine other jobs share, the
CPU-time ratio is the one to read (a process that waits for the CPU is not charged for it), with one thread
(the default: a second thread spin-waits, and is charged, while the first waits for a core).

Defaults build what is missing in a temporary folder: the `tiny` preset and a 24-image world test split with its
synthetic sets. `--bench DIR` is a `kanva eval make-synthetic` output (mme/, pope/, mmbench/).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eval_batching import (
    model_and_synthetic,  # benchmarks/ is the script's folder, first on sys.path
)


def _data(bench: Path, name: str) -> Path:
    if name == "mmbench":
        found = sorted((bench / "mmbench").glob("*.tsv"))
        if not found:
            raise SystemExit(f"{bench / 'mmbench'}: no .tsv file")
        return found[0]
    return bench / name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: build the tiny preset)")
    ap.add_argument("--bench", type=Path, help="`kanva eval make-synthetic` output (default: make one)")
    ap.add_argument("--benchmark", default="mme", choices=("mme", "pope", "mmbench"))
    ap.add_argument("--images", type=int, default=25, help="every question about the first N images")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, help="default: the benchmark's (as kanva eval run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see above)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from kanva.eval.items import by_media
    from kanva.eval.tasks import get_task
    from kanva.infer import Generator

    with tempfile.TemporaryDirectory() as d:
        model_dir, bench = model_and_synthetic(args.model, args.bench, Path(d), preset="tiny", test_images=24)
        task = get_task(args.benchmark)
        items = by_media(task.items(task.load([_data(bench, args.benchmark)], "test"), "llava", None))
        keys = list(dict.fromkeys(it.batch_key() for it in items))[: args.images]
        items = [it for it in items if it.batch_key() in set(keys)]
        shared = Generator.load(model_dir, device=args.device)
        plain = Generator(shared.model, shared.proc, share_prefix=False)
        rows = [(it.load_media(shared.proc), [{"role": "user", "content": it.prompt}]) for it in items]
        batches = [rows[i : i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
        max_new = args.max_new_tokens or task.max_new_tokens

        def timed(gen, batch) -> tuple[float, float, list[str]]:
            t0, c0 = time.perf_counter(), time.process_time()
            out = gen.generate(batch, max_new_tokens=max_new)
            return time.perf_counter() - t0, time.process_time() - c0, out

        timed(shared, batches[0]), timed(plain, batches[0])  # warm up kernels and the allocator, outside the timings
        wall = {"shared": 0.0, "plain": 0.0}
        cpu = {"shared": 0.0, "plain": 0.0}
        answers = {"shared": [], "plain": []}
        for n, batch in enumerate(batches):
            sides = (("shared", shared), ("plain", plain))
            for name, gen in sides if n % 2 == 0 else sides[::-1]:
                w, c, out = timed(gen, batch)
                wall[name] += w
                cpu[name] += c
                answers[name] += out

    same = sum(a == b for a, b in zip(answers["shared"], answers["plain"]))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    print(f"model {model_dir}, device {device}, {args.benchmark}: {len(items)} questions about {len(keys)} images "
          f"({len(items) / len(keys):.1f} per image), batch {args.batch_size}, max_new_tokens {max_new}, greedy")
    print(f"{'side':>7}  {'wall s':>8}  {'CPU s':>8}  {'q/s (wall)':>10}")
    for name in ("plain", "shared"):
        print(f"{name:>7}  {wall[name]:>8.2f}  {cpu[name]:>8.2f}  {len(items) / wall[name]:>10.2f}")
    print(f"shared prefix: {cpu['plain'] / cpu['shared']:.2f}x less CPU time, {wall['plain'] / wall['shared']:.2f}x "
          f"less wall time than the plain path; same answers {same}/{len(items)}")


if __name__ == "__main__":
    main()
