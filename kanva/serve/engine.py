"""The model side of the server: `kanva.infer.Generator` plus what routing tokens per row needs.

The worker streams token ids; turning them into text and spotting the end of each row needs the tokenizer
and the end-of-sequence ids the model's `generate` stops on. Both come from the model directory itself
(a plain transformers checkpoint), so nothing here depends on Generator internals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kanva.errors import KanvaError


class Engine:
    """Wraps a Generator: `generate` passes through; `decode`, `eos_ids`, `pad_id` serve the streamer."""

    def __init__(self, generator: Any, tokenizer: Any, eos_ids: set[int]) -> None:
        self.generator = generator
        self.tokenizer = tokenizer
        self.eos_ids = set(eos_ids)
        self.pad_id = tokenizer.pad_token_id

    @classmethod
    def load(cls, model_dir: str | Path) -> "Engine":
        """Load a model directory (float32 on CPU unless the Generator decides otherwise)."""
        from transformers import AutoTokenizer, GenerationConfig

        from kanva.infer import Generator

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise KanvaError(f"{model_dir}: not a model directory (no config.json)")
        generator = Generator.load(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        eos: set[int] = set()
        if tokenizer.eos_token_id is not None:
            eos.add(tokenizer.eos_token_id)
        if (model_dir / "generation_config.json").is_file():
            configured = GenerationConfig.from_pretrained(model_dir).eos_token_id
            eos.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
        if not eos:
            raise KanvaError(f"{model_dir}: the tokenizer has no eos_token and generation_config sets none")
        return cls(generator, tokenizer, eos)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def generate(self, batch: list[tuple[list[Any], list[dict[str, str]]]], **kwargs: Any) -> list[str]:
        return self.generator.generate(batch, **kwargs)
