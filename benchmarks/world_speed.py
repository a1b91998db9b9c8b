"""World generation speed and disk use: images/s and MB per 1,000 images, for PNG and JPEG.

    python benchmarks/world_speed.py [--n 1000] [--size 224] [--workers 2] [--formats png,jpg]

Times `generate_world` end to end (pool start-up, rendering, encoding, COCO files) into a temporary
directory; disk is the image folder and the annotation files, scaled to 1,000 images. Besides wall-clock
images/s (which drops when other jobs share the cores), it prints the CPU time spent per image (this process
and its workers) and the rate that CPU cost allows on `--workers` otherwise idle cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import tempfile
import time
from pathlib import Path

from kanva.world.config import load_world_config
from kanva.world.generate import generate_world


def _mb(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--formats", default="png,jpg")
    args = ap.parse_args()
    rows = []
    for fmt in args.formats.split(","):
        cfg = dataclasses.replace(load_world_config(), image_format=fmt)
        with tempfile.TemporaryDirectory() as tmp:
            t, c = time.perf_counter(), _cpu()
            out = generate_world(Path(tmp) / "w", {"train": args.n}, seed=0, cfg=cfg, size=args.size,
                                 workers=args.workers, progress=False)
            dt, cpu_ms = time.perf_counter() - t, (_cpu() - c) * 1000 / args.n
            images = list((out / "train").iterdir())
            ann = list((out / "annotations").iterdir())
            scale = 1000 / args.n
            rows.append((fmt, args.n / dt, cpu_ms, _mb(images) * scale, _mb(ann) * scale))
    load = os.getloadavg()[0]
    print(f"\nworld generation: {args.n} images, {args.size} px, {args.workers} worker processes, "
          f"{os.cpu_count()} cores, load average {load:.1f} at the end\n")
    print(f"| format | images/s (wall) | CPU ms / image | images/s on {args.workers} idle cores | images MB / 1k | annotations MB / 1k |")
    print("|---|---:|---:|---:|---:|---:|")
    for fmt, ips, cpu_ms, img_mb, ann_mb in rows:
        print(f"| {fmt} | {ips:.0f} | {cpu_ms:.1f} | {1000 * args.workers / cpu_ms:.0f} | {img_mb:.1f} | {ann_mb:.1f} |")


if __name__ == "__main__":
    main()
