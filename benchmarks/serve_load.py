"""Load test of `kanva serve`: requests/s and p50/p95 latency, batched vs unbatched; then the bad-input mix.

For each preset, two real `kanva serve` processes (127.0.0.1) run side by side: one batching
(--max-batch-size B), one not (--max-batch-size 1). For each number of concurrent clients, every client
sends vision chat requests (one image + a question, greedy, fixed max_tokens) back to back; latency is from
sending a request to its last byte. Runs alternate between the two servers and repeat; the table pools them
and gives the batched/unbatched ratio of throughput and p95 latency.

Bad-input mix (`BAD_INPUTS`, after the load runs, on the batching server): every case is sent while 8 clients
keep sending good requests; each must get its expected status with the field or flag named in the error (or
be served), every good request must be answered, and the server must still answer afterwards. The pixel case
is also sent three at a time while the server's resident memory (VmRSS) is sampled: before, peak, and 3 s after.

    python benchmarks/serve_load.py                          # tiny and smol, 1/8/32 clients
    python benchmarks/serve_load.py --presets smol --requests 16 --max-tokens 8 --repeats 1
    python benchmarks/serve_load.py --presets tiny --bad-only             # only the bad-input mix and memory
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.server
import io
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
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


def one_bit_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG, written with zlib: ~2 KB for 4096x4096, 16.7 Mpx once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def start_server(model_dir: Path, batch: int, wait_ms: float, threads: int, extra: list[str] = ()
                 ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kanva", "serve", "--model", str(model_dir), "--port", str(port), "--served-model-name",
         "bench", "--max-batch-size", str(batch), "--batch-wait-ms", str(wait_ms), "--threads", str(threads),
         "--log-level", "warning", "--allow-remote-images", "--remote-image-timeout-s", str(REMOTE_DEADLINE_S),
         *extra],
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


# ---- the bad-input mix ---------------------------------------------------------------------------------
REMOTE_DEADLINE_S = 2


def slow_image_host() -> str:
    """A loopback HTTP server whose /slow.png sends a byte every 0.5 s and /silent.png never answers."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/silent.png":
                time.sleep(REMOTE_DEADLINE_S + 5)
                return
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:  # the server gave up on us, as it should
                pass

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def chat(content, **extra) -> dict:
    return {"model": "bench", "max_tokens": 4, "temperature": 0, "messages": [{"role": "user", "content": content}], **extra}


def image_parts(url: str, n: int) -> list[dict]:
    return [{"type": "image_url", "image_url": {"url": url}}] * n + [{"type": "text", "text": "hi"}]


def bad_inputs(host: str) -> list[tuple[str, bytes, str, int, str | None]]:
    """(case, body, content type, expected status, text its error must contain; None: served with 200).
    The pixel case is also right when served (200): a server started with a larger --max-request-pixels."""
    bomb = "data:image/png;base64," + base64.b64encode(one_bit_png(4096, 4096)).decode()
    js = "application/json"
    cases = [
        ("8 one-bit 4096px PNGs", chat(image_parts(bomb, 8)), js, 413, "--max-request-pixels"),
        ("seed 2**64", chat("hi", seed=2**64), js, 400, "seed"),
        ("temperature 1e-300", chat("hi", temperature=1e-300), js, 200, None),
        ("max_tokens \"8\"", chat("hi", max_tokens="8"), js, 400, "max_tokens"),
        ("max_tokens true", chat("hi", max_tokens=True), js, 400, "max_tokens"),
        ("stream \"yes\"", chat("hi", stream="yes"), js, 400, "stream"),
        ("unknown field", chat("hi", top_k=5), js, 400, "top_k"),
        ("remote, 1 byte per 0.5 s", chat(image_parts(host + "/slow.png", 1)), js, 400, "--remote-image-timeout-s"),
        ("remote, silent", chat(image_parts(host + "/silent.png", 1)), js, 400, "--remote-image-timeout-s"),
        ("file:// image", chat(image_parts("file:///etc/passwd", 1)), js, 400, "scheme 'file'"),
        ("20000px decompression bomb", chat(image_parts(
            "data:image/png;base64," + base64.b64encode(one_bit_png(20000, 20000)).decode(), 1)), js, 400,
         "max_image_pixels"),
    ]
    out = [(name, json.dumps(body).encode(), ctype, status, needle) for name, body, ctype, status, needle in cases]
    nan = json.dumps(chat("hi", temperature=0.5)).replace("0.5", "NaN").encode()
    out += [
        ("temperature NaN", nan, js, 400, "temperature"),
        ("100,000 nested brackets", b"[" * 100_000, js, 400, "nested too deeply"),
        ("text/plain POST", json.dumps(chat("hi")).encode(), "text/plain", 415, "Content-Type"),
    ]
    return out


def abort_upload(url: str) -> None:
    """Send half a body and hang up (the server must stay quiet and keep serving)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\n\r\n{\"model\": ")
        time.sleep(0.2)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


async def rss_during(http: httpx.AsyncClient, url: str, pid: int, body: str, n: int = 3
                     ) -> tuple[list[int], float, float, float]:
    """Send `body` n times at once; the server's statuses and VmRSS before, at peak (every 20 ms), 3 s after."""
    before = peak = rss_mb(pid)
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    rs = await asyncio.gather(*(http.post(url + "/v1/chat/completions", content=body,
                                          headers={"Content-Type": "application/json"}) for _ in range(n)))
    await asyncio.sleep(3)
    sampling = False
    await sampler
    return [r.status_code for r in rs], before, peak, rss_mb(pid)


async def run_bad_mix(url: str, pid: int, urls: list[str]) -> list[dict]:
    """Each bad case beside 8 clients of good traffic; then the pixel case three at a time, with RSS sampled."""
    results = []
    stop = asyncio.Event()
    good = {"sent": 0, "ok": 0}

    async def good_client(c: int, http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            body = chat(image_parts(urls[(c + good["sent"]) % len(urls)], 1))
            good["sent"] += 1
            r = await http.post(url + "/v1/chat/completions", json=body)
            good["ok"] += r.status_code == 200
            if r.status_code != 200:
                good.setdefault("failed", r.text[:200])

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=32)) as http:
        background = [asyncio.create_task(good_client(c, http)) for c in range(8)]
        for name, body, ctype, status, needle in bad_inputs(slow_image_host()):
            r = await http.post(url + "/v1/chat/completions", content=body, headers={"Content-Type": ctype})
            error = r.json().get("error", {}) if r.headers.get("content-type") == "application/json" else {}
            ok = (r.status_code == status and (needle is None or needle in error.get("message", ""))
                  or (status == 413 and r.status_code == 200))
            results.append({"case": name, "status": r.status_code, "ok": ok, "message": error.get("message", "")})
        await asyncio.to_thread(abort_upload, url)
        stop.set()
        await asyncio.gather(*background)
        alive = (await http.post(url + "/v1/chat/completions", json=chat("hi"))).status_code == 200
        results.append({"case": "aborted upload, then a request", "status": 200 if alive else 0, "ok": alive,
                        "message": ""})
        results.append({"case": f"good requests beside them ({good['sent']})", "status": 200,
                        "ok": good["ok"] == good["sent"], "message": f"{good['ok']} answered {good.get('failed', '')}"})

        # Three concurrent pixel-bomb requests, resident memory sampled: eight PNGs each (over the default
        # --max-request-pixels) and one each (within it: served).
        bomb = "data:image/png;base64," + base64.b64encode(one_bit_png(4096, 4096)).decode()
        for n in (8, 1):
            statuses, before, peak, after = await rss_during(http, url, pid, json.dumps(chat(image_parts(bomb, n))))
            results.append({"case": f"3 concurrent x {n} one-bit 4096px PNG(s)", "status": statuses[0],
                            "ok": peak - before < 500 and after - before < 100,
                            "message": f"RSS {before:.0f} MB, peak +{peak - before:.0f} MB, 3 s after "
                                       f"+{after - before:.0f} MB (statuses {statuses})"})
    return results


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
    ap.add_argument("--bad-only", action="store_true", help="skip the load runs: only the bad-input mix")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra `kanva serve` flag for the bad-input mix's server, e.g. --server-arg=--max-request-pixels=134217728")
    args = ap.parse_args()

    from kanva.model import build_preset

    urls = image_urls(64)
    results, bad = [], []
    modes = (("batched", args.max_batch_size), ("unbatched", 1))
    for preset in args.presets:
        model_dir = args.work / preset
        if not (model_dir / "config.json").is_file():
            build_preset(preset, model_dir)
        # Both servers run side by side (each idle while the other is measured) and the runs alternate, so
        # drifting load from other jobs on the machine hits both modes alike.
        servers = {mode: start_server(model_dir, batch, args.batch_wait_ms, args.threads) for mode, batch in modes
                   if not args.bad_only}
        try:
            for _, url in servers.values():
                asyncio.run(run_load(url, 1, 2, args.max_tokens, urls))  # warm-up
            for clients in [] if args.bad_only else args.clients:
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
        # A fresh server for the bad-input mix, so its memory figures start from an idle process.
        proc, url = start_server(model_dir, args.max_batch_size, args.batch_wait_ms, args.threads, args.server_arg)
        try:
            asyncio.run(run_load(url, 1, 2, args.max_tokens, urls))  # warm-up
            for r in asyncio.run(run_bad_mix(url, proc.pid, urls)):
                bad.append({"preset": preset, **r})
        finally:
            proc.terminate()
            proc.wait()

    if results:
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
    if bad:
        print(f"\nbad-input mix (server flags: {' '.join(args.server_arg) or 'defaults'}):\n")
        print("| preset | case | status | as expected | error / figure |")
        print("|---|---|---:|---|---|")
        for r in bad:
            print(f"| {r['preset']} | {r['case']} | {r['status']} | {'yes' if r['ok'] else 'NO'} | {r['message'][:150]} |")
    if args.json:
        args.json.write_text(json.dumps({"load": results, "bad_inputs": bad}, indent=2) + "\n")


if __name__ == "__main__":
    main()
