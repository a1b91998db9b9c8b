"""A judge model behind any OpenAI-compatible chat endpoint, called with the `openai` client.

Kept apart from LLaVA-Bench so the benchmark code only sees `Judge.review(system, user, seed) -> str`.
The endpoint is `base_url` (e.g. a local `kanva serve`, vLLM, or api.openai.com); `http_client` lets
tests pass an `httpx.Client` with a mock transport.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from kanva.errors import KanvaError


@dataclass
class Judge:
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.2
    max_tokens: int = 512
    http_client: Any = None  # httpx.Client, for tests
    timeout: float = 120.0

    def __post_init__(self) -> None:
        from openai import OpenAI

        key = self.api_key or os.environ.get("OPENAI_API_KEY") or "none"  # local servers need no key
        self._client = OpenAI(
            base_url=self.base_url, api_key=key, http_client=self.http_client, timeout=self.timeout, max_retries=2
        )

    def review(self, system: str, user: str, seed: int | None = None) -> str:
        """The judge's reply text. Network and API errors become a KanvaError naming the endpoint."""
        import openai

        try:
            out = self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=seed,
            )
        except openai.OpenAIError as e:
            raise KanvaError(f"judge {self.model!r} at {self.base_url or 'api.openai.com'}: {e}") from None
        if not out.choices or out.choices[0].message.content is None:
            raise KanvaError(f"judge {self.model!r} at {self.base_url or 'api.openai.com'}: empty reply")
        return out.choices[0].message.content
