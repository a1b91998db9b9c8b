"""A teacher that sees the image: `kanva data caption` (ALLaVA's two steps) end to end against `kanva serve`
running the tiny model, the same with recorded replies (images arrive as base64 image_url parts; kept,
hallucinating and failed replies each get their record and CHAIR), and `kanva data recaption` in-process."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi import Request as HTTPRequest
from fastapi.responses import JSONResponse

from kanva.cli import main
from kanva.data.eliminate import REASONS
from kanva.data.llava import load_llava
from kanva.data.synth import synth_coco, write_coco
from kanva.serve.server import ServerThread


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("capworld")
    inst, caps = synth_coco(4, seed=2)
    write_coco(root / "w", "train", inst, caps, images=True)
    return root / "w", inst


def prov(out: Path) -> list[dict]:
    return [json.loads(x) for x in out.with_name(out.stem + ".provenance.jsonl").read_text().splitlines()]


def test_caption_against_kanva_serve_tiny_writes_samples_and_records(world, tiny_model, tmp_path):
    from kanva.serve.app import create_app
    from kanva.serve.engine import Engine
    from kanva.serve.limits import Limits
    from kanva.serve.worker import BatchWorker

    w, inst = world
    out = tmp_path / "cap.json"
    worker = BatchWorker(Engine.load(tiny_model), max_batch_size=4, batch_wait_s=0.05)
    with ServerThread(create_app(worker, "kanva-tiny", Limits())) as url:
        assert main(["data", "caption", "--coco", str(w), "--split", "train", "--llm", url + "/v1", "--out",
                     str(out), "--max-tokens", "12", "--retries", "0"]) == 0
    records = prov(out)
    caps = [r for r in records if r["step"] == "caption"]
    assert len(caps) == len(inst["images"]) and all(r["model"] == "kanva-tiny" for r in records)
    assert all(r["prompt"].startswith("caption_fine.v1:") for r in caps)
    assert all(r["reason"] is None or r["reason"] in REASONS for r in records)  # a random model: coded reasons
    assert len([r for r in records if r["step"] == "qa"]) == sum(r["status"] == "kept" for r in caps)
    assert len(load_llava(out)) == sum(r["status"] == "kept" for r in records)  # the written file is valid


def recorded_teacher(images: dict[str, bytes], replies: dict[str, str], seen: list) -> FastAPI:
    """An OpenAI-compatible endpoint answering from recorded replies, keyed by the image it is shown."""
    app = FastAPI()
    by_bytes = {data: name for name, data in images.items()}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "recorded", "object": "model", "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    async def chat(req: HTTPRequest):
        body = await req.json()
        parts = body["messages"][-1]["content"]
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        head, data = url.split(",", 1)
        name = by_bytes[base64.b64decode(data)]
        text = next(p["text"] for p in parts if p["type"] == "text")
        step = "qa" if "Question:" in text else "caption"
        seen.append((name, step, head))
        reply = replies.get(f"{name}/{step}")
        if reply is None:
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "recorded",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


def test_caption_with_recorded_replies_keeps_checks_and_codes(world, tmp_path):
    w, inst = world
    ims = sorted(inst["images"], key=lambda im: im["id"])
    cats = {c["id"]: c["name"] for c in inst["categories"]}
    present = {im["file_name"]: sorted({cats[a["category_id"]] for a in inst["annotations"] if a["image_id"] == im["id"]})
               for im in ims}
    names = [im["file_name"] for im in ims]
    a, b, c = names[0], names[1], names[2]
    obj = present[a][0]
    absent = next(x for x in ("giraffe", "toaster", "zebra", "elephant") if x not in present[b])
    replies = {
        f"{a}/caption": f"A {obj} stands out in this picture, seen clearly against a plain background.",
        f"{a}/qa": f"Question: What could the {obj} here be used for, judging by how it looks?\n"
                   f"Answer: Judging by its shape, the {obj} is most likely being used as it normally is.",
        f"{b}/caption": f"The picture shows a large {absent} standing in the middle of an open field.",
    }  # c: the endpoint fails (HTTP 500); the last image: no record at all -> also 500
    seen: list = []
    images = {n: (w / "train" / n).read_bytes() for n in names}
    out = tmp_path / "cap.json"
    with ServerThread(recorded_teacher(images, replies, seen)) as url:
        assert main(["data", "caption", "--coco", str(w), "--split", "train", "--llm", url + "/v1", "--out",
                     str(out), "--retries", "0"]) == 0
    assert all(head == "data:image/png;base64" for _, _, head in seen)
    records = {r["id"]: r for r in prov(out)}
    assert records[f"{a}#caption"]["status"] == "kept" and records[f"{a}#caption"]["chair"]["chair_i"] == 0.0
    assert records[f"{a}#qa"]["status"] == "kept" and records[f"{a}#qa"]["model"] == "recorded"
    hb = records[f"{b}#caption"]
    assert hb["status"] == "rejected" and hb["reason"] == "hallucination" and hb["chair"]["hallucinated"] == [absent]
    assert records[f"{c}#caption"]["reason"] == "llm_http_error"
    samples = {s["id"]: s for s in load_llava(out)}
    assert set(samples) == {f"{a}#caption", f"{a}#qa"}
    assert samples[f"{a}#qa"]["image"] == a and samples[f"{a}#qa"]["conversations"][0]["value"].startswith("<image>\n")
    # a second run asks the teacher nothing it has answered (the disk cache)
    before = len(seen)
    with ServerThread(recorded_teacher(images, replies, seen)) as url:
        assert main(["data", "caption", "--coco", str(w), "--split", "train", "--llm", url + "/v1", "--out",
                     str(tmp_path / "again.json"), "--retries", "0", "--llm-cache", str(tmp_path / "llm_cache")]) == 0
    assert len(seen) - before == 2  # only the two failed images were asked again
    assert load_llava(tmp_path / "again.json") == load_llava(out)


def test_recaption_with_a_kanva_model_in_process(world, tiny_model, tmp_path):
    w, inst = world
    out = tmp_path / "re.json"
    assert main(["data", "recaption", "--model", str(tiny_model), "--images", str(w / "train"), "--coco", str(w),
                 "--split", "train", "--out", str(out), "--max-tokens", "8", "--batch-size", "3", "--limit", "3"]) == 0
    records = prov(out)
    assert [r["step"] for r in records] == ["caption"] * 3
    assert all(r["model"] == f"kanva:{Path(tiny_model).name}" and r["annotated"] for r in records)
    assert len(list((tmp_path / "llm_cache").rglob("*.json"))) == sum(r["reason"] != "llm_empty" for r in records)
