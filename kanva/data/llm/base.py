"""The LLM backend interface shared by the OpenAI-compatible client and the in-process model.

A backend takes a batch of chat requests and returns one reply per request, in order. Transport failures
never raise: a reply carries an `error` reason code instead (it becomes the candidate's rejection reason in
provenance), so one bad endpoint answer costs one candidate, not the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from collections.abc import Callable
from typing import Protocol

# Reply.error codes.
ERRORS = (
    "llm_timeout",  # no answer within the timeout, after all retries
    "llm_http_error",  # the endpoint kept answering an HTTP error status (500, 429, ...)
    "llm_bad_response",  # the body was not the JSON a chat completion should be
    "llm_connection",  # the endpoint could not be reached
    "llm_empty",  # a completion with no text
)


@dataclass(frozen=True)
class Request:
    """One chat completion request. `seed` makes sampling reproducible where the backend supports it."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    max_tokens: int = 160
    temperature: float = 0.0
    seed: int = 0
    images: tuple[str, ...] = ()  # image files shown with the last user message (a teacher that sees)

    def key(self, model: str) -> str:
        """Cache key: a hash of everything that determines the answer (an image by its bytes, not its path)."""
        fields = {"model": model, "messages": self.messages, "max_tokens": self.max_tokens,
                  "temperature": self.temperature, "seed": self.seed}
        if self.images:
            fields["images"] = [file_digest(p) for p in self.images]
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def prompt_text(self) -> str:
        return "\n".join(content for _, content in self.messages)


def file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@dataclass(frozen=True)
class Reply:
    text: str | None
    error: str | None = None  # one of ERRORS when text is None
    detail: str = ""
    cached: bool = False


class Backend(Protocol):
    model: str  # recorded in provenance

    def complete(self, requests: list[Request]) -> list[Reply]: ...


def complete_in_batches(requests: list[Request], model: str, cache, batch_size: int,
                        generate: Callable[[list[Request]], list[str]]) -> list[Reply]:
    """What an in-process backend's `complete` does: answer from the cache where it can, run the rest through
    `generate` in batches of rows that share sampling settings (request order kept), cache what it made."""
    replies: list[Reply | None] = [None] * len(requests)
    todo = []
    for i, req in enumerate(requests):
        hit = cache.get(req.key(model)) if cache is not None else None
        if hit is not None:
            replies[i] = Reply(hit, cached=True)
        else:
            todo.append(i)
    groups: dict[tuple[float, int], list[int]] = {}
    for i in todo:
        groups.setdefault((requests[i].temperature, requests[i].seed if requests[i].temperature > 0 else 0),
                          []).append(i)
    for idx in groups.values():
        for s in range(0, len(idx), max(1, batch_size)):
            batch = idx[s : s + max(1, batch_size)]
            texts = generate([requests[i] for i in batch])
            for i, text in zip(batch, texts):
                text = text.strip()
                replies[i] = Reply(text) if text else Reply(None, "llm_empty", "no text generated")
                if text and cache is not None:
                    cache.put(requests[i].key(model), text)
    return [r for r in replies if r is not None]
