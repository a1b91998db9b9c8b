"""Image tokens and prefill time per request: fixed resolution (llava) vs AnyRes (onevision), side by side.

    python benchmarks/onevision_tokens.py [--pairs tiny:tiny-ov smol:smol-ov] [--repeats 5] [--threads 1]

For each pair (a `llava` preset and the `onevision` preset with the same encoder and LM) and each image size
(the encoder's input size x 1, 2, 4 and two elongated shapes), one request "<image> + question" is encoded
with the model's own processor and prefilled (one forward pass, no generation); the median of `--repeats`
runs is printed with the image tokens, and the AnyRes/fixed ratios. A second table gives an 8-frame video and a
two-image prompt on the onevision model. A third table gives the token counts of the hub presets
(llava-onevision-0.5b/-7b: SigLIP-so400m 384 px, grids up to 6x6, anyres_max_9) from transformers' own
counting, with the KV cache they take in bf16, which needs no weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

QUESTION = "What is in the picture?"


def picture(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def prefill(gen, media, repeats: int) -> tuple[int, int, float]:
    """(image or video tokens, prompt tokens, median prefill seconds) for one request."""
    batch = gen._batch([(media, [{"role": "user", "content": QUESTION}])])
    ids = batch["input_ids"][0].tolist()
    proc = gen.proc
    n_media = ids.count(proc.image_token_id) + (ids.count(proc.video_token_id) if proc.video_token_id else 0)
    times = []
    with torch.inference_mode():
        gen.model(**batch, use_cache=False)  # warm-up (allocator, first-call paths), not timed
        for _ in range(repeats):
            t = time.perf_counter()
            gen.model(**batch, use_cache=False)
            times.append(time.perf_counter() - t)
    return n_media, len(ids), statistics.median(times)


def hub_table() -> list[tuple]:
    """Token counts of LLaVA-OneVision-0.5B/7B settings by transformers' LlavaOnevisionProcessor arithmetic."""
    from transformers import LlavaOnevisionProcessor

    from kanva.model.onevision import default_pinpoints

    class _Pins:  # the one image-processor attribute the counting reads
        image_grid_pinpoints = default_pinpoints(384)

    proc = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)  # counting needs no tokenizer or video part
    proc.image_processor, proc.num_image_tokens = _Pins(), 729
    proc.vision_aspect_ratio, proc.vision_feature_select_strategy = "anyres_max_9", "full"
    proc.video_token = "<video>"
    kv = {"0.5b": 2 * 24 * 2 * 64 * 2, "7b": 2 * 28 * 4 * 128 * 2}  # bytes/token: K+V x layers x kv heads x dim x bf16
    rows = []
    for h, w in [(384, 384), (768, 768), (1080, 1920), (1536, 1536), (2304, 2304), (600, 3000)]:
        n = proc._get_number_of_features(h, w, 384, 384)  # what replace_image_token uses for a single image
        rows.append((f"image {w}x{h}", n, *(f"{n * b / 2**20:.1f}" for b in kv.values())))
    rows.append(("image in a multi-image prompt", 729 + 1, *(f"{730 * b / 2**20:.1f}" for b in kv.values())))
    for frames in (8, 32):
        n = len(proc.replace_video_token({"pixel_values_videos": [[None] * frames]}, 0)) // len("<video>")
        rows.append((f"video, {frames} frames", n, *(f"{n * b / 2**20:.1f}" for b in kv.values())))
    return rows


def table(header: tuple, rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(r, widths)))
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", default=["tiny:tiny-ov", "smol:smol-ov"], help="LLAVA:ONEVISION presets")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from kanva.infer import Generator
    from kanva.model import build_preset
    from kanva.model.video import frames_to_video

    print(f"torch threads {torch.get_num_threads()}, median of {args.repeats} prefills, float32 CPU\n")
    video_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.pairs:
            fixed_name, ov_name = pair.split(":")
            fixed = Generator.load(build_preset(fixed_name, Path(tmp) / fixed_name))
            ov = Generator.load(build_preset(ov_name, Path(tmp) / ov_name))
            s = ov.proc.image_size[0]
            rows = []
            for w, h in [(s, s), (2 * s, 2 * s), (4 * s, 4 * s), (3 * s, s), (s, 3 * s)]:
                im = picture(w, h)
                ft, fp, fs = prefill(fixed, [im], args.repeats)
                at, ap_, as_ = prefill(ov, [im], args.repeats)
                rows.append((f"{w}x{h}", ft, fp, f"{fs * 1e3:.1f}", at, ap_, f"{as_ * 1e3:.1f}", f"{at / ft:.1f}x",
                             f"{as_ / fs:.1f}x"))
            print(f"{fixed_name} (fixed {s} px, pad) vs {ov_name} (AnyRes, {ov.model.config.vision_aspect_ratio})")
            table(("image", "fixed img tok", "prompt", "prefill ms", "anyres img tok", "prompt", "prefill ms",
                   "tokens", "time"), rows)
            video = frames_to_video([picture(s, s, i) for i in range(ov.proc.max_frames)], ov.proc.max_frames)
            for label, media in ((f"video, {ov.proc.max_frames} frames", [video]),
                                 ("two images", [picture(2 * s, s, 1), picture(s, 2 * s, 2)])):
                t, p, sec = prefill(ov, media, args.repeats)
                video_rows.append((ov_name, label, t, p, f"{sec * 1e3:.1f}"))
    table(("preset", "input", "media tokens", "prompt", "prefill ms"), video_rows)
    print("llava-onevision-0.5b / -7b (SigLIP-so400m 384 px, grids up to 6x6, anyres_max_9): tokens and bf16 "
          "KV cache per input (MiB)")
    table(("input", "tokens", "KV 0.5b", "KV 7b"), hub_table())


if __name__ == "__main__":
    main()
