"""Unit tests of the serve pieces that need no server: request schema, image policy, per-row decoding."""

from __future__ import annotations

import base64
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kanva.errors import KanvaError
from kanva.serve.errors import APIError
from kanva.serve.images import decode_image, parse_data_url
from kanva.serve.limits import Limits
from kanva.serve.schema import parse_request
from kanva.serve.stream import RowDecoder


def png_bytes(size=(8, 8), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, media="image/png") -> str:
    return f"data:{media};base64," + base64.b64encode(data).decode()


def req(content, **kw):
    return {"model": "m", "messages": [{"role": "user", "content": content}], **kw}


# -- schema ----------------------------------------------------------------------------------------------
def test_parts_become_image_markers_in_order():
    url = data_url(png_bytes())
    p = parse_request(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": "what?"}]},
                {"role": "assistant", "content": "a cat"},
                {"role": "user", "content": [{"type": "text", "text": "and"},
                                             {"type": "image_url", "image_url": {"url": url}}]},
            ],
            "max_tokens": 7, "temperature": 0, "stop": "x",
        },
        Limits(),
    )
    image, text = {"type": "image"}, lambda t: {"type": "text", "text": t}
    assert [m["content"] for m in p.messages] == ["be brief", [image, text("what?")], "a cat", [text("and"), image]]
    assert [w for _, w in p.image_urls] == ["messages[1].content[0].image_url", "messages[3].content[1].image_url"]
    assert (p.max_tokens, p.temperature, p.stop) == (7, 0.0, ["x"])


@pytest.mark.parametrize(
    "payload, where",
    [
        (req("q", max_tokens=0), "max_tokens"),
        (req("q", temperature=3), "temperature"),
        (req([{"type": "imagex"}]), "messages[0].content[0]"),
        (req([{"type": "text"}]), "messages[0].content[0].text"),
        (req([{"type": "image_url", "image_url": {}}]), "messages[0].content[0].image_url.url"),
        ({"model": "m", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "q"}]}, "model"),
        (req("q", n=2), "n"),
        (req("q", tools=[{"type": "function"}]), "tools"),
        (req("q", frequency_penalty=0.5), "frequency_penalty"),
        (req("see <image> here"), "messages[0].content"),
    ],
)
def test_bad_requests_name_the_field(payload, where):
    with pytest.raises(APIError) as e:
        parse_request(payload, Limits())
    assert e.value.status == 400
    assert e.value.message.startswith(where), e.value.message


def test_caps_name_their_limit():
    limits = Limits(max_images=2, max_tokens=16, default_max_tokens=8)
    url = data_url(png_bytes())
    with pytest.raises(APIError, match="max_images.*got 3.*limit is 2"):
        parse_request(req([{"type": "image_url", "image_url": {"url": url}}] * 3), limits)
    with pytest.raises(APIError, match="max_tokens.*got 17.*limit is 16"):
        parse_request(req("q", max_tokens=17), limits)
    assert parse_request(req("q"), limits).max_tokens == 8
    with pytest.raises(KanvaError, match="--default-max-tokens"):
        Limits(max_tokens=4, default_max_tokens=8)


# -- images ----------------------------------------------------------------------------------------------
def test_pixel_budget_waits_in_order_and_frees_what_cancelled_waiters_held():
    import asyncio

    from kanva.serve.budget import PixelBudget

    async def scenario() -> list[str]:
        budget, order = PixelBudget(10), []

        async def use(name: str, n: int, hold_s: float) -> None:
            async with budget.hold(n):
                order.append(name)
                assert budget.used <= budget.total
                await asyncio.sleep(hold_s)

        a = asyncio.create_task(use("a", 6, 0.05))
        await asyncio.sleep(0)
        b = asyncio.create_task(use("b", 6, 0.0))  # does not fit beside a: waits
        gone = asyncio.create_task(use("gone", 4, 0.0))  # would fit beside a, but b came first
        c = asyncio.create_task(use("c", 3, 0.0))
        await asyncio.sleep(0.01)
        gone.cancel()  # its client left while waiting
        await asyncio.gather(a, b, c, gone, return_exceptions=True)
        assert budget.used == 0 and not budget._waiting
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_pixels_in_flight_must_admit_one_request():
    with pytest.raises(KanvaError, match="--max-pixels-in-flight"):
        Limits(max_pixels_in_flight=100, max_request_pixels=101)


def test_limit_flags_take_their_fields_types(tmp_path, capsys):
    """Counts are whole numbers >= 1; --max-video-decode-s is seconds, any amount > 0."""
    from kanva.cli import main

    assert Limits(max_video_decode_s=0.5).max_video_decode_s == 0.5
    with pytest.raises(KanvaError, match="--max-images must be >= 1, got 0"):
        Limits(max_images=0)
    serve = ["serve", "--model", str(tmp_path)]
    assert main([*serve, "--max-video-decode-s", "0"]) == 2
    assert "--max-video-decode-s must be > 0, got 0.0" in capsys.readouterr().err
    assert main([*serve, "--max-video-decode-s", "1e-6"]) == 2  # accepted; then the model dir is refused
    assert "not a model directory" in capsys.readouterr().err


def test_data_url_policy():
    limits = Limits(max_image_bytes=1000)
    assert parse_data_url(data_url(png_bytes()), "w", limits) == png_bytes()
    with pytest.raises(APIError, match="media type 'text/plain'"):
        parse_data_url(data_url(b"hello", "text/plain"), "w", limits)
    with pytest.raises(APIError, match="not valid base64"):
        parse_data_url("data:image/png;base64,@@@@", "w", limits)
    with pytest.raises(APIError, match="max_image_bytes") as e:
        parse_data_url(data_url(b"\0" * 2000), "w", limits)
    assert e.value.status == 413


def test_decompression_bomb_refused_from_header():
    # A 1-bit 20000x20000 PNG is ~50 KB on the wire but 400 Mpx (1.2 GB as RGB) once decoded.
    bomb = png_bytes((20000, 20000), mode="1")
    assert len(bomb) < 200_000
    with pytest.raises(APIError, match="max_image_pixels"):
        decode_image(bomb, "w", Limits())
    small = decode_image(png_bytes((30, 20), mode="L"), "w", Limits(max_image_pixels=600))
    assert small.size == (30, 20) and small.mode == "RGB"
    with pytest.raises(APIError, match="max_image_pixels.*got 601"):
        decode_image(png_bytes((601, 1)), "w", Limits(max_image_pixels=600))
    with pytest.raises(APIError, match="not a decodable image"):
        decode_image(b"GIF89a but not really", "w", Limits())
    with pytest.raises(APIError, match="corrupt or truncated"):
        decode_image(png_bytes((64, 64))[:-40], "w", Limits())


# -- incremental decoding ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    from kanva.model.tiny_tokenizer import tiny_tokenizer

    return tiny_tokenizer()


def run_row(tokenizer, ids, stop, max_tokens):
    decode = lambda x: tokenizer.decode(x, skip_special_tokens=True)  # noqa: E731
    row = RowDecoder(decode, stop, max_tokens)
    pieces = []
    for t in ids:
        pieces.append(row.push(t))
        if row.finished:
            break
    else:
        pieces.append(row.end("stop"))
    return row, pieces


def test_multibyte_text_is_never_split(tokenizer):
    ids = tokenizer.encode("a 日本 🦒 é")
    row, pieces = run_row(tokenizer, ids, [], 100)
    assert "".join(pieces) == "a 日本 🦒 é"
    assert all("\ufffd" not in p for p in pieces)
    assert len([p for p in pieces if p]) > 3  # it did stream, piece by piece


def test_stop_string_split_across_tokens_is_not_sent(tokenizer):
    ids = tokenizer.encode("the red cat sat")
    row, pieces = run_row(tokenizer, ids, ["cat s"], 100)
    assert "".join(pieces) == "the red "
    assert row.finish_reason == "stop"
    row, pieces = run_row(tokenizer, ids, [], 3)
    assert row.finish_reason == "length" and "".join(pieces) == tokenizer.decode(ids[:3])


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    ids=st.lists(st.integers(min_value=3, max_value=767), min_size=1, max_size=24),
    max_tokens=st.integers(min_value=1, max_value=30),
)
def test_pieces_add_up_to_the_truncated_decode(tokenizer, data, ids, max_tokens):
    full = tokenizer.decode(ids)
    # stop strings: substrings of the text (so they do occur) or unrelated ones
    stops = data.draw(st.lists(st.one_of(st.just("zz"), st.integers(0, max(len(full) - 1, 0)).map(
        lambda i: full[i : i + 2])).filter(bool), max_size=3))
    row, pieces = run_row(tokenizer, ids, stops, max_tokens)
    # reference: the first prefix of the tokens whose decode contains a stop string, or the budget
    expected, reason = tokenizer.decode(ids[:max_tokens]), "length" if len(ids) >= max_tokens else "stop"
    for k in range(1, min(len(ids), max_tokens) + 1):
        text = tokenizer.decode(ids[:k])
        hits = [text.find(s) for s in stops if s in text]
        if hits:
            expected, reason = text[: min(hits)], "stop"
            break
    assert "".join(pieces) == expected
    assert row.finish_reason == reason
    assert not any(s in "".join(pieces) for s in stops)
