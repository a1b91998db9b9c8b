"""The model side of the server: `kanva.infer.Generator` plus what routing tokens per row needs.

The worker streams token ids; turning them into text and spotting the end of each row needs the same
decoding and end-of-turn id that `Generator` uses, so a streamed answer is exactly the answer
`Generator.generate` would return for the same request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Engine:
    """Wraps a Generator: `generate` passes through; `decode` and `eos_ids` serve the streamer."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        proc = generator.proc
        self.eos_ids = {proc.end_of_turn_id}  # what Generator passes to model.generate as eos_token_id
        self.context_length = int(generator.model.config.text_config.max_position_embeddings)
        self.max_frames = proc.max_frames  # frames per video; None: the model takes no video

    @classmethod
    def load(cls, model_dir: str | Path) -> "Engine":
        """Load a model directory (float32 on CPU, as `Generator.load` does by default)."""
        from kanva.infer import Generator

        return cls(Generator.load(model_dir))

    def decode(self, ids: list[int]) -> str:
        return self.generator.proc.decode(ids)

    def encode(self, images: list[Any], messages: list[dict[str, Any]]) -> tuple[list[int], dict[str, Any]]:
        """(prompt ids with images expanded, the model's vision inputs), exactly `KanvaProcessor.encode_prompt`;
        KanvaError if the prompt cannot be built."""
        return self.generator.proc.encode_prompt(images, messages)

    def generate(self, prompts: list[tuple[list[int], dict[str, Any]]], **kwargs: Any) -> list[str]:
        return self.generator.generate_encoded(prompts, **kwargs)
