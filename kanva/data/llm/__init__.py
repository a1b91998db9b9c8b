"""LLM backends for seeding and evolution: `openai` (any OpenAI-compatible URL) and `local` (transformers).

`make_backend(spec)` turns the CLI's `--llm` value into a backend: "none"/"rules" -> None (rule operators only),
"local" (SmolLM2-135M-Instruct) or "local:DIR" (any checkpoint), or an http(s) URL of an OpenAI-compatible API.
"""

from __future__ import annotations

from pathlib import Path

from kanva.data.llm.base import ERRORS, Backend, Reply, Request
from kanva.data.llm.cache import DiskCache
from kanva.errors import KanvaError


def make_backend(spec: str, cache_dir: str | Path | None = None, model: str | None = None, workers: int = 8,
                 timeout: float = 60.0, retries: int = 3, batch_size: int = 8,
                 threads: int | None = None) -> Backend | None:
    cache = DiskCache(cache_dir) if cache_dir else None
    if spec in ("none", "rules"):
        return None
    if spec == "local" or spec.startswith("local:"):
        from kanva.data.llm.local import LocalBackend

        path = spec.split(":", 1)[1] if ":" in spec else None
        return LocalBackend(path, batch_size=batch_size, cache=cache, threads=threads)
    if spec.startswith(("http://", "https://")):
        from kanva.data.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(spec, model=model, workers=workers, timeout=timeout, retries=retries, cache=cache)
    raise KanvaError(f"--llm {spec!r}: expected none, rules, local, local:DIR or an http(s):// URL")


__all__ = ["ERRORS", "Backend", "DiskCache", "Reply", "Request", "make_backend"]
