"""`kanva serve` with an onevision model: the openai client sends images in two turns and a video (a
data:video/mp4 URL, or a list of frames) and gets the answer Generator gives; every video limit answers a
4xx naming itself."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
from conftest import write_mp4
from PIL import Image

from kanva.serve.app import create_app
from kanva.serve.engine import Engine
from kanva.serve.limits import Limits
from kanva.serve.server import ServerThread
from kanva.serve.worker import BatchWorker

MODEL = "kanva-tiny-ov"


def picture(seed: int, w: int = 48, h: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_url(im: Image.Image) -> str:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    write_mp4(path, [picture(100 + i) for i in range(30)])
    return path.read_bytes()


@pytest.fixture(scope="module")
def engine(tiny_ov_model):
    return Engine.load(tiny_ov_model)


@pytest.fixture(scope="module")
def client(engine):
    limits = Limits(max_frames=40, max_video_bytes=200_000, max_videos=1, max_request_pixels=200_000,
                    max_pixels_in_flight=200_000)
    with ServerThread(create_app(BatchWorker(engine, max_batch_size=4, batch_wait_s=0.05), MODEL, limits)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)


def video_part(data: bytes) -> dict:
    return {"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(data).decode()}}


def ask(client, content_turn1, content_turn2, max_tokens=6):
    return client.chat.completions.create(model=MODEL, max_tokens=max_tokens, temperature=0, messages=[
        {"role": "user", "content": content_turn1}, {"role": "assistant", "content": "A picture."},
        {"role": "user", "content": content_turn2}])


def test_two_images_and_a_video_get_generators_answer(client, engine, clip, tmp_path):
    from kanva.model.video import read_video

    a, b = picture(1), picture(2, 70, 30)
    out = ask(client, [{"type": "image_url", "image_url": {"url": png_url(a)}}, {"type": "text", "text": "What?"}],
              [{"type": "text", "text": "Compare "}, {"type": "image_url", "image_url": {"url": png_url(b)}},
               {"type": "text", "text": " with "}, video_part(clip)])
    (tmp_path / "c.mp4").write_bytes(clip)
    video = read_video(tmp_path / "c.mp4", engine.max_frames)
    msgs = [{"role": "user", "content": "<image>\nWhat?"}, {"role": "assistant", "content": "A picture."},
            {"role": "user", "content": "Compare <image>\n with <video>\n"}]
    want = engine.generator.generate([([a, b, video], msgs)], max_new_tokens=6)[0]
    assert out.choices[0].message.content == want
    n_media = 2 * 17 + 8 * 4 + 1  # two images of a multi-image prompt (16 + newline each), 8 frames pooled + newline
    assert out.usage.prompt_tokens > n_media


def test_a_list_of_frames_is_a_video(client, engine):
    frames = [picture(200 + i) for i in range(12)]
    out = ask(client, "Hello", [{"type": "video", "video": [png_url(f) for f in frames]},
                                {"type": "text", "text": "What happens?"}])
    from kanva.model.video import frames_to_video

    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "A picture."},
            {"role": "user", "content": "<video>\nWhat happens?"}]
    want = engine.generator.generate([([frames_to_video(frames, 8)], msgs)], max_new_tokens=6)[0]
    assert out.choices[0].message.content == want


def expect(client, status, needle, content):
    with pytest.raises(openai.APIStatusError) as e:
        ask(client, "Hi", content)
    assert e.value.status_code == status and needle in e.value.message, e.value.message


def test_video_limits_name_themselves(client, clip, tmp_path):
    long_clip = tmp_path / "long.mp4"
    write_mp4(long_clip, [picture(i % 5, 16, 16) for i in range(60)])  # 60 frames > max_frames 40
    expect(client, 413, "max_frames exceeded", [video_part(long_clip.read_bytes())])
    expect(client, 400, "max_frames exceeded", [{"type": "video", "video": [png_url(picture(0, 8, 8))] * 41}])
    expect(client, 413, "max_video_bytes exceeded", [video_part(b"\0" * 300_000)])
    expect(client, 400, "max_videos exceeded", [video_part(clip), video_part(clip)])
    expect(client, 400, "video_unreadable", [video_part(b"this is no video")])
    expect(client, 400, "expected a video", [{"type": "video_url", "video_url": {"url": png_url(picture(0))}}])
    expect(client, 400, "data:video", [{"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}])
    expect(client, 400, "'<video>'", [{"type": "text", "text": "<video> please"}])
    # the sampled frames count against the request's pixels, checked on headers before decoding
    big = tmp_path / "big.mp4"
    write_mp4(big, [picture(i, 160, 160) for i in range(10)])  # 8 sampled x 25,600 px > 200,000
    expect(client, 413, "max_request_pixels exceeded", [video_part(big.read_bytes())])
    expect(client, 413, "max_request_pixels exceeded", [{"type": "video", "video": [png_url(picture(i, 160, 160))
                                                                                   for i in range(10)]}])


def test_video_decoding_past_its_time_limit_names_the_flag(engine, clip):
    """--max-video-decode-s: decoding stops once it has run longer; a limit of 1 microsecond is passed by the
    first frame, so the refusal is certain and quick."""
    with ServerThread(create_app(BatchWorker(engine, 1, 0.0), MODEL, Limits(max_video_decode_s=1e-6))) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)
        expect(c, 413, "the limit is 1e-06 (server flag --max-video-decode-s)", [video_part(clip)])
        with pytest.raises(openai.APIStatusError) as e:
            ask(c, "Hi", [video_part(clip)])
    assert e.value.code == "max_video_decode_s_exceeded"
    took = float(e.value.message.split("got ")[1].split(",")[0])  # the time decoding ran, not the limit
    assert 1e-6 < took < 60


def test_a_llava_model_refuses_video(tiny_model, clip):
    with ServerThread(create_app(BatchWorker(Engine.load(tiny_model), 1, 0.0), "t", Limits())) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="t", max_tokens=2, messages=[{"role": "user", "content": [video_part(clip)]}])
    assert "takes no video" in e.value.message
