"""In-process generation with transformers: SmolLM2-135M-Instruct by default (`kanva.model.lm`), any causal LM
checkpoint directory otherwise. Batched (left padding), greedy unless a temperature is asked for, float32 on
CPU. Replies go through the same disk cache as the OpenAI backend, so a resumed run reuses them.

A 135M model echoes its prompt or ignores the format often; that is not handled here but by elimination
(reason codes `echo`, `unparsable`, ...), which is what the report's per-operator acceptance measures.
"""

from __future__ import annotations

from pathlib import Path

from kanva.data.llm.base import Reply, Request, complete_in_batches
from kanva.data.llm.cache import DiskCache
from kanva.errors import KanvaError


class LocalBackend:
    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 8, cache: DiskCache | None = None,
                 threads: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if model_dir is None:
            from kanva.model.lm import prepared_smollm2_dir

            model_dir = prepared_smollm2_dir()
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise KanvaError(f"{model_dir}: not a transformers checkpoint (no config.json)")
        if threads:
            # torch's thread count is per process; on a shared or busy machine one thread per process avoids
            # the spinning of oversubscribed OpenMP threads (measured: 14x slower at a load of 13 on 2 cores).
            torch.set_num_threads(threads)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.model = f"local:{model_dir.name}"
        self.batch_size = max(1, batch_size)
        self.cache = cache

    def _generate(self, reqs: list[Request]) -> list[str]:
        torch = self._torch
        prompts = [self.tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in q.messages],
                                                      tokenize=False, add_generation_prompt=True) for q in reqs]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        temperature = reqs[0].temperature
        kwargs = dict(max_new_tokens=max(q.max_tokens for q in reqs), pad_token_id=self.tokenizer.pad_token_id)
        if temperature > 0:
            torch.manual_seed(reqs[0].seed)
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.lm.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def complete(self, requests: list[Request]) -> list[Reply]:
        return complete_in_batches(requests, self.model, self.cache, self.batch_size, self._generate)
