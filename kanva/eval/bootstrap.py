"""Percentile bootstrap intervals for accuracies over questions, and for the difference of two models.

A synthetic benchmark has tens to hundreds of questions per task, so a 10-point gap between two models can
be noise: every accuracy the multi-image and video scorers report carries a 95% interval from resampling its
questions with replacement (`N_BOOT` resamples, a fixed seed, so a score is reproduced exactly). The paired
interval resamples the same questions for both models, which is what a comparison of two arms needs.
`percentile_interval` is the one percentile rule: the quickstart's MME-points and POPE-F1 intervals use it too.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

N_BOOT = 1000
LEVEL = 95.0


def percentile_interval(samples: np.ndarray) -> tuple[float, float]:
    """The central LEVEL% of bootstrap `samples`: (lower, upper) percentiles."""
    lo = (100 - LEVEL) / 2
    return float(np.percentile(samples, lo)), float(np.percentile(samples, 100 - lo))


def accuracy_ci(correct: Sequence[bool], n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """95% interval of the percent of True in `correct` (resampled questions); (nan, nan) when empty."""
    x = np.asarray(correct, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    return percentile_interval(100 * x[idx].mean(axis=1))


def paired_delta_ci(a: Sequence[bool], b: Sequence[bool], n_boot: int = N_BOOT, seed: int = 0
                    ) -> tuple[float, tuple[float, float]]:
    """(accuracy of a minus b in points, its 95% interval) over the same questions resampled for both."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired outcomes need the same questions, got {x.size} and {y.size}")
    if x.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    return float(100 * (x.mean() - y.mean())), percentile_interval(100 * (x[idx].mean(axis=1) - y[idx].mean(axis=1)))
