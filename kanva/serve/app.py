"""The FastAPI app: OpenAI chat completions, model list, stats, and the chat page.

Request flow: `Content-Type: application/json` only (a cross-site form or `text/plain` POST, which a browser
sends without asking, is refused) -> read the body under `max_request_bytes` -> JSON -> `parse_request`
(schema and limits) -> model name -> images: bytes and headers first, so a request over
`max_request_pixels` is refused before any decoding; videos (within byte/frame/time limits) -> images
decoded and encoded with the prompt in a thread while the request holds its pixels of the server-wide
`PixelBudget` -> a `Job` (prompt ids and the model's vision inputs, no decoded images) on the `BatchWorker`
-> events back through an asyncio.Queue, sent as one JSON response or as server-sent events. Every failure
is an `APIError` rendered in OpenAI's error schema; anything unexpected becomes a 500 for that request only
(`middleware.Guard`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from kanva.errors import KanvaError
from kanva.serve.budget import PixelBudget, give_back_memory
from kanva.serve.errors import APIError, limit_error
from kanva.serve.images import decode_opened, load_image_bytes, open_image
from kanva.serve.limits import Limits
from kanva.serve.middleware import Guard, page_csp
from kanva.serve.schema import ParsedRequest, parse_request
from kanva.serve.videos import load_video
from kanva.serve.worker import BatchWorker, Event, Job

log = logging.getLogger("kanva.serve")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` (before it is all in memory)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise limit_error("max_request_bytes", limit, int(declared), status=413)
    buf = bytearray()
    try:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise limit_error("max_request_bytes", limit, len(buf), status=413)
    except ClientDisconnect:  # an aborted upload is the client's choice, not a server error: one line
        log.info("client %s left during the upload (%d bytes of %s)", request.client and request.client.host,
                 len(buf), declared or "?")
        raise APIError(400, "the client closed the connection before the body was complete") from None
    return bytes(buf)


def parse_json(body: bytes) -> Any:
    """The request body as JSON; APIError(400) otherwise. (NaN and Infinity parse, so that the schema,
    which takes finite numbers only, can name the field that holds one.)"""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"request body is not valid JSON: {e}", code="invalid_json") from None
    except RecursionError:
        raise APIError(400, "request body is not accepted: JSON nested too deeply", code="invalid_json") from None


def require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise APIError(415, f"Content-Type must be application/json, got {media or 'none'!r}",
                       param="Content-Type", code="unsupported_media_type")


async def wait_disconnect(request: Request) -> None:
    """Return when the client closes the connection (the body has been read: only disconnect is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(
    worker: BatchWorker,
    model_id: str,
    limits: Limits | None = None,
    api_key: str | None = None,
    allow_remote_images: bool = False,
) -> FastAPI:
    """An app serving `worker`'s model as `model_id`. The app starts and stops the worker (lifespan)."""
    limits = limits or Limits()
    created = int(time.time())
    budget = PixelBudget(limits.max_pixels_in_flight)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop)

    app = FastAPI(title="Kanva", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: {e.detail}"
        return JSONResponse(APIError(e.status_code, message, type=kind).body(), status_code=e.status_code)

    async def check_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken must not reveal how much of the key matched
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise APIError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>' (the server was started with --api-key)",
                type="authentication_error",
                code="invalid_api_key",
            )

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(check_key)])

    def model_card() -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "kanva"}

    @v1.get("/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @v1.get("/models/{name:path}")
    async def get_model(name: str) -> dict[str, Any]:
        if name != model_id:
            raise unknown_model(name)
        return model_card()

    @v1.get("/stats")
    async def stats() -> dict[str, Any]:
        return worker.snapshot()

    def unknown_model(name: str) -> APIError:
        return APIError(
            404,
            f"model {name!r} does not exist; this server serves {model_id!r} (see GET /v1/models)",
            type="not_found_error",
            param="model",
            code="model_not_found",
        )

    @v1.post("/chat/completions")
    async def chat_completions(request: Request) -> Any:
        with worker.arriving():  # the worker waits for requests still being read, so they batch together
            req, job, events = await prepare(request)
            worker.submit(job)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            return StreamingResponse(
                sse(job, events, rid, req),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await complete(request, job, events, rid, req)

    async def prepare(request: Request) -> tuple[ParsedRequest, Job, asyncio.Queue[Event]]:
        """Read, validate and decode a request into a Job (any problem: an APIError)."""
        require_json(request)
        payload = parse_json(await read_body(request, limits.max_request_bytes))
        req = parse_request(payload, limits)
        if req.model != model_id:
            raise unknown_model(req.model)
        engine = worker.engine
        opened = []  # every image's bytes and header first: the request's pixels are known before decoding
        for url, where in req.image_urls:
            data = await load_image_bytes(url, where, limits, allow_remote_images)
            opened.append((open_image(data, where, limits), where))
        total = sum(im.width * im.height for im, _ in opened)
        if total > limits.max_request_pixels:
            raise limit_error("max_request_pixels", limits.max_request_pixels, total, status=413, param="messages")
        if req.videos and not getattr(engine, "max_frames", None):
            raise APIError(400, f"{req.videos[0][1]}: this model takes no video (an onevision model does)",
                           param=req.videos[0][1], code="video_unsupported")
        videos = []  # after the images: the processor places each kind in its own order
        for source, where in req.videos:  # each video's sampled frames count against the request's pixels
            video = await load_video(source, where, limits, allow_remote_images, engine.max_frames,
                                     limits.max_request_pixels - total)
            videos.append(video)
            total += sum(f.width * f.height for f in video.frames)

        def encode() -> tuple[list[int], dict[str, Any]]:
            """Decode the images and encode the prompt; the decoded images live only in this call."""
            try:
                images = [decode_opened(im, where) for im, where in opened]
                return engine.encode(images + videos, req.messages)
            except KanvaError as e:  # a prompt the model cannot take: a 400 for this request alone
                raise APIError(400, f"messages: {e}", param="messages") from None
            finally:
                images = None
                for im, _ in opened:
                    im.close()
                give_back_memory()

        if total:
            async with budget.hold(total):
                prompt = await asyncio.to_thread(encode)
        else:
            prompt = await asyncio.to_thread(encode)
        prompt_tokens = len(prompt[0])
        if prompt_tokens + req.max_tokens > engine.context_length:
            raise APIError(
                400,
                f"context_length exceeded: the prompt is {prompt_tokens} tokens (images included) and max_tokens "
                f"is {req.max_tokens}, together over the model's context of {engine.context_length} tokens",
                param="messages",
                code="context_length_exceeded",
            )

        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def send(event: Event) -> None:  # called on the worker thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        job = Job(
            prompt=prompt,
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=req.stop,
            seed=req.seed,
            send=send,
        )
        return req, job, events

    async def complete(request: Request, job: Job, events: asyncio.Queue[Event], rid: str, req: ParsedRequest) -> Any:
        """Gather the whole answer; a client that leaves meanwhile cancels the job."""
        left = asyncio.ensure_future(wait_disconnect(request))
        pieces: list[str] = []
        try:
            while True:
                get = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({get, left}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    worker.cancel(job)
                    return JSONResponse({}, status_code=499)  # nobody is listening
                event = get.result()
                if event[0] == "text":
                    pieces.append(event[1])
                elif event[0] == "error":
                    raise event[1]
                else:
                    _, reason, prompt_tokens, completion_tokens = event
                    break
        finally:
            left.cancel()
            if not job.closed:
                worker.cancel(job)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces)},
                    "finish_reason": reason,
                    "logprobs": None,
                }
            ],
            "usage": usage(prompt_tokens, completion_tokens),
        }

    async def sse(job: Job, events: asyncio.Queue[Event], rid: str, req: ParsedRequest) -> AsyncIterator[str]:
        """Server-sent events: a role chunk, content chunks, a finish chunk, optional usage, [DONE].

        If the client disconnects, Starlette cancels this generator; `finally` then frees the job's slot.
        """
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            body = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                **extra,
            }
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                event = await events.get()
                if event[0] == "text":
                    yield chunk({"content": event[1]})
                elif event[0] == "error":
                    yield f"data: {json.dumps(event[1].body())}\n\n"
                    break
                else:
                    _, reason, prompt_tokens, completion_tokens = event
                    yield chunk({}, reason)
                    if req.include_usage:
                        body = {
                            "id": rid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model_id,
                            "choices": [],
                            "usage": usage(prompt_tokens, completion_tokens),
                        }
                        yield f"data: {json.dumps(body)}\n\n"
                    break
            yield "data: [DONE]\n\n"
        finally:
            if not job.closed:
                worker.cancel(job)

    def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    app.include_router(v1)

    @app.get("/examples", include_in_schema=False)
    async def page_examples() -> list[dict[str, str]]:
        """Starters for the chat page: world scenes with a question each (public, like the page)."""
        from kanva.serve.examples import examples

        return await asyncio.to_thread(examples)

    page = resources.files("kanva.serve").joinpath("static/chat.html").read_text(encoding="utf-8")
    csp = page_csp(page)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

    return app
