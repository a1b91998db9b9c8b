"""The OpenAI-compatible API, driven by the official `openai` client against a live server on 127.0.0.1
serving the `tiny` preset: answers, streaming, images, stop, auth, batching, every bad input of issue 7."""

from __future__ import annotations

import base64
import http.server
import io
import struct
import zlib
import signal
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
from PIL import Image

from kanva.serve.app import create_app
from kanva.serve.engine import Engine
from kanva.serve.limits import MiB, Limits
from kanva.serve.server import ServerThread, free_port
from kanva.serve.worker import BatchWorker

MODEL = "kanva-tiny"
KEY = "test-key-123"


def png(color=(200, 30, 30), size=(40, 40), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 0).save(buf, "PNG")
    return buf.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width x height zeros: ~50 KB on the wire, width*height pixels once decoded.
    Written chunk by chunk with zlib (Pillow would first allocate the whole canvas to save it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64," + base64.b64encode(data).decode()


def image_msg(url: str, text: str = "What is in the image?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def tiny_dir(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return Engine.load(tiny_dir)


@pytest.fixture(scope="module")
def server(engine):
    worker = BatchWorker(engine, max_batch_size=8, batch_wait_s=0.05)
    with ServerThread(create_app(worker, MODEL, Limits(), api_key=KEY)) as url:
        yield url


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=60)


def stats(server) -> dict:
    return httpx.get(server + "/v1/stats", headers={"Authorization": f"Bearer {KEY}"}).json()


def reference(engine, image_bytes: bytes | None, text: str, max_tokens: int) -> str:
    """What kanva.infer.Generator answers for the same single request (greedy)."""
    images = [Image.open(io.BytesIO(image_bytes)).convert("RGB")] if image_bytes else []
    content = ("<image>\n" if image_bytes else "") + text
    return engine.generator.generate([(images, [{"role": "user", "content": content}])], max_new_tokens=max_tokens)[0]


# -- answers ---------------------------------------------------------------------------------------------
def test_models(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")


def test_image_answer_is_the_generator_answer(client, engine):
    r = client.chat.completions.create(model=MODEL, messages=image_msg(data_url(png())), max_tokens=24, temperature=0)
    answer = r.choices[0].message.content
    assert answer == reference(engine, png(), "What is in the image?", 24)
    assert r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.role == "assistant"
    images = [Image.open(io.BytesIO(png())).convert("RGB")]
    ids, _ = engine.generator.proc.encode_prompt(images, [{"role": "user", "content": "What is in the image?"}])
    assert r.usage.prompt_tokens == len(ids)
    assert 0 < r.usage.completion_tokens <= 24
    # a different image gives a different prompt, hence (for this random model) a different answer
    other = client.chat.completions.create(model=MODEL, messages=image_msg(data_url(png((10, 10, 240)))),
                                           max_tokens=24, temperature=0).choices[0].message.content
    assert other == reference(engine, png((10, 10, 240)), "What is in the image?", 24)


def test_stream_adds_up_to_the_same_answer(client):
    kw = dict(model=MODEL, messages=image_msg(data_url(png()), "Describe the image."), max_tokens=32, temperature=0)
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) > 1  # it really streamed, in several pieces
    assert "".join(deltas) == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stop_and_max_tokens(client):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Where is the cat?"}], temperature=0)
    full = client.chat.completions.create(**kw, max_tokens=40).choices[0].message.content
    assert len(full) > 12
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    cut = client.chat.completions.create(**kw, max_tokens=40, stop=[stop, "never-there"]).choices[0]
    assert cut.message.content == full[: full.find(stop)] and cut.finish_reason == "stop"
    streamed = client.chat.completions.create(**kw, max_tokens=40, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == full[: full.find(stop)]
    short = client.chat.completions.create(**kw, max_tokens=3)
    assert short.usage.completion_tokens <= 3
    assert short.choices[0].finish_reason == "stop" or short.usage.completion_tokens == 3
    assert full.startswith(short.choices[0].message.content)


def test_sampling_seeds(client, engine):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Describe the image."}], max_tokens=16,
              temperature=1.0)
    seeded = [client.chat.completions.create(**kw, seed=7).choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]  # a seed reproduces the answer
    rows = [([], [{"role": "user", "content": "Describe the image."}])]
    assert seeded[0] == engine.generator.generate(rows, max_new_tokens=16, temperature=1.0, seed=7)[0]
    unseeded = {client.chat.completions.create(**kw).choices[0].message.content for _ in range(3)}
    assert len(unseeded) == 3  # without one, each request samples afresh


def test_concurrent_requests_are_batched(client, server, engine):
    prompts = [f"How many {o}s are there?" for o in ("cat", "dog", "cup", "car", "bus", "kite")]
    before = stats(server)
    answers: dict[int, object] = {}
    gate = threading.Barrier(len(prompts))

    def ask(i: int) -> None:
        gate.wait()
        answers[i] = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompts[i]}], max_tokens=8 + 2 * i, temperature=0)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    after = stats(server)
    grown = {int(k): v - before["batch_sizes"].get(k, 0) for k, v in after["batch_sizes"].items()}
    assert any(size > 1 and n > 0 for size, n in grown.items()), (before, after)
    assert after["batches"] - before["batches"] < len(prompts)
    for i, r in answers.items():  # batching changes nothing in any row, budgets included
        assert r.choices[0].message.content == reference(engine, None, prompts[i], 8 + 2 * i)
        assert r.usage.completion_tokens <= 8 + 2 * i


def test_worker_waits_only_for_requests_still_arriving(engine):
    """A lone request starts at once, however long the batch window; one still being read is waited for."""
    from kanva.serve.worker import Job

    worker = BatchWorker(engine, max_batch_size=8, batch_wait_s=30.0)
    worker.start()
    finished = []
    done = threading.Event()

    def job(text: str) -> Job:
        def send(event):
            if event[0] != "text":
                finished.append(event)
                if len(finished) in (1, 3):
                    done.set()
        return Job(engine.encode([], [{"role": "user", "content": text}]), 4, 0.0, 1.0, [], None, send)

    try:
        t0 = time.monotonic()
        with worker.arriving():
            worker.submit(job("alone"))
        assert done.wait(20) and time.monotonic() - t0 < 20  # not the 30 s window
        done.clear()
        with worker.arriving():
            worker.submit(job("first"))
            with worker.arriving():  # a second request is still being decoded ...
                time.sleep(0.3)
                worker.submit(job("second"))  # ... and joins the first one's batch
        assert done.wait(20)
        assert worker.snapshot()["batch_sizes"] == {"1": 1, "2": 1}
    finally:
        worker.stop()


def job_for(engine, images: list, text: str, send, seed=None, max_tokens=6):
    from kanva.serve.worker import Job

    return Job(engine.encode(images, [{"role": "user", "content": text}]), max_tokens, 0.0, 1.0, [], seed, send)


def run_jobs(engine, specs: dict[str, tuple]) -> tuple[BatchWorker, dict[str, list]]:
    """Submit one job per spec (images, text, seed) while 'arriving', so they batch; wait for all to end."""
    worker = BatchWorker(engine, max_batch_size=8, batch_wait_s=5.0)
    worker.start()
    events: dict[str, list] = {name: [] for name in specs}
    finished = threading.Semaphore(0)

    def sender(name):
        def send(event):
            events[name].append(event)
            if event[0] != "text":
                finished.release()
        return send

    try:
        with worker.arriving():
            for name, spec in specs.items():
                job = spec if not isinstance(spec, tuple) else job_for(engine, *spec[:2], sender(name), *spec[2:])
                if not isinstance(spec, tuple):
                    job.send = sender(name)
                worker.submit(job)
        for _ in specs:
            assert finished.acquire(timeout=30)
    finally:
        worker.stop()
    return worker, events


def answered(engine, events, name, image, text):
    assert events[name][-1][0] == "finish", events[name]
    return "".join(e[1] for e in events[name] if e[0] == "text") == reference(engine, image, text, 6)


def test_a_failing_request_does_not_fail_its_batch(engine):
    """Generation raises for one row (one image's tokens, two images' pixels): the others are retried alone."""
    import torch

    from kanva.serve.worker import Job

    image = Image.open(io.BytesIO(png())).convert("RGB")
    ids, vision = engine.encode([image], [{"role": "user", "content": "What?"}])
    bad = Job((ids, {"pixel_values": torch.cat([vision["pixel_values"]] * 2)}), 6, 0.0, 1.0, [], None, lambda e: None)
    worker, events = run_jobs(engine, {"good": ([], "Where is the dog?"), "bad": bad,
                                       "good2": ([image], "What is in the image?")})
    assert worker.snapshot()["batch_sizes"]["3"] == 1  # they were batched, the batch failed ...
    assert events["bad"][-1][0] == "error" and events["bad"][-1][1].status == 500
    assert answered(engine, events, "good", None, "Where is the dog?")  # ... the good ones got their answers
    assert answered(engine, events, "good2", png(), "What is in the image?")


def test_a_greedy_batch_ignores_seeds(engine):
    """A greedy row's seed (here one torch cannot take) is never used: it once failed the whole batch."""
    worker, events = run_jobs(engine, {"seeded": ([], "Where is the dog?", 2**64), "other": ([], "Where is the cat?")})
    assert worker.snapshot()["batch_sizes"] == {"2": 1} and worker.snapshot()["errors"] == 0  # no retry
    assert answered(engine, events, "seeded", None, "Where is the dog?")
    assert answered(engine, events, "other", None, "Where is the cat?")


# -- auth ------------------------------------------------------------------------------------------------
def test_api_key_required(server):
    for key in ("wrong", ""):
        c = openai.OpenAI(base_url=server + "/v1", api_key=key or "x", max_retries=0,
                          default_headers={} if key else {"Authorization": ""})
        with pytest.raises(openai.AuthenticationError) as e:
            c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == 401 and "API key" in e.value.message
    r = httpx.get(server + "/v1/models")
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(server + "/").status_code == 200  # the page itself is static; its requests carry the key


# -- bad input -------------------------------------------------------------------------------------------
def expect_error(client, status: int, needle: str, **kw):
    base = dict(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(**{**base, **kw})
    assert e.value.status_code == status, e.value.message
    assert needle in e.value.message, e.value.message
    assert set(e.value.body) == {"message", "type", "param", "code"}
    return e.value


def test_50mb_image_is_refused_by_request_size(client):
    big = data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * (50 * MiB))
    expect_error(client, 413, "max_request_bytes", messages=image_msg(big))


def test_data_url_that_is_not_an_image(client):
    expect_error(client, 400, "media type 'text/plain'", messages=image_msg(data_url(b"hello", "text/plain")))
    expect_error(client, 400, "not a decodable image", messages=image_msg(data_url(b"hello, not a png")))
    expect_error(client, 400, "not valid base64", messages=image_msg("data:image/png;base64,%%%"))


def test_1000_images(client):
    parts = [{"type": "image_url", "image_url": {"url": data_url(png(size=(2, 2)))}}] * 1000
    e = expect_error(client, 400, "max_images", messages=[{"role": "user", "content": parts}])
    assert "got 1000" in e.message


@pytest.mark.parametrize("url, needle", [
    ("file:///etc/passwd", "scheme 'file'"),
    ("/etc/passwd", "a local path"),
    ("../../etc/passwd", "a local path"),
    ("ftp://example.com/a.png", "scheme 'ftp'"),
    ("http://127.0.0.1:1/a.png", "--allow-remote-images"),
    ("https://example.com/a.png", "--allow-remote-images"),
])
def test_image_url_policy(client, url, needle):
    e = expect_error(client, 400, needle, messages=image_msg(url))
    assert "root:" not in e.message  # nothing of the file came back


def test_decompression_bomb(client):
    with Image.open(io.BytesIO(png_bomb(5000, 5000))) as im:  # the generator writes real, decodable PNGs
        im.load()
        assert im.size == (5000, 5000)
    bomb = png_bomb()
    assert len(bomb) < 200_000
    expect_error(client, 400, "max_image_pixels", messages=image_msg(data_url(bomb)))
    # below Pillow's own ceiling, our (lower) cap is what refuses it
    expect_error(client, 400, "max_image_pixels exceeded: got 25000000", messages=image_msg(data_url(png_bomb(5000, 5000))))


def test_unknown_model(client):
    e = expect_error(client, 404, "does not exist", model="gpt-4o")
    assert e.code == "model_not_found"


def test_caps_and_bad_fields(client):
    expect_error(client, 400, "max_tokens exceeded", max_tokens=10**6)
    expect_error(client, 400, "temperature", temperature=5)
    expect_error(client, 400, "messages[0].role", messages=[{"role": "robot", "content": "hi"}])
    expect_error(client, 400, "context_length", messages=[{"role": "user", "content": "the red cat " * 3000}])
    expect_error(client, 400, "only accepted in user messages", messages=[
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": data_url(png())}}]},
        {"role": "user", "content": "hi"}])


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", "\u00e9".encode("latin-1"), b'{"model": 1}'])
def test_invalid_json(server, body):
    r = httpx.post(server + "/v1/chat/completions", content=body,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["message"]


@pytest.fixture(scope="module")
def long_answer(server):
    """(request kwargs, answer length, seconds the whole answer took) for a prompt whose greedy answer is long, so
    stopping it early shows. The seconds let a test give up part-way on any machine, fast or slow."""
    c = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=60)
    for text in ("hi", "Describe the image.", "What can you see?", "Where is the dog?", "Tell me about the kitchen."):
        kw = dict(model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=1024, temperature=0)
        t0 = time.monotonic()
        full = c.chat.completions.create(**kw).usage.completion_tokens
        if full >= 150:
            return kw, full, time.monotonic() - t0
    pytest.fail("no prompt gave a long answer to cut short")


def wait_cancelled(server, before: dict) -> dict:
    deadline = time.monotonic() + 10
    while (now := stats(server))["open"] or now["cancelled"] == before["cancelled"]:
        assert time.monotonic() < deadline, now
        time.sleep(0.02)
    return now


def test_client_disconnect_mid_stream_frees_its_slot(client, server, long_answer):
    kw, full, _ = long_answer
    before = stats(server)
    stream = client.chat.completions.create(**kw, stream=True)
    got = [next(iter(stream)) for _ in range(3)]
    assert got[0].choices[0].delta.role == "assistant"
    stream.close()
    now = wait_cancelled(server, before)
    steps = now["decode_steps"] - before["decode_steps"]
    time.sleep(0.3)
    assert stats(server)["decode_steps"] == now["decode_steps"]  # generation really stopped
    assert steps < full // 2, (steps, full)
    assert now["cancelled"] == before["cancelled"] + 1 and now["completed"] == before["completed"]
    # and the server goes on serving
    assert client.chat.completions.create(**{**kw, "max_tokens": 4}).usage.completion_tokens <= 4


def test_client_giving_up_on_a_non_streamed_answer_frees_its_slot(server, long_answer):
    kw, full, seconds = long_answer
    before = stats(server)
    # the client stops waiting a fifth of the way through the answer (a fixed timeout would outlast the whole
    # answer on a fast machine) and closes the connection
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server + "/v1/chat/completions", json=kw, headers={"Authorization": f"Bearer {KEY}"},
                   timeout=httpx.Timeout(5.0, read=seconds / 5))
    now = wait_cancelled(server, before)
    assert now["decode_steps"] - before["decode_steps"] < full
    assert now["completed"] == before["completed"]


def test_still_serving_after_bad_input(client, server):
    assert client.chat.completions.create(model=MODEL, messages=image_msg(data_url(png())), max_tokens=4,
                                          temperature=0).choices[0].message.content is not None
    assert stats(server)["errors"] == 0  # no bad input ever reached generation


# -- what a hostile or careless client found (issue 22) ----------------------------------------------------
def post(server, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(server + "/v1/chat/completions", content=body,
                      headers={"Authorization": f"Bearer {KEY}", "Content-Type": content_type}, timeout=60)


def request_json(**extra) -> bytes:
    import json

    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}).encode()


def test_eight_4096px_one_bit_pngs_are_refused_by_the_request_pixel_budget(client):
    bomb = data_url(png_bomb(4096, 4096))
    assert len(bomb) < 4000  # 2 KB each on the wire, 16.7 Mpx (under --max-image-pixels) each decoded
    parts = [{"type": "image_url", "image_url": {"url": bomb}}] * 8
    e = expect_error(client, 413, "--max-request-pixels", messages=[{"role": "user", "content": parts}])
    assert "got 134217728" in e.message and e.code == "max_request_pixels_exceeded"


def test_images_decode_within_the_pixel_budget_in_flight(engine):
    """With room for one request's images in flight, concurrent requests decode one at a time; all are served."""
    class Watched:
        def __init__(self, inner):
            self.inner, self.now, self.most = inner, 0, 0
            self.lock = threading.Lock()

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode(self, images, messages):
            with self.lock:
                self.now += bool(images)
                self.most = max(self.most, self.now)
            time.sleep(0.2)
            with self.lock:
                self.now -= bool(images)
            return self.inner.encode(images, messages)

    watched = Watched(engine)
    limits = Limits(max_image_pixels=40 * 40, max_request_pixels=40 * 40, max_pixels_in_flight=40 * 40)
    with ServerThread(create_app(BatchWorker(watched, max_batch_size=4), MODEL, limits)) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        results = []
        threads = [threading.Thread(target=lambda i=i: results.append(c.chat.completions.create(
            model=MODEL, messages=image_msg(data_url(png((20 * i, 30, 30)))), max_tokens=2, temperature=0)))
            for i in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert len(results) == 4 and watched.most == 1


@pytest.mark.parametrize("extra, field", [
    ({"max_tokens": "8"}, "max_tokens"), ({"max_tokens": True}, "max_tokens"), ({"max_tokens": 8.0}, "max_tokens"),
    ({"stream": "yes"}, "stream"), ({"seed": 2**64}, "seed"), ({"seed": -(2**63) - 1}, "seed"), ({"n": "1"}, "n"),
    ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"), ({"top_p": "1"}, "top_p"),
    ({"stop": ["x", 3]}, "stop[1]"), ({"user": 5}, "user"), ({"bogus": 1}, "bogus"),
])
def test_wrong_types_and_ranges_are_refused_not_converted(server, extra, field):
    r = post(server, request_json(**extra))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == field and field in error["message"]


def test_nan_and_infinity_name_their_field(server):
    for value in ("NaN", "Infinity", "-Infinity"):
        body = request_json(temperature=0.5).replace(b"0.5", value.encode())
        error = post(server, body).json()["error"]
        assert error["param"] == "temperature" and "finite" in error["message"], error


def test_a_vanishing_temperature_is_greedy(client, engine):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Where is the cat?"}],
                                       max_tokens=8, temperature=1e-300)
    assert r.choices[0].message.content == reference(engine, None, "Where is the cat?", 8)


def test_deep_nesting_is_a_400_on_a_connection_that_stays_open(server):
    import http.client
    from urllib.parse import urlsplit

    conn = http.client.HTTPConnection(urlsplit(server).netloc, timeout=60)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    conn.request("POST", "/v1/chat/completions", body=b"[" * 100_000, headers=headers)
    sock = conn.sock
    r = conn.getresponse()
    assert r.status == 400 and b"nested too deeply" in r.read()
    assert r.getheader("connection") != "close"
    conn.request("GET", "/v1/models", headers=headers)  # the same keep-alive connection still works
    assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_only_json_is_accepted(server, content_type):
    """A web page may POST these cross-site without a CORS preflight; the API answers none of them."""
    r = post(server, request_json(), content_type)
    assert r.status_code == 415 and r.json()["error"]["param"] == "Content-Type"
    assert post(server, request_json(), "application/json; charset=utf-8").status_code == 200


def test_security_headers(server):
    page = httpx.get(server + "/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'sha256-" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    for r in (page, httpx.get(server + "/v1/models"), post(server, request_json())):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_an_aborted_upload_is_one_quiet_line(server, caplog):
    import logging
    import socket
    from urllib.parse import urlsplit

    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "kanva.serve")]  # neither propagates
    for logger in loggers:
        logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="kanva.serve"):
            host, port = urlsplit(server).netloc.split(":")
            with socket.create_connection((host, int(port))) as s:
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: 100000\r\n\r\n{\"model\"")
                time.sleep(0.3)
            deadline = time.monotonic() + 10
            while not any("left during the upload" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
                time.sleep(0.05)
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert httpx.get(server + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


# -- remote images (opt-in) --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_host():
    """A loopback HTTP server with /red.png, /huge.png (declares 64 MiB), /slow.png, /silent.png, nothing else."""
    red = png()
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/red.png":
                self.send_response(200)
                self.send_header("Content-Length", str(len(red)))
                self.end_headers()
                self.wfile.write(red)
            elif self.path == "/huge.png":
                self.send_response(200)
                self.send_header("Content-Length", str(64 * MiB))
                self.end_headers()
            elif self.path == "/slow.png":  # a byte every 0.2 s: each read is quick, the whole is not
                self.send_response(200)
                self.send_header("Content-Length", str(len(red)))
                self.end_headers()
                for b in red:
                    if done.wait(0.2):
                        return
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
            elif self.path == "/silent.png":  # accepts the request, never answers
                done.wait(30)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    done.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def remote_client(engine):
    worker = BatchWorker(engine, max_batch_size=4, batch_wait_s=0.01)
    # Let a 50 MB image through to the image cap; a 2 s deadline for downloads.
    limits = Limits(max_request_bytes=128 * MiB, remote_image_timeout_s=2)
    with ServerThread(create_app(worker, MODEL, limits, allow_remote_images=True)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_remote_images_with_the_flag(remote_client, client, image_host):
    remote = remote_client.chat.completions.create(model=MODEL, messages=image_msg(image_host + "/red.png"),
                                                   max_tokens=16, temperature=0)
    local = client.chat.completions.create(model=MODEL, messages=image_msg(data_url(png())), max_tokens=16,
                                           temperature=0)
    assert remote.choices[0].message.content == local.choices[0].message.content
    expect_error(remote_client, 413, "max_image_bytes", messages=image_msg(image_host + "/huge.png"))
    expect_error(remote_client, 400, "HTTP 404", messages=image_msg(image_host + "/missing.png"))
    expect_error(remote_client, 400, "scheme 'file'", messages=image_msg("file:///etc/passwd"))


@pytest.mark.parametrize("path", ["/slow.png", "/silent.png"])
def test_remote_download_has_a_wall_clock_deadline(remote_client, image_host, path):
    t0 = time.monotonic()
    e = expect_error(remote_client, 400, "took longer than 2 s", messages=image_msg(image_host + path))
    assert time.monotonic() - t0 < 6 and "--remote-image-timeout-s" in e.message
    assert e.code == "remote_image_timeout"


def test_50mb_image_is_refused_by_image_size(remote_client):
    big = data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * (50 * MiB))
    expect_error(remote_client, 413, "max_image_bytes", messages=image_msg(big))


# -- the CLI ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # a fresh interpreter importing torch + transformers and loading the model
def test_kanva_serve_cli(tiny_dir):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kanva", "serve", "--model", str(tiny_dir), "--port", str(port),
                             "--api-key", KEY, "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.json()["data"][0]["id"] == str(tiny_dir)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0) as c:
            assert c.chat.completions.create(model=str(tiny_dir), messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=4).usage.completion_tokens <= 4
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal (exit status -SIGTERM)
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in out, out
    assert f"http://127.0.0.1:{port}" in out


def test_kanva_serve_cli_rejects_bad_flags(tiny_dir, tmp_path, capsys):
    from kanva.cli import main

    assert main(["serve", "--model", str(tiny_dir), "--max-images", "0"]) == 2
    assert "--max-images must be >= 1" in capsys.readouterr().err
    assert main(["serve", "--model", str(tiny_dir), "--max-batch-size", "0"]) == 2
    assert "--max-batch-size" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path)]) == 2
    assert "not a model directory" in capsys.readouterr().err
