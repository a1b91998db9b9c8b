"""Where a quickstart run's time goes: per step its wall time, its CPU use (of all the machine's cores), and
for training steps tokens/s as a share of the float32 matmul peak measured here and now.

    python benchmarks/quickstart_time.py OUT [--peak-seconds 3 | --peak GFLOPS]

Reads the step markers (`OUT/.steps/STEP.json`: seconds, cpu_seconds, cpu_share) and the training summaries
(`OUT/train/MODEL/STAGE/summary.json`: tokens, seconds). A training step's useful work is taken as 6 x the LM's
parameters per token (forward and backward; the frozen vision tower is not in the reading stage), which is the
usual estimate, not a count. The peak is torch's float32 matmul (2048 x 2048) on all cores, the best of a few
seconds of repeats, measured only on a quiet machine: with other work on the cores (load average over 0.5)
it refuses and asks for `--peak`, a figure measured earlier on the same machine. Prints a markdown table for
docs/quickstart.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def matmul_peak(seconds: float) -> float:
    """Best float32 GFLOP/s of a 2048 x 2048 matmul over `seconds`."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best, end = 0.0, time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return best


def lm_params(model_dir: Path) -> int:
    """Parameters of the language model in a saved Llava model (its config's text_config)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(model_dir)
    with __import__("torch").device("meta"):
        lm = AutoModelForCausalLM.from_config(cfg.text_config)
    return sum(p.numel() for p in lm.parameters())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="a `kanva quickstart --out` folder")
    ap.add_argument("--peak-seconds", type=float, default=3.0)
    ap.add_argument("--peak", type=float,
                    help="the float32 matmul peak in GFLOP/s, measured earlier on a quiet machine (not measured now)")
    args = ap.parse_args()
    out = Path(args.out)
    markers = sorted((out / ".steps").glob("*.json"), key=lambda p: json.loads(p.read_text()).get("finished", 0))
    if not markers:
        print(f"{out}/.steps: no step markers", file=sys.stderr)
        return 2
    peak = args.peak
    if peak is None:
        load = os.getloadavg()[0]
        if load > 0.5:
            print(f"load average {load:.1f}: a matmul peak measured now would share the cores with other work; "
                  f"run on a quiet machine or pass --peak GFLOPS", file=sys.stderr)
            return 2
        peak = matmul_peak(args.peak_seconds)
    params = None
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s on {os.cpu_count()} cores\n")
    print("| step | seconds | CPU (of all cores) | tokens/s | share of peak |")
    print("|---|---|---|---|---|")
    total = 0.0
    for m in markers:
        rec = json.loads(m.read_text())
        name, secs = rec["step"], rec["seconds"]
        total += secs
        share = rec.get("cpu_share")
        tps, of_peak = "", ""
        if name.startswith("train_"):
            sums = sorted((out / "train" / name.removeprefix("train_")).glob("*/summary.json"))
            toks = sum(json.loads(s.read_text()).get("tokens", 0) for s in sums)
            took = sum(json.loads(s.read_text()).get("seconds", 0) for s in sums)
            if toks and took:
                if params is None:
                    params = lm_params(out / "models" / "base")
                rate = toks / took
                tps, of_peak = f"{rate:.0f}", f"{100 * 6 * params * rate / 1e9 / peak:.0f}%"
        cpu = f"{100 * share:.0f}%" if share is not None else "-"
        print(f"| {name} | {secs:.0f} | {cpu} | {tps} | {of_peak} |")
    print(f"| all steps | {total:.0f} | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
