"""Model-side timings on this machine: prepare / load / build, and generation tokens/s by batch size.

    python benchmarks/model_speed.py [--preset smol] [--new-tokens 32] [--batches 1 4]

Prints one table. Generation runs greedy with `kanva.infer.Generator` (left padding, KV cache) on
text+image prompts; tokens/s counts generated tokens of all rows (rows that stop early count what they made).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smol")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()

    _, t_import = timed(lambda: __import__("transformers").LlavaForConditionalGeneration)
    from kanva.infer import Generator
    from kanva.model import build_preset
    from kanva.model.lm import load_lm, prepare_smollm2

    rows = [("torch threads", f"{torch.get_num_threads()}"), ("import transformers", f"{t_import:.2f} s")]
    _, t = timed(prepare_smollm2)
    rows.append(("kanva model prepare (cached if already done)", f"{t:.2f} s"))
    _, t = timed(lambda: load_lm("smollm2"))
    rows.append(("load cached SmolLM2-135M", f"{t:.2f} s"))
    with tempfile.TemporaryDirectory() as tmp:
        out, t = timed(lambda: build_preset(args.preset, Path(tmp) / "m"))
        rows.append((f"build preset {args.preset}", f"{t:.2f} s"))
        gen, t = timed(lambda: Generator.load(out))
        rows.append((f"load {args.preset} (model + processor)", f"{t:.2f} s"))
        rng = np.random.RandomState(0)
        image = Image.fromarray((rng.rand(120, 160, 3) * 255).astype("uint8"))
        questions = ["What is in the image?", "Describe the scene in detail.", "What colour is the object?",
                     "Is there a dog in the picture?"]
        gen.generate([([image], [{"role": "user", "content": "Hi"}])], max_new_tokens=2)  # warm-up
        for b in args.batches:
            batch = [([image], [{"role": "user", "content": questions[i % 4]}]) for i in range(b)]
            prompt_ids = [gen.proc.encode_prompt([image], m)[0] for _, m in batch]
            answers, t = timed(lambda: gen.generate(batch, max_new_tokens=args.new_tokens))
            made = sum(len(gen.proc.tokenizer(a, add_special_tokens=False).input_ids) for a in answers)
            rows.append((f"generate batch {b} (prompt {len(prompt_ids[0])} tok, {args.new_tokens} new max)",
                         f"{t:.2f} s, {made / t:.1f} tok/s"))
    # Other jobs on a shared machine slow everything down: say how busy it was.
    rows.append(("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"))
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}} | value\n{'-' * width}-|------")
    for k, v in rows:
        print(f"{k:<{width}} | {v}")


if __name__ == "__main__":
    main()
