"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, OpenAI): concurrent, retried, cached.

Requests run on a thread pool (`workers` at a time). Each request is retried with exponential backoff on
timeouts, connection errors, 5xx/429 answers and bodies that are not a chat completion; after the last try it
becomes a Reply with an error code (see base.ERRORS), never an exception. The openai client's own retries are
off so that this policy, and its reason codes, are the only ones.
"""

from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor

from kanva.data.llm.base import Reply, Request
from kanva.data.llm.cache import DiskCache


class OpenAIBackend:
    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, workers: int = 8,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 0.5, cache: DiskCache | None = None):
        import openai

        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none",
                                    timeout=timeout, max_retries=0)
        self.workers = max(1, workers)
        self.retries = max(0, retries)
        self.backoff = backoff
        self.cache = cache
        self.model = model or self._first_model()

    def _first_model(self) -> str:
        """The endpoint's first served model (vLLM needs the exact name); 'default' if it does not say."""
        try:
            models = self.client.models.list()
            return models.data[0].id
        except Exception:  # noqa: BLE001 - any failure here only means "use a placeholder name"
            return "default"

    def _once(self, req: Request) -> Reply:
        oa = self._openai
        try:
            resp = self.client.chat.completions.create(
                model=self.model,
                messages=chat_messages(req),
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                seed=req.seed,
            )
            text = resp.choices[0].message.content
        except oa.APITimeoutError as e:
            return Reply(None, "llm_timeout", str(e))
        except oa.APIStatusError as e:
            return Reply(None, "llm_http_error", f"HTTP {e.status_code}")
        except oa.APIConnectionError as e:
            return Reply(None, "llm_connection", str(e))
        except (oa.APIResponseValidationError, ValueError, AttributeError, TypeError, IndexError, KeyError) as e:
            return Reply(None, "llm_bad_response", f"{type(e).__name__}: {e}"[:200])
        if not isinstance(text, str) or not text.strip():
            return Reply(None, "llm_empty", "completion without text")
        return Reply(text)

    def _retrying(self, req: Request) -> Reply:
        key = req.key(self.model)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return Reply(hit, cached=True)
        reply = Reply(None, "llm_connection", "not tried")
        for attempt in range(self.retries + 1):
            reply = self._once(req)
            if reply.text is not None:
                break
            if reply.error == "llm_http_error" and reply.detail.split()[-1] in _FINAL_STATUSES:
                break  # a 4xx other than 408/429 will not change on retry
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        if reply.text is not None and self.cache is not None:
            self.cache.put(key, reply.text)
        return reply

    def complete(self, requests: list[Request]) -> list[Reply]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(requests))) as pool:
            return list(pool.map(self._retrying, requests))


def chat_messages(req: Request) -> list[dict]:
    """The request as chat messages; its images go with the last user message as base64 `image_url` parts
    (data URLs: the endpoint needs no access to our files), before the text."""
    msgs: list[dict] = [{"role": r, "content": c} for r, c in req.messages]
    if req.images:
        last = max(i for i, m in enumerate(msgs) if m["role"] == "user")
        parts: list[dict] = [{"type": "image_url", "image_url": {"url": data_url(p)}} for p in req.images]
        msgs[last]["content"] = parts + [{"type": "text", "text": msgs[last]["content"]}]
    return msgs


def data_url(path: str) -> str:
    """`data:image/...;base64,...` for an image file (media type from its extension, JPEG by default)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    media = {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(ext, "image/jpeg")
    with open(path, "rb") as f:
        return f"data:{media};base64," + base64.b64encode(f.read()).decode()


_FINAL_STATUSES = {str(s) for s in range(400, 500) if s not in (408, 429)}
