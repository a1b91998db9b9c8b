"""Learning-rate schedule: linear warmup, then cosine decay to zero (LLaVA-1.5's choice).

The multiplier is a pure function of the optimizer step, so resuming needs only the step number and
every process computes the same value without communication.
"""

from __future__ import annotations

import math


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(total_steps * warmup_ratio)


def lr_factor(step: int, total_steps: int, warmup_ratio: float, schedule: str = "cosine") -> float:
    """Multiplier on the base lr for optimizer update number `step` (0-based) of `total_steps`.

    Warmup uses (step + 1) / warmup so the first update already moves the weights (a 0 lr first
    step would waste a batch). Cosine then falls from 1 to 0 over the remaining updates.
    """
    w = warmup_steps(total_steps, warmup_ratio)
    if step < w:
        return (step + 1) / w
    if schedule == "constant":
        return 1.0
    decay = max(1, total_steps - w)
    progress = min(1.0, (step - w) / decay)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
