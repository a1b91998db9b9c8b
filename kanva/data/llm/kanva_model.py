"""A Kanva model as the teacher, in-process (`kanva data recaption --model DIR`): OneVision-style re-captioning
with one's own LLaVA model, batched, through `kanva.infer.Generator` (the code `kanva chat`, evaluation and
`kanva serve` prompt the model with), and the same disk cache as the other backends."""

from __future__ import annotations

from pathlib import Path

from kanva.data.llm.base import Reply, Request, complete_in_batches
from kanva.data.llm.cache import DiskCache


class KanvaModelBackend:
    def __init__(self, model_dir: str | Path, batch_size: int = 8, cache: DiskCache | None = None,
                 threads: int | None = None):
        import torch

        from kanva.infer import Generator

        if threads:
            torch.set_num_threads(threads)  # see local.py: one thread per process on a busy machine
        self.generator = Generator.load(model_dir)
        self.model = f"kanva:{Path(model_dir).resolve().name}"
        self.batch_size = max(1, batch_size)
        self.cache = cache

    def _generate(self, reqs: list[Request]) -> list[str]:
        from PIL import Image

        rows = []
        for q in reqs:
            images = []
            for p in q.images:
                with Image.open(p) as im:
                    images.append(im.convert("RGB"))
            rows.append((images, [{"role": r, "content": c} for r, c in q.messages]))
        return self.generator.generate(rows, max_new_tokens=max(q.max_tokens for q in reqs),
                                       temperature=reqs[0].temperature, seed=reqs[0].seed)

    def complete(self, requests: list[Request]) -> list[Reply]:
        return complete_in_batches(requests, self.model, self.cache, self.batch_size, self._generate)
