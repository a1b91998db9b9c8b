"""LLM backends: the OpenAI-compatible client against a fake local server that can time out, answer 500 or
return junk (retries, then a reason code, never a crash); the disk cache; evolution and seeding over a URL;
and the in-process local model (SmolLM2-135M) with a model that echoes its prompt rejected."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi import Request as HTTPRequest  # module level: FastAPI resolves the (string) annotation here
from fastapi.responses import JSONResponse, PlainTextResponse

from kanva.data.coco import load_coco
from kanva.data.config import EvolveConfig
from kanva.data.kbview import KBView
from kanva.data.llm import DiskCache, Request, make_backend
from kanva.data.llm.openai_backend import OpenAIBackend
from kanva.data.runner import run_evolve
from kanva.data.seed import make_seeds, write_seeds
from kanva.data.synth import MiniKB, synth_coco, write_coco


class FakeLLM:
    """A tiny OpenAI-compatible chat server on 127.0.0.1; `mode` and `respond` are changed by tests."""

    def __init__(self):
        self.mode = "ok"  # ok | timeout | 500 | junk | flaky
        self.fail_first = 0
        self.calls = Counter()
        self.respond = lambda messages: "Question: What is shown?\nAnswer: Something."
        self._lock = threading.Lock()

    def app(self):
        app = FastAPI()

        @app.get("/v1/models")
        def models():
            return {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "test"}]}

        @app.post("/v1/chat/completions")
        async def chat(req: HTTPRequest):
            body = await req.json()
            with self._lock:
                self.calls[self.mode] += 1
                n = sum(self.calls.values())
            mode = self.mode
            if mode == "flaky":
                mode = "500" if n <= self.fail_first else "ok"
            if mode == "timeout":
                await asyncio.sleep(1.5)  # never block the event loop: other requests go on
            if mode == "500":
                return JSONResponse({"error": {"message": "boom"}}, status_code=500)
            if mode == "junk":
                return PlainTextResponse("{this is not json", media_type="application/json")
            content = self.respond(body["messages"])
            return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

        return app


@pytest.fixture(scope="module")
def server():
    import uvicorn

    fake = FakeLLM()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}/v1"
    yield fake
    srv.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def fake(server):
    server.mode, server.fail_first = "ok", 0
    server.calls.clear()
    server.respond = lambda messages: "Question: What is shown?\nAnswer: Something."
    return server


def _req(text: str = "hi", seed: int = 0) -> Request:
    return Request((("user", text),), max_tokens=16, seed=seed)


def test_openai_backend_answers_and_names_the_model(fake):
    be = OpenAIBackend(fake.url, workers=4, retries=0)
    assert be.model == "fake-model"  # the first model the endpoint lists
    replies = be.complete([_req(f"q{i}") for i in range(6)])
    assert [r.text for r in replies] == ["Question: What is shown?\nAnswer: Something."] * 6
    assert all(r.error is None for r in replies)


@pytest.mark.parametrize("mode,code", [("500", "llm_http_error"), ("junk", "llm_bad_response"),
                                       ("timeout", "llm_timeout")])
def test_endpoint_failures_retry_then_give_a_reason_code(fake, mode, code):
    fake.mode = mode
    be = OpenAIBackend(fake.url, model="m", workers=2, retries=2, backoff=0.01, timeout=0.5)
    replies = be.complete([_req("a"), _req("b")])
    assert [r.error for r in replies] == [code, code]
    assert all(r.text is None for r in replies)
    assert fake.calls[mode] == 2 * 3  # every request was tried 1 + retries times


def test_retries_recover_from_transient_errors(fake):
    fake.mode, fake.fail_first = "flaky", 2
    be = OpenAIBackend(fake.url, model="m", workers=1, retries=3, backoff=0.01)
    (reply,) = be.complete([_req()])
    assert reply.text is not None and fake.calls["flaky"] == 3


def test_disk_cache_keyed_by_request(fake, tmp_path):
    cache = DiskCache(tmp_path / "cache")
    be = OpenAIBackend(fake.url, model="m", retries=0, cache=cache)
    first = be.complete([_req("same"), _req("other")])
    assert fake.calls["ok"] == 2 and not any(r.cached for r in first)
    again = be.complete([_req("same"), _req("other"), _req("same", seed=1)])
    assert [r.cached for r in again] == [True, True, False]  # a different seed is a different request
    assert fake.calls["ok"] == 3
    fake.mode = "500"  # failures are not cached: a cached answer still comes back, the new one fails
    r = be.complete([_req("same"), _req("new")])
    assert r[0].text == first[0].text and r[1].error == "llm_http_error"


def test_make_backend_rejects_unknown_specs():
    from kanva.errors import KanvaError

    assert make_backend("none") is None and make_backend("rules") is None
    with pytest.raises(KanvaError, match="--llm 'gpt'"):
        make_backend("gpt")


# -- evolution and seeding over a URL ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("llmworld")
    inst, caps = synth_coco(12, seed=5)
    write_coco(root / "w", "train", inst, caps, images=False)
    coco = load_coco(root / "w", "train")
    kb = KBView(MiniKB(), coco.category_names)
    samples, prov = make_seeds(coco, kb, ["conversation"], seed=0, progress=False)
    write_seeds(samples, prov, root / "seed.json")
    return root, coco, kb


def _llm_only_cfg() -> EvolveConfig:
    cfg = EvolveConfig()
    cfg.weights = {k: (1.0 if k.startswith("llm_") else 0.0) for k in cfg.weights}
    return cfg


def _smart(messages) -> str:
    """A well-behaved model: follows each prompt's format with grounded content."""
    user = messages[-1]["content"]
    if "Rephrase this question" in user:
        q = user.split("same meaning:\n", 1)[1].split("\n", 1)[0]
        return "Question: Could you tell me: " + q[0].lower() + q[1:]
    if "Statement:" in user:
        truth = "True" if "that is true" in user else "False"
        return "Statement: The picture shows some objects.\nVerdict: " + truth
    if "Blank:" in user:
        return "Sentence: The picture shows ___.\nBlank: some objects"
    if "Correct:" in user:
        return "Correct: a few things\nWrong: nothing at all | a spaceship launch | an empty sky"
    return "Question: Which object is closest to the left edge of this image and why?\nAnswer: It is the one " \
           "on the far left, as its box starts nearest to the edge."


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "provenance.jsonl").read_text().splitlines()]


def test_evolve_over_url_keeps_good_replies_and_records_prompt_and_model(fake, world, tmp_path):
    root, coco, kb = world
    fake.respond = _smart
    be = OpenAIBackend(fake.url, workers=4, retries=0, cache=DiskCache(tmp_path / "c"))
    run_evolve(root / "seed.json", root / "w", "train", tmp_path / "ev", rounds=2, cfg=_llm_only_cfg(), backend=be,
               llm_spec=fake.url, kb=kb, coco=coco, progress=False)
    recs = [r for r in _records(tmp_path / "ev") if r.get("round")]
    assert recs and {r["operator"] for r in recs} <= {"llm_knowledge", "llm_deepen", "llm_format", "llm_breadth",
                                                       "llm_paraphrase"}
    assert all(r["model"] == "fake-model" and ":" in r["prompt"] for r in recs)
    kept = [r for r in recs if r["status"] == "kept"]
    assert kept, Counter(r["reason"] for r in recs)
    para = [r for r in kept if r["operator"] == "llm_paraphrase"]
    for r in para:  # slot values survive a kept paraphrase verbatim
        for k in r["params"]["keep"]:
            assert k.lower() in r["question"].lower()
    evolved = json.loads((tmp_path / "ev" / "evolved.json").read_text())
    assert len(evolved) > len(json.loads((root / "seed.json").read_text()))


@pytest.mark.parametrize("mode", ["500", "junk", "timeout"])
def test_evolve_survives_a_broken_endpoint(fake, world, tmp_path, mode):
    root, coco, kb = world
    fake.mode = mode
    be = OpenAIBackend(fake.url, model="m", workers=8, retries=1, backoff=0.01, timeout=0.3)
    cfg = EvolveConfig()  # rules and LLM operators together: the rules still make data
    run_evolve(root / "seed.json", root / "w", "train", tmp_path / "ev", rounds=1, cfg=cfg, backend=be,
               llm_spec=fake.url, kb=kb, coco=coco, progress=False)
    recs = [r for r in _records(tmp_path / "ev") if r.get("round")]
    llm = [r for r in recs if r["operator"].startswith("llm_")]
    expected = {"500": "llm_http_error", "junk": "llm_bad_response", "timeout": "llm_timeout"}[mode]
    assert llm and {r["reason"] for r in llm} == {expected}
    assert any(r["status"] == "kept" for r in recs if not r["operator"].startswith("llm_"))


def test_echoing_model_is_rejected_with_reason_echo(fake, world, tmp_path):
    root, coco, kb = world
    fake.respond = lambda messages: messages[-1]["content"]  # repeats the prompt back
    be = OpenAIBackend(fake.url, model="m", retries=0)
    run_evolve(root / "seed.json", root / "w", "train", tmp_path / "ev", rounds=1, cfg=_llm_only_cfg(), backend=be,
               llm_spec=fake.url, kb=kb, coco=coco, progress=False)
    reasons = Counter(r["reason"] for r in _records(tmp_path / "ev") if r.get("round"))
    assert reasons and set(reasons) <= {"echo", "unparsable"} and reasons["echo"] > 0


def test_judge_rejects_blind_and_unimproved(fake, world, tmp_path):
    root, coco, kb = world

    def respond(messages):
        user = messages[-1]["content"]
        if "Without image" in user:
            return "Improved: no\nDifficulty: 3\nWithout image: no"
        return _smart(messages)

    fake.respond = respond
    cfg = _llm_only_cfg()
    cfg.judge = True
    be = OpenAIBackend(fake.url, model="m", retries=0)
    run_evolve(root / "seed.json", root / "w", "train", tmp_path / "ev", rounds=1, cfg=cfg, backend=be,
               llm_spec=fake.url, kb=kb, coco=coco, progress=False)
    recs = [r for r in _records(tmp_path / "ev") if r.get("round")]
    judged = [r for r in recs if "judge" in r]
    assert judged and all(r["status"] == "rejected" and r["reason"] == "not_improved" for r in judged)
    assert all(r["judge"] == {"improved": False, "difficulty": 3, "without_image": False} for r in judged)


def test_llm_seeds_kept_when_good_replaced_by_rules_when_bad(fake, world, tmp_path):
    root, coco, kb = world
    fake.respond = lambda messages: "Description: A scene with a few objects in it, seen from the side."
    be = OpenAIBackend(fake.url, model="m", retries=0)
    samples, prov = make_seeds(coco, kb, ["detail", "conversation"], seed=0, backend=be, progress=False)
    by = Counter((r["type"], r["source"], r["status"]) for r in prov)
    assert by[("detail", "llm", "kept")] == len(coco.images)
    # the reply has no Question/Answer pairs: every LLM conversation is rejected and the rule seed replaces it
    assert by[("conversation", "llm", "rejected")] == len(coco.images)
    assert by[("conversation", "rules", "kept")] == len(coco.images)
    assert all(r["reason"] == "unparsable" for r in prov if r["status"] == "rejected")
    assert len(samples) == 2 * len(coco.images)


# -- the local model --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_local_smollm2_generates_batched_and_caches(tmp_path):
    pytest.importorskip("transformers")
    from kanva.data.llm.local import LocalBackend

    be = LocalBackend(batch_size=3, cache=DiskCache(tmp_path / "c"), threads=1)
    reqs = [Request((("user", f"Name a colour. Number {i}."),), max_tokens=8) for i in range(4)]
    replies = be.complete(reqs)
    assert len(replies) == 4 and all(r.text for r in replies)
    solo = be.complete([Request((("user", "Name a colour. Number 3."),), max_tokens=8)])
    assert solo[0].cached and solo[0].text == replies[3].text  # same request -> the cached reply


# -- LLaVA's recipe: a prompt folder --------------------------------------------------------------------------
def _folder(root: Path, name: str, conv: list[str], boxes: bool = True) -> Path:
    """A prompt folder in LLaVA's layout with our own words (the project ships no prompt text)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "system_message.txt").write_text("You see a picture only through the notes below. Talk about it.\n")
    for i, c in enumerate(conv):
        caps = f"A note about scene {i}.\nAnother note about scene {i}."
        if boxes:
            caps += f"\n\nthing: [0.1, 0.2, 0.3, 0.{i + 4}]"
        (d / f"{i:03d}_caps.txt").write_text(caps + "\n")
        (d / f"{i:03d}_conv.txt").write_text(c + "\n")
    return d


def test_seed_with_a_llava_prompt_folder_sends_few_shot_turns_and_parses_the_reply(fake, world, tmp_path):
    from kanva.cli import main
    from kanva.data.prompt_folder import PromptFolder

    root, coco, kb = world
    blocks = ["Question:\nWhat is here?\n===\nAnswer:\nSome things.", "Question:\nAnd now?\n===\nAnswer:\nMore."]
    folder = PromptFolder.load(_folder(tmp_path, "conversation", blocks))
    assert folder.style == "blocks" and folder.boxes
    seen = []

    def respond(messages):
        seen.append(messages)
        return ("Question:\nWhat stands out in this picture?\n===\nAnswer:\nA few objects are spread over it.\n"
                "===\nQuestion:\nIs the picture busy?\n===\nAnswer:\nNot very, there is space between them.")

    fake.respond = respond
    be = OpenAIBackend(fake.url, model="m", retries=0)
    samples, prov = make_seeds(coco, kb, ["conversation"], seed=0, backend=be, progress=False, prompts=folder)
    msgs = seen[0]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[1]["content"] == folder.shots[0][0] and msgs[2]["content"] == blocks[0]
    rec = next(r for r in coco.images.values() if r.captions and r.objects and folder.context(r) == msgs[-1]["content"])
    caps, _, box_lines = msgs[-1]["content"].partition("\n\n")
    assert caps.splitlines() == rec.captions and box_lines.splitlines()[0].startswith(f"{rec.objects[0].category}: [")
    kept = [r for r in prov if r["source"] == "llm" and r["status"] == "kept"]
    assert kept and all(r["prompt"] == f"llava:conversation:{folder.hash}" for r in kept)
    conv = next(s for s in samples if s["id"] == f"{kept[0]['image_id']}-conversation")["conversations"]
    assert [t["value"] for t in conv] == ["<image>\nWhat stands out in this picture?",
                                         "A few objects are spread over it.", "Is the picture busy?",
                                         "Not very, there is space between them."]
    # JSON-lines examples: the reply is read as JSON lines; the folder's name gives the type on the CLI
    jl = _folder(tmp_path / "j", "complex_reasoning", ['{"question": "Why?", "answer": "Because."}'], boxes=False)
    fake.respond = lambda m: '{"question": "What might happen next here?", "answer": "Probably not much at all."}'
    out = tmp_path / "seed.json"
    assert main(["data", "seed", "--coco", str(root / "w"), "--split", "train", "--out", str(out), "--llm",
                 fake.url, "--prompts", str(jl), "--llm-cache", str(tmp_path / "c")]) == 0
    got = json.loads(out.read_text())
    assert {s["id"].split("-", 1)[1] for s in got} == {"reasoning"}
    assert any(s["conversations"][1]["value"] == "Probably not much at all." for s in got)
    (jl / "000_conv.txt").unlink()
    with pytest.raises(Exception, match="000_conv.txt: missing"):
        PromptFolder.load(jl)
