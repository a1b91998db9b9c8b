"""The chat-completions request: validation and conversion to what `kanva.infer.Generator` takes.

Parsing is pydantic in strict mode: a field of the wrong JSON type is refused, never converted (`"8"` is not
a number, `true` is not 1, `"yes"` is not a boolean), numbers must be finite and in range, and a field OpenAI
does not define is refused by name rather than silently ignored. The limits and the OpenAI features this
server does not have are checked here too, so a request fails before any image is decoded or any slot is
taken. Messages become
`{"role", "content"}` with string content as sent and a list of parts in transformers' typed form
(`{"type": "image"}` at each image part's position, `{"type": "text", "text"}`), which the model's chat
template renders: the very prompt that vLLM or plain transformers build from the same request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kanva.data.llava import IMAGE_TOKEN, VIDEO_TOKEN
from kanva.infer.generate import GREEDY_BELOW
from kanva.serve.errors import APIError, limit_error
from kanva.serve.limits import Limits

INT64 = 2**63  # seeds are signed 64-bit, as torch.manual_seed and OpenAI's clients take them


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None  # accepted for compatibility; the processor decides


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class VideoURL(_Strict):
    url: str


class VideoPart(_Strict):
    """vLLM's extension: a whole video file as a data:video/...;base64 URL."""

    type: Literal["video_url"]
    video_url: VideoURL


class FramesPart(_Strict):
    """A video as a list of frame image URLs (the form Qwen-VL clients send to vLLM)."""

    type: Literal["video"]
    video: list[str] = Field(min_length=1)


Part = Annotated[TextPart | ImagePart | VideoPart | FramesPart, Field(discriminator="type")]


class Message(BaseModel):
    # Extra keys are ignored: an assistant message echoed back from a response carries `refusal`,
    # `annotations`, `audio`..., which mean nothing for this model's prompt.
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[Part] | None = None
    name: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    """OpenAI's chat-completions request, every field typed. The first group is honoured; the second is
    accepted and ignored where ignoring it cannot change the answer, refused otherwise (`UNSUPPORTED`);
    any other field is refused by name."""

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=-INT64, lt=INT64)
    n: int | None = Field(1, ge=1)

    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    modalities: list[str] | None = None
    reasoning_effort: str | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[str, float] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None


# Fields whose non-default value asks for something this server does not do: refuse rather than ignore.
UNSUPPORTED = {
    "tools": lambda v: bool(v),
    "functions": lambda v: bool(v),
    "tool_choice": lambda v: v not in (None, "none"),
    "function_call": lambda v: v not in (None, "none"),
    "logprobs": lambda v: bool(v),
    "top_logprobs": lambda v: v not in (None, 0),
    "response_format": lambda v: isinstance(v, dict) and v.get("type") not in (None, "text"),
    "audio": lambda v: v is not None,
    "frequency_penalty": lambda v: v not in (None, 0, 0.0),
    "presence_penalty": lambda v: v not in (None, 0, 0.0),
    "logit_bias": lambda v: bool(v),
    "prediction": lambda v: v is not None,
    "web_search_options": lambda v: v is not None,
    "modalities": lambda v: v not in (None, ["text"]),
}


@dataclass
class ParsedRequest:
    """A validated request: messages in Generator form, image URLs still to load, sampling settings."""

    model: str
    messages: list[dict[str, Any]]
    image_urls: list[tuple[str, str]]  # (url, where) in prompt order
    videos: list[tuple[str | list[str], str]]  # (video data URL or frame URLs, where) in prompt order
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    stream: bool
    include_usage: bool


def _loc(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a JSON path (`messages[0].content[1].image_url`).

    Pydantic also puts union branch labels in the path (`str`, `list[...]`, a part's `type` tag); those
    are not fields of the request, so they are left out.
    """
    out = ""
    skip_tag = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        if part == "str" or "[" in part:  # a union branch of `content` or `stop`
            skip_tag = part.startswith("list[tagged-union")
            continue
        if skip_tag and out.endswith("]") and part in ("text", "image_url", "video_url", "video"):
            skip_tag = False  # the discriminator tag of a content part
            continue
        out += ("." if out else "") + part
    return out


def parse_request(payload: Any, limits: Limits) -> ParsedRequest:
    """Validate a decoded JSON body. Raises APIError(400) naming the field at fault."""
    if not isinstance(payload, dict):
        raise APIError(400, f"request body must be a JSON object, got {type(payload).__name__}")
    try:
        req = ChatRequest.model_validate(payload)
    except ValidationError as e:
        # For a union (content: str | list of parts) the deepest location is the branch the client meant.
        first = max(e.errors(), key=lambda err: len(err["loc"]))
        where = _loc(first["loc"]) or "body"
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        if first["type"] == "extra_forbidden":
            raise APIError(400, f"Unrecognized request argument supplied: {where}{more}", param=where,
                           code="unknown_parameter") from None
        raise APIError(400, f"{where}: {first['msg']}{more}", param=where) from None

    for name, bad in UNSUPPORTED.items():
        if name in payload and bad(payload[name]):
            raise APIError(400, f"{name}: not supported by this server", param=name, code="unsupported_parameter")
    if req.n not in (None, 1):
        raise APIError(400, f"n: only n=1 is supported, got {req.n}", param="n", code="unsupported_parameter")

    max_tokens = req.max_completion_tokens or req.max_tokens or limits.default_max_tokens
    if max_tokens > limits.max_tokens:
        raise limit_error("max_tokens", limits.max_tokens, max_tokens, param="max_tokens")

    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > limits.max_stop:
        raise limit_error("max_stop", limits.max_stop, len(stop), param="stop")
    if any(s == "" for s in stop):
        raise APIError(400, "stop: stop strings must be non-empty", param="stop")

    messages: list[dict[str, Any]] = []
    image_urls: list[tuple[str, str]] = []
    n_images = sum(
        isinstance(p, ImagePart) for m in req.messages if isinstance(m.content, list) for p in m.content
    )
    if n_images > limits.max_images:  # counted before any image is decoded
        raise limit_error("max_images", limits.max_images, n_images, param="messages")
    n_videos = sum(
        isinstance(p, (VideoPart, FramesPart)) for m in req.messages if isinstance(m.content, list) for p in m.content
    )
    if n_videos > limits.max_videos:
        raise limit_error("max_videos", limits.max_videos, n_videos, param="messages")
    videos: list[tuple[str | list[str], str]] = []
    for i, m in enumerate(req.messages):
        role = "system" if m.role == "developer" else m.role
        parts = [TextPart(type="text", text=m.content)] if isinstance(m.content, str) else (m.content or [])
        pieces: list[dict[str, str]] = []
        for j, p in enumerate(parts):
            where = f"messages[{i}].content" + (f"[{j}]" if isinstance(m.content, list) else "")
            if isinstance(p, TextPart):
                for token, how in ((IMAGE_TOKEN, "images as image_url parts"),
                                   (VIDEO_TOKEN, "videos as video_url or video parts")):
                    if token in p.text:
                        raise APIError(
                            400,
                            f"{where}: text contains {token!r}, which marks media positions; send {how}",
                            param=where,
                        )
                pieces.append({"type": "text", "text": p.text})
            else:
                if role != "user":
                    raise APIError(400, f"{where}: images and videos are only accepted in user messages", param=where)
                if isinstance(p, ImagePart):
                    image_urls.append((p.image_url.url, where + ".image_url"))
                    pieces.append({"type": "image"})
                else:
                    source = p.video_url.url if isinstance(p, VideoPart) else list(p.video)
                    videos.append((source, where + (".video_url" if isinstance(p, VideoPart) else ".video")))
                    pieces.append({"type": "video"})
        if role == "assistant" and not pieces:
            raise APIError(400, f"messages[{i}].content: assistant message has no content", param=f"messages[{i}]")
        messages.append({"role": role, "content": m.content if isinstance(m.content, str) else pieces})
    if messages[-1]["role"] != "user":
        raise APIError(400, "messages: the last message must be from the user", param="messages")

    return ParsedRequest(
        model=req.model,
        messages=messages,
        image_urls=image_urls,
        videos=videos,
        max_tokens=max_tokens,
        # OpenAI's default is 1; a temperature too small to divide logits by is greedy (GREEDY_BELOW), and
        # batches with greedy requests.
        temperature=1.0 if req.temperature is None else (0.0 if req.temperature < GREEDY_BELOW else req.temperature),
        top_p=1.0 if req.top_p is None else req.top_p,
        stop=stop,
        seed=req.seed,
        stream=bool(req.stream),
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
    )
