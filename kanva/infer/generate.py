"""Batched generation for LLaVA and OneVision models: left padding, KV cache, greedy or sampled, stop strings.

Everything goes through `model.generate` (transformers' KV cache, logits processors, streamers); what is
ours is turning (images and videos, messages) rows into one left-padded batch with the model's own processor, so
that `kanva chat`, evaluation and serving all prompt the model exactly the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from kanva.errors import KanvaError
from kanva.model.vision_batch import collate_vision
from kanva.model.video import Video

Row = tuple[list[Image.Image | Video], list[dict[str, Any]]]  # (images and videos in order, messages)
Prompt = tuple[list[int], dict[str, torch.Tensor]]  # KanvaProcessor.encode_prompt's (ids, vision inputs)

# Sampling divides the logits by the temperature: below this, float32 logits overflow to inf (and the
# probabilities to NaN) long before the distribution stops being the argmax, so such a temperature is
# greedy decoding, its limit. 1e-5 is vLLM's threshold too.
GREEDY_BELOW = 1e-5


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string."""
    hits = [i for s in stop or [] if s and (i := text.find(s)) != -1]
    return text[: min(hits)] if hits else text


class Generator:
    """Generates answers for batches of (images, messages) with one model."""

    def __init__(self, model, proc):
        self.model = model
        self.proc = proc

    @classmethod
    def load(cls, model_dir: str | Path, dtype=None, device: str = "cpu") -> Generator:
        from kanva.model import load_model

        model, proc = load_model(model_dir, dtype=dtype, device=device)
        return cls(model, proc)

    def _batch(self, encoded: list[Prompt]) -> dict[str, torch.Tensor]:
        """Left-pad encoded rows: every row's last prompt token sits at the same position, so one decoding
        step appends to all rows at once."""
        width = max(len(ids) for ids, _ in encoded)
        pad = self.proc.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, (ids, _) in enumerate(encoded):
            input_ids[i, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, width - len(ids):] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        # image (video) features fill <image> (<video>) positions in row-major order: concatenate by row
        for key, value in collate_vision([vision for _, vision in encoded]).items():
            batch[key] = value.to(self.model.dtype) if value.is_floating_point() else value
        device = self.model.device
        return {k: v.to(device) for k, v in batch.items()}

    @torch.inference_mode()
    def generate(self, rows: list[Row], max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 stop: list[str] | None = None, seed: int | None = None, streamer=None) -> list[str]:
        """One answer per row. temperature 0 (or below GREEDY_BELOW) is greedy; otherwise sampling with
        temperature/top_p, seeded by `seed` (the caller's global RNG state is left as it was). `stop`
        strings end a row and are cut from its answer. `streamer` (a transformers BaseStreamer) is passed
        to `model.generate`."""
        encoded = [self.proc.encode_prompt(list(media), messages) for media, messages in rows]
        return self.generate_encoded(encoded, max_new_tokens, temperature, top_p, stop, seed, streamer)

    @torch.inference_mode()
    def generate_encoded(self, encoded: list[Prompt], max_new_tokens: int = 64, temperature: float = 0.0,
                         top_p: float = 1.0, stop: list[str] | None = None, seed: int | None = None,
                         streamer=None) -> list[str]:
        """`generate` for rows already encoded by `KanvaProcessor.encode_prompt` (the server encodes each
        request when it arrives and keeps no decoded image)."""
        if not encoded:
            return []
        if not (temperature >= 0 and 0 < top_p <= 1):  # written so that NaN fails too
            raise KanvaError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if temperature < GREEDY_BELOW:
            temperature = 0.0
        batch = self._batch(encoded)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            eos_token_id=self.proc.end_of_turn_id,
            pad_token_id=self.proc.tokenizer.pad_token_id,
            streamer=streamer,
        )
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=None)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.proc.tokenizer)
        if seed is None or temperature == 0:  # unseeded: draw from (and advance) the global RNG, so
            out = self.model.generate(**batch, **kwargs)  # successive calls differ; greedy draws nothing
        else:  # a seeded call is reproducible and leaves the caller's RNG state as it was
            with torch.random.fork_rng(devices=[] if self.model.device.type == "cpu" else [self.model.device]):
                torch.manual_seed(seed)
                out = self.model.generate(**batch, **kwargs)
        new = out[:, batch["input_ids"].shape[1]:].tolist()
        return [cut_at_stop(self.proc.decode(ids), stop) for ids in new]
