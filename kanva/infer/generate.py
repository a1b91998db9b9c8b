"""Batched generation for LLaVA and OneVision models: left padding, KV cache, greedy or sampled, stop strings.

Everything goes through `model.generate` (transformers' KV cache, logits processors, streamers); what is
ours is turning (images and videos, messages) rows into one left-padded batch with the model's own processor, so
that `kanva chat`, evaluation and serving all prompt the model exactly the same way. Rows that share a prompt prefix
with an image in it (several questions about one image) compute it once (kanva/infer/prefix.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from kanva.errors import KanvaError
from kanva.infer.prefix import layout, plan_groups, prefix_positions
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
    """Generates answers for batches of (images, messages) with one model.

    `share_prefix` (default on): rows of one batch with the same image(s) and the same ids up to them run their
    common prefix once and decode from a copy of its KV cache (kanva/infer/prefix.py). Greedy and sampled answers
    are those of the unshared batch up to float noise (the prefix forward draws no random numbers, so a seed draws
    the same samples); a batch in which no two rows share such a prefix (a single chat or server request) takes the
    plain path. Off, every row is prefilled whole, as `benchmarks/eval_prefix.py` compares."""

    def __init__(self, model, proc, share_prefix: bool = True):
        self.model = model
        self.proc = proc
        self.share_prefix = share_prefix

    @classmethod
    def load(cls, model_dir: str | Path, dtype=None, device: str = "cpu", share_prefix: bool = True) -> Generator:
        from kanva.model import load_model

        model, proc = load_model(model_dir, dtype=dtype, device=device)
        return cls(model, proc, share_prefix=share_prefix)

    def _vision(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The rows' vision inputs as one batch, in the model's dtype, on its device."""
        return {k: (v.to(self.model.dtype) if v.is_floating_point() else v).to(self.model.device)
                for k, v in collate_vision(rows).items()}

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
        device = self.model.device
        # image (video) features fill <image> (<video>) positions in row-major order: concatenate by row
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device),
                **self._vision([vision for _, vision in encoded])}

    def _shared(self, encoded: list[Prompt]) -> dict[str, Any] | None:
        """`model.generate` inputs that start from the prefix groups' KV cache (kanva/infer/prefix.py), or None
        when no two rows share a prefix."""
        config = self.model.config
        media = {t for t in (getattr(config, "image_token_id", None), getattr(config, "video_token_id", None))
                 if t is not None}
        groups = plan_groups(encoded, media)
        if groups is None:
            return None
        device = self.model.device
        t = {k: v.to(device) for k, v in layout(encoded, groups, self.proc.tokenizer.pad_token_id).items()}
        out = self.model(input_ids=t["prefix_ids"], attention_mask=t["prefix_mask"],
                         position_ids=prefix_positions(t["prefix_mask"]), use_cache=True, logits_to_keep=1,
                         **self._vision([encoded[g.rows[0]][1] for g in groups]))
        cache = out.cache
        cache.batch_select_indices(t["group_of"])  # each row gets its group's prefix (a copy per row)
        return {"input_ids": t["input_ids"], "attention_mask": t["attention_mask"], "cache": cache}

    def _inputs(self, encoded: list[Prompt]) -> dict[str, Any]:
        """What `model.generate` is given for these rows (besides the decoding settings)."""
        return (self.share_prefix and self._shared(encoded)) or self._batch(encoded)

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
        batch = self._inputs(encoded)
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
