"""The token budget of a quickstart training stage: the step count that gives a stage the same number of
training tokens on whatever mixture it trains on, from the mixture's mean encoded length.

Its own module because every instruction run of the quickstart (kanva/quickstart/pipeline.py) and the
OneVision curriculum (kanva/quickstart/onevision.py) size their stages by it.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from kanva.errors import KanvaError
from kanva.quickstart.config import BudgetStage
from kanva.train.recipe import DataSource, Stage
from kanva.train.sampler import draws_per_epoch


def budget_stage(model: str, plan: BudgetStage, mix: list[dict], start: Path, seed: int) -> Stage:
    """The stage on this mixture with the step count that gives it `plan.tokens` training tokens (the same
    budget for every run; the mean length is measured with the run's seed, not the training seed, so an arm
    takes the same steps at every training seed)."""
    st = plan.stage
    per_step = st.batch_size * st.grad_accum
    mean_len = mean_tokens(start, mix, st.max_length, seed=seed)
    steps = max(1, math.ceil(plan.tokens / (per_step * mean_len)))
    print(f"  {model} / {st.name}: {mean_len:.1f} tokens per sample -> {steps} steps of {per_step} samples "
          f"for a budget of {plan.tokens} tokens", flush=True)
    return replace(st, steps=steps, data=[DataSource(**m) for m in mix])


def mean_tokens(model_dir: Path, mixture: list[dict], max_length: int, seed: int, n: int = 200) -> float:
    """Mean encoded length (text + image tokens) of the samples the stage draws: each source's mean over a
    random sample of its samples, weighted by how many samples an epoch draws from it (`draws_per_epoch`, the
    sampler's rule), so that a source replayed at a small ratio does not count as much as a whole one. Exact
    arithmetic: with one source this is that source's mean, to the bit."""
    from kanva.data.llava import load_llava
    from kanva.model.processor import KanvaProcessor

    proc = KanvaProcessor.from_pretrained(model_dir)
    rng = random.Random(seed)
    total, draws = Fraction(0), 0
    for src in mixture:
        samples = load_llava(src["path"])
        lengths = []
        for s in rng.sample(samples, min(n, len(samples))):
            enc = proc.encode(s, image_root=Path(src.get("image_root") or "."), max_length=max_length,
                              source=src["path"], pixels=False)  # only the length is needed
            lengths.append(len(enc.input_ids))
        w = draws_per_epoch(DataSource(**src).ratio, len(samples))
        if lengths and w:
            total += Fraction(sum(lengths), len(lengths)) * w
            draws += w
    if not draws:
        raise KanvaError(f"quickstart: the mixture {[m['path'] for m in mixture]} has no samples")
    return float(total / draws)
