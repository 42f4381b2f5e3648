"""Uncertainty of a mean: the percentile bootstrap (Efron & Tibshirani, 1993), over pairs or over
clusters of pairs.

Pairs cut from one photo share its content, so their outcomes are correlated; resampling pairs as
if they were independent gives intervals that are too narrow. `cluster_bootstrap_mean` resamples
whole clusters (photos) with replacement and recomputes the pooled mean (the cluster bootstrap,
Davison & Hinkley, 1997, section 3.8). With every pair its own cluster it is the pair bootstrap.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np

# The caption every interval from `cluster_bootstrap_mean` carries in tables and figures.
CLUSTER_CI_CAPTION = "95% cluster-bootstrap interval over photos"


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


def cluster_bootstrap_mean(values: Sequence[float], clusters: Sequence[Hashable] | None, n_boot: int = 1000,
                           seed: int = 0, level: float = 0.95) -> dict:
    """Pooled mean with a percentile interval from resampling whole clusters.

    Args:
        values: one value per pair (NaN values are dropped with their cluster label).
        clusters: one cluster label per value (the pair's photo); None makes every pair its own cluster.

    Returns:
        {"value", "ci_low", "ci_high", "n", "n_clusters", "method"}; the value is the plain mean of
        `values`, each resample's mean is the pooled mean of the drawn clusters' values.
    """
    arr = np.asarray(values, dtype=float)
    labels = np.arange(len(arr)) if clusters is None else np.asarray(list(clusters), dtype=object)
    if len(labels) != len(arr):
        raise ValueError(f"cluster_bootstrap_mean: {len(arr)} values but {len(labels)} cluster labels")
    keep = ~np.isnan(arr)
    arr, labels = arr[keep], labels[keep]
    method = "pair bootstrap" if clusters is None else "cluster bootstrap over photos"
    if len(arr) == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0, "n_clusters": 0, "method": method}
    _, codes = np.unique(labels.astype(str), return_inverse=True)
    sums = np.bincount(codes, weights=arr)
    counts = np.bincount(codes).astype(float)
    k = len(sums)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(max(n_boot, 1), k))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = (1 - level) / 2
    return {"value": float(arr.mean()), "ci_low": float(np.quantile(means, alpha)),
            "ci_high": float(np.quantile(means, 1 - alpha)), "n": int(len(arr)), "n_clusters": int(k),
            "method": method}
