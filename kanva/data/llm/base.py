"""The LLM backend interface shared by the OpenAI-compatible client and the in-process model.

A backend takes a batch of chat requests and returns one reply per request, in order. Transport failures
never raise: a reply carries an `error` reason code instead (it becomes the candidate's rejection reason in
provenance), so one bad endpoint answer costs one candidate, not the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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

    def key(self, model: str) -> str:
        """Cache key: a hash of everything that determines the answer."""
        blob = json.dumps({"model": model, "messages": self.messages, "max_tokens": self.max_tokens,
                           "temperature": self.temperature, "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def prompt_text(self) -> str:
        return "\n".join(content for _, content in self.messages)


@dataclass(frozen=True)
class Reply:
    text: str | None
    error: str | None = None  # one of ERRORS when text is None
    detail: str = ""
    cached: bool = False


class Backend(Protocol):
    model: str  # recorded in provenance

    def complete(self, requests: list[Request]) -> list[Reply]: ...
