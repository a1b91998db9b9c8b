"""A judge model behind any OpenAI-compatible chat endpoint, called with the `openai` client.

Kept apart from the benchmarks so they only see `Judge.ask(messages, ...) -> JudgeReply`. Three things
make a judged score trustworthy, and live here:

- Replies are cached by request: the key is a hash of (model, messages, temperature, max_tokens, seed),
  stored as JSON lines in `cache` (a file), so a rerun reproduces the score without asking again and a
  changed prompt or judge is a new request, never an old reply.
- Each reply carries the version string the endpoint reports (`model` of the response, e.g.
  "gpt-4-0613" for "gpt-4"); benchmarks record it with the prompt's hash (`prompt_hash`).
- A failed call raises `JudgeError`, which benchmarks count and report; no score is ever defaulted.

The endpoint is `base_url` (a local `kanva serve`, vLLM, or api.openai.com); `http_client` lets tests
pass an `httpx.Client` with a mock transport.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError


class JudgeError(KanvaError):
    """The judge did not answer (network, API error, empty reply)."""


def prompt_hash(*parts: str) -> str:
    """sha256 of the prompt material (rules, instructions) a benchmark sends; first 16 hex digits."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class JudgeReply:
    content: str
    version: str  # the model the endpoint says answered
    cached: bool


@dataclass
class Judge:
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.2
    max_tokens: int = 512
    http_client: Any = None  # httpx.Client, for tests
    timeout: float = 120.0
    cache: Path | None = None  # JSON lines {key, content, version}
    calls: int = field(default=0, init=False)  # requests that reached the endpoint

    def __post_init__(self) -> None:
        from openai import OpenAI

        key = self.api_key or os.environ.get("OPENAI_API_KEY") or "none"  # local servers need no key
        self._client = OpenAI(
            base_url=self.base_url, api_key=key, http_client=self.http_client, timeout=self.timeout, max_retries=2
        )
        self._cached: dict[str, dict] = {}
        if self.cache is not None:
            self.use_cache(self.cache)

    def use_cache(self, path: Path) -> None:
        """Reads (and from now on appends to) the reply cache at `path`."""
        self.cache = Path(path)
        if self.cache.is_file():
            for line in self.cache.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._cached[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a half-written last line: that request is asked again

    @property
    def where(self) -> str:
        return f"judge {self.model!r} at {self.base_url or 'api.openai.com'}"

    def request_key(self, messages: list[dict], temperature: float, max_tokens: int, seed: int | None) -> str:
        body = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens,
                "seed": seed}
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()

    def ask(
        self,
        messages: list[dict],
        *,
        seed: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> JudgeReply:
        """The judge's reply (from the cache when this exact request was answered before)."""
        import openai

        temperature = self.temperature if temperature is None else temperature
        max_tokens = self.max_tokens if max_tokens is None else max_tokens
        key = self.request_key(messages, temperature, max_tokens, seed)
        if key in self._cached:
            hit = self._cached[key]
            return JudgeReply(hit["content"], hit.get("version") or self.model, True)
        self.calls += 1
        try:
            out = self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=temperature, max_tokens=max_tokens, seed=seed
            )
        except openai.OpenAIError as e:
            raise JudgeError(f"{self.where}: {e}") from None
        if not out.choices or out.choices[0].message.content is None:
            raise JudgeError(f"{self.where}: empty reply")
        reply = JudgeReply(out.choices[0].message.content, out.model or self.model, False)
        row = {"key": key, "content": reply.content, "version": reply.version}
        self._cached[key] = row
        if self.cache is not None:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return reply

    def review(self, system: str, user: str, seed: int | None = None) -> str:
        """(system, user) -> reply text, for benchmarks whose request is one system + one user message."""
        return self.ask([{"role": "system", "content": system}, {"role": "user", "content": user}], seed=seed).content


def ask_parsed(judge, messages: list[dict], parse, attempts: list[dict]) -> tuple[JudgeReply | None, Any]:
    """Asks until `parse(reply.content)` is not None, once per entry of `attempts` (the keyword arguments of
    that try's `ask`, e.g. a new seed or a warmer temperature, so a retry is a new request, not a cache hit).
    Returns (last reply, parsed value or None); a `JudgeError` propagates to the benchmark, which counts it."""
    reply, parsed = None, None
    for kwargs in attempts:
        reply = judge.ask(messages, **kwargs)
        parsed = parse(reply.content)
        if parsed is not None:
            break
    return reply, parsed


def judge_record(judge: Judge, versions: set[str] | list[str], prompt: str, comparable: bool, note: str = "") -> dict:
    """What results JSONs say about the judge: name, versions that answered, prompt hash, comparability."""
    out = {
        "model": judge.model if judge is not None else None,
        "versions": sorted(set(versions)),
        "prompt_hash": prompt,
        "comparable": comparable,
    }
    if note:
        out["note"] = note
    return out
