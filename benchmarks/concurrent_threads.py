"""How fast the vision stage and a reading stage go side by side, at each torch thread count per process.

`kanva quickstart` runs the smol recipe's reading stages beside the vision stage (two steps at once on two cores).
Each process takes torch's default thread count (the machine's cores), so two at once put twice as many threads
as cores to work. This measures, on a finished quickstart folder, the two stages' own speeds (vision steps/s from
its metrics log, reading tokens/s from its summary) alone and side by side at 2 and 1 threads each, in one run:

    python benchmarks/concurrent_threads.py OUT [--vision-steps 300] [--read-steps 20] [--threads 2,1]

Nothing under OUT is changed (the stages write to a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def commands(out: Path, tmp: Path, tag: str, vision_steps: int, read_steps: int) -> dict[str, list[str]]:
    recipe = yaml.safe_load((out / "recipes" / "evolved.yaml").read_text())
    for st in recipe["stages"]:
        st["save_every"] = 0
    path = tmp / f"read-{tag}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    py = [sys.executable, "-m", "kanva"]
    return {"vision": py + ["grounding", "pretrain", "--model", str(out / "models" / "base"), "--config",
                            str(out / "recipes" / "vision.yaml"), "--steps", str(vision_steps), "--out",
                            str(tmp / f"vision-{tag}")],
            "read": py + ["train", "--recipe", str(path), "--out", str(tmp / f"read-{tag}"), "--max-steps",
                          str(read_steps)]}


def rate(name: str, tmp: Path, tag: str) -> float:
    """vision: steps/s over the logged steps after the first; read: tokens/s from the stage's summary."""
    if name == "vision":
        rows = [json.loads(x) for x in (tmp / f"vision-{tag}" / "metrics.jsonl").read_text().splitlines()]
        (a, b) = rows[1], rows[-1]
        return (b["step"] - a["step"]) / (b["time"] - a["time"])
    return json.loads((tmp / f"read-{tag}" / "read" / "summary.json").read_text())["tokens_per_s"]


def run(which: list[str], threads: int, out: Path, tmp: Path, args) -> dict[str, float]:
    tag = f"{'+'.join(which)}-{threads}"
    cmds = commands(out, tmp, tag, args.vision_steps, args.read_steps)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t = time.time()
    procs = {n: subprocess.Popen(cmds[n], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in which}
    for n, p in procs.items():
        if p.wait():
            raise SystemExit(f"{n} ({tag}) failed: {' '.join(cmds[n])}")
    return {n: rate(n, tmp, tag) for n in which} | {"wall": time.time() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="a finished `kanva quickstart` folder (smol)")
    ap.add_argument("--vision-steps", type=int, default=300)
    ap.add_argument("--read-steps", type=int, default=20)
    ap.add_argument("--threads", default="2,1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        default = os.cpu_count() or 1
        alone = {n: run([n], default, args.out, tmp, args)[n] for n in ("vision", "read")}
        print(f"alone at {default} threads: vision {alone['vision']:.2f} steps/s, read {alone['read']:.1f} tokens/s")
        print("threads each | vision steps/s (of alone) | read tokens/s (of alone) | sum of the two shares")
        for th in [int(x) for x in args.threads.split(",")]:
            r = run(["vision", "read"], th, args.out, tmp, args)
            v, t = r["vision"] / alone["vision"], r["read"] / alone["read"]
            print(f"{th:12d} | {r['vision']:.2f} ({v:.2f}) | {r['read']:.1f} ({t:.2f}) | {v + t:.2f}")


if __name__ == "__main__":
    main()
