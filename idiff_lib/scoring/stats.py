"""Uncertainty of a mean: the percentile bootstrap (Efron & Tibshirani, 1993)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def bootstrap_mean(values: Sequence[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean with a percentile bootstrap interval: {"value", "ci_low", "ci_high", "n"}."""
    arr = np.asarray(values, dtype=float)
    n = len(arr)
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(n_boot, n))].mean(axis=1) if n_boot > 0 else np.array([arr.mean()])
    alpha = (1 - level) / 2
    return {"value": float(arr.mean()), "ci_low": float(np.quantile(means, alpha)),
            "ci_high": float(np.quantile(means, 1 - alpha)), "n": n}
