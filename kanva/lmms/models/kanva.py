"""lmms-eval's `kanva` model: a Kanva model directory answered with `kanva.infer.Generator`, batched.

Why not only `llava_hf` on an export: this loads what `kanva train` writes as it is (no export step)
and batches generation (lmms-eval's `--batch_size`, default 16 here) with Kanva's left-padded KV-cache generator, the
same code `kanva eval run` uses, so lmms-eval and Kanva's own runner give the same answers.

Per request: the task's visuals (PIL images; none for text-only questions) and its prompt with any
"<image>" marker removed (Kanva's processor places the image tokens itself, as for `kanva chat`),
one user turn; generation settings from the task: max_new_tokens (default 1024, as llava_hf),
temperature (0 = greedy), top_p, and `until` strings, which end an answer and are cut from it.
Requests are grouped by their settings and answered in batches; answers come back in request order.
Videos (lmms-eval passes their paths) are read by the model's processor for an onevision model and refused
for a single-image llava model; log-likelihood requests are refused; both messages name the task.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from kanva.data.llava import IMAGE_TOKEN as IMAGE_MARK  # lmms-eval marks images in a context the same way


class Kanva(lmms):
    def __init__(self, pretrained: str, device: str = "cpu", batch_size: int | str = 16, **kwargs) -> None:
        super().__init__()
        if kwargs:
            raise ValueError(f"kanva: unknown model_args {', '.join(sorted(kwargs))} (have pretrained, device; "
                             "--batch_size and --device are lmms-eval's own options)")
        from kanva.infer import Generator

        self.generator = Generator.load(pretrained, device=device)
        self.batch_size = int(batch_size)

    def _row(self, req: Instance):
        context, _, doc_to_visual, doc_id, task, split = req.args
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
        visuals = [v for v in (visuals or []) if v is not None]
        proc = self.generator.proc
        if any(isinstance(v, str) for v in visuals) and proc.max_frames is None:
            raise ValueError(f"kanva: task {task!r} gives video input, and this model takes no video (a single-image "
                             "llava model; an onevision model does)")
        # lmms-eval gives a video as its file path: read and sampled by the model's processor, as `kanva eval run`
        media = [proc.load_video(Path(v), source=f"task {task}") if isinstance(v, str) else v.convert("RGB")
                 for v in visuals]
        text = context.replace(IMAGE_MARK, "").strip() if IMAGE_MARK in context else context
        return (media, [{"role": "user", "content": text}])

    def generate_until(self, requests: list[Instance]) -> list[str]:
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        out: list[str | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="kanva answers", disable=self.rank != 0)
        for key, idx in groups.items():
            kw = json.loads(key)
            until = kw.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            for start in range(0, len(idx), self.batch_size):
                batch = idx[start : start + self.batch_size]
                texts = self.generator.generate(
                    [self._row(requests[i]) for i in batch],
                    max_new_tokens=int(kw.get("max_new_tokens", 1024)),
                    temperature=float(kw.get("temperature", 0) or 0),
                    top_p=float(kw.get("top_p", 1.0) or 1.0),
                    stop=until or None,
                )
                for i, text in zip(batch, texts):
                    out[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
                bar.update(len(batch))
        bar.close()
        return out

    def loglikelihood(self, requests):
        task = requests[0].args[4] if requests else "?"
        raise NotImplementedError(f"kanva: task {task!r} asks for log-likelihoods; this model entry only generates")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("kanva: multi-round generation is not supported by this model entry")
