"""Load test of `kanva serve`: requests/s and p50/p95 latency, batched vs unbatched.

For each preset, two real `kanva serve` processes (127.0.0.1) run side by side: one batching
(--max-batch-size B), one not (--max-batch-size 1). For each number of concurrent clients, every client
sends vision chat requests (one image + a question, greedy, fixed max_tokens) back to back; latency is from
sending a request to its last byte. Runs alternate between the two servers and repeat; the table pools them
and gives the batched/unbatched ratio of throughput and p95 latency.

    python benchmarks/serve_load.py                          # tiny and smol, 1/8/32 clients
    python benchmarks/serve_load.py --presets smol --requests 16 --max-tokens 8 --repeats 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from kanva.serve.server import free_port

QUESTIONS = ["What is in the image?", "Describe the image.", "What color is the object?", "Where is the cat?"]


def image_urls(n: int) -> list[str]:
    """n small distinct PNGs as data URLs (distinct so no two requests are the same prompt)."""
    urls = []
    for i in range(n):
        im = Image.new("RGB", (64, 64), ((37 * i) % 256, (91 * i) % 256, (53 * i + 100) % 256))
        im.paste((255 - (37 * i) % 256, 40, 40), (8, 8, 40, 40))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return urls


def start_server(model_dir: Path, batch: int, wait_ms: float, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kanva", "serve", "--model", str(model_dir), "--port", str(port), "--served-model-name",
         "bench", "--max-batch-size", str(batch), "--batch-wait-ms", str(wait_ms), "--threads", str(threads),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            httpx.get(url + "/v1/models", timeout=1)
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.2)


async def run_load(url: str, clients: int, per_client: int, max_tokens: int, urls: list[str]) -> dict:
    latencies: list[float] = []
    tokens = 0

    async def client(c: int, http: httpx.AsyncClient) -> None:
        nonlocal tokens
        for k in range(per_client):
            i = c * per_client + k
            body = {"model": "bench", "max_tokens": max_tokens, "temperature": 0, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": urls[i % len(urls)]}},
                {"type": "text", "text": QUESTIONS[i % len(QUESTIONS)]}]}]}
            t0 = time.perf_counter()
            r = await http.post(url + "/v1/chat/completions", json=body)
            latencies.append(time.perf_counter() - t0)
            r.raise_for_status()
            tokens += r.json()["usage"]["completion_tokens"]

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        before = (await http.get(url + "/v1/stats")).json()
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        wall = time.perf_counter() - t0
        after = (await http.get(url + "/v1/stats")).json()
    return {
        "latencies": latencies,
        "wall_s": wall,
        "tokens": tokens,
        "batches": after["batches"] - before["batches"],
        "generate_s": after["generate_s"] - before["generate_s"],
    }


def merge(runs: list[dict]) -> dict:
    """Pool repeated runs: throughput over the summed wall time, percentiles over all latencies."""
    lat = sorted(x for r in runs for x in r["latencies"])
    wall = sum(r["wall_s"] for r in runs)
    batches = sum(r["batches"] for r in runs)
    return {
        "requests": len(lat),
        "wall_s": wall,
        "rps": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))],
        "tok_s": sum(r["tokens"] for r in runs) / wall,
        "mean_batch": len(lat) / batches if batches else 0.0,
        "busy": sum(r["generate_s"] for r in runs) / wall,  # share of wall time the worker spent generating
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "smol"])
    ap.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--requests", type=int, default=64, help="total requests per run (at least 1 per client)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per mode and client count, pooled")
    ap.add_argument("--max-batch-size", type=int, default=16, help="the batched server's batch cap")
    ap.add_argument("--batch-wait-ms", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1, help="server's torch threads (1: steady on a shared CPU)")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("KANVA_BENCH_DIR", "/tmp/kanva-bench")))
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    from kanva.model import build_preset

    urls = image_urls(64)
    results = []
    modes = (("batched", args.max_batch_size), ("unbatched", 1))
    for preset in args.presets:
        model_dir = args.work / preset
        if not (model_dir / "config.json").is_file():
            build_preset(preset, model_dir)
        # Both servers run side by side (each idle while the other is measured) and the runs alternate, so
        # drifting load from other jobs on the machine hits both modes alike.
        servers = {mode: start_server(model_dir, batch, args.batch_wait_ms, args.threads) for mode, batch in modes}
        try:
            for _, url in servers.values():
                asyncio.run(run_load(url, 1, 2, args.max_tokens, urls))  # warm-up
            for clients in args.clients:
                per_client = max(1, args.requests // clients)
                runs: dict[str, list[dict]] = {mode: [] for mode, _ in modes}
                for _ in range(args.repeats):
                    for mode, _ in modes:
                        runs[mode].append(asyncio.run(run_load(servers[mode][1], clients, per_client, args.max_tokens, urls)))
                for mode, _ in modes:
                    r = merge(runs[mode])
                    results.append({"preset": preset, "mode": mode, "clients": clients, **r})
                    print(f"{preset:5s} {mode:9s} clients={clients:3d}  {r['rps']:7.2f} req/s  "
                          f"p50 {r['p50_ms']:8.0f} ms  p95 {r['p95_ms']:8.0f} ms  mean batch {r['mean_batch']:.1f}  "
                          f"busy {r['busy']:.0%}", file=sys.stderr, flush=True)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait()

    print(f"\nmax_tokens={args.max_tokens}, one 64x64 image + a question per request, greedy; "
          f"batched = --max-batch-size {args.max_batch_size} --batch-wait-ms {args.batch_wait_ms:g}; "
          f"server --threads {args.threads}\n")
    print("| preset | clients | mode | req/s | p50 ms | p95 ms | tokens/s | mean batch | busy | req/s ratio | p95 ratio |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    by = {(r["preset"], r["mode"], r["clients"]): r for r in results}
    for r in results:
        other = by.get((r["preset"], "unbatched", r["clients"]))
        ratio = (f"{r['rps'] / other['rps']:.2f}x", f"{r['p95_ms'] / other['p95_ms']:.2f}x") \
            if r["mode"] == "batched" and other else ("", "")
        print(f"| {r['preset']} | {r['clients']} | {r['mode']} | {r['rps']:.2f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {r['tok_s']:.0f} | {r['mean_batch']:.1f} | {r['busy']:.0%} | {ratio[0]} | {ratio[1]} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
