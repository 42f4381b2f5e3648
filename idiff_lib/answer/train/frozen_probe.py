"""Frozen ImageNet features + a linear head: the teaching row of the ablation ladder.

No fine-tuning: an ImageNet backbone (weights through `idiff_lib.answer.model.weights`) is run once
over each of a pair's four views (global/local x A/B); the mean and std over space of a few
feature stages describe each view, and the A - B differences of the global and the local view
feed a logistic regression fitted on the train split in both orders (A|B and B|A, labels
exchanged). With no intercept the head is antisymmetric, so swapping A and B gives exactly
``1 - p``. Every fine-tuned member has to clear this floor (issue 16). The backbone and the head
are the cache-first Answer Model's own (`feature_cache.FrozenBackbone`, `heads.fit_head`); this
module is the probe as one call, for the fine-tuning ladder's teaching row and `benchmarks/`.

Reference: iDiff (NTIRE 2026 RAIM Track 1) fine-tunes ImageNet backbones; the linear probe on
frozen features is the standard floor for such transfer (Kornblith et al., "Do Better ImageNet
Models Transfer Better?", CVPR 2019).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from idiff_lib.answer.model.backbone_names import resolve_backbone
from idiff_lib.answer.model.feature_cache import FrozenBackbone
from idiff_lib.answer.model.heads import fit_head
from idiff_lib.answer.experiments.analysis import bootstrap_ci
from idiff_lib.answer.train.splits import load_splits
from idiff_lib.core.errors import ParameterError
from idiff_lib.core.progress import progress_bar
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # inverse L2 strengths tried, chosen by log-loss on val


def pair_differences(pairs: Sequence[Pair], features: FrozenBackbone, desc: str = "frozen features") -> np.ndarray:
    """``[f(global A) - f(global B), f(local A) - f(local B)]`` per pair (rows follow `pairs`)."""
    rows = []
    for pair in progress_bar(pairs, desc=desc, leave=False, disable=len(pairs) < 20):
        v = load_views(pair)
        rows.append(np.concatenate([features(v.global_left) - features(v.global_right),
                                    features(v.local_left) - features(v.local_right)]))
    return np.stack(rows).astype(np.float64)  # float64: a swap's probability is 1 - p to rounding


def probe_probabilities(splits: dict, backbone: str = "efficientnet_lite2", stages: Sequence[int] = (1, 2, 3, 4),
                        short_side: int = 0, seed: int = 0) -> tuple[dict[str, np.ndarray], float]:
    """p_left of every pair of every split from the frozen-features + linear-head probe.

    Args:
        splits: ``{"train", "val", "test"}`` -> `idiff_lib.answer.train.splits.Split` (train and val labelled).
        backbone / stages / short_side: see `idiff_lib.answer.model.feature_cache.FrozenBackbone`.

    Returns:
        split name -> p_left (rows follow the split's pairs), and the chosen inverse strength C.

    Raises:
        ParameterError: a train or val split without labelled pairs of both answers.
        OfflineError / DataError: from the weights resolver.
    """
    for name in ("train", "val"):
        labels = splits[name].labels
        if len(set(labels[~np.isnan(labels)])) < 2:
            raise ParameterError(f"frozen probe: the {name} split needs labelled pairs with both answers. "
                                 "fix: give a data folder whose train and val pairs have <answer> A and B")
    features = FrozenBackbone(backbone, stages=stages, short_side=short_side)
    x = {name: pair_differences(s.pairs, features, f"{name} frozen features") for name, s in splits.items()}
    head = fit_head(x["train"], splits["train"].labels, x["val"], splits["val"].labels, C_GRID, seed)
    return {name: head.predict(v) for name, v in x.items()}, float(head.C)


def frozen_probe(data_dir: str | Path, backbone: str = "efficientnet_lite2", stages: Sequence[int] = (1, 2, 3, 4),
                 short_side: int = 0, max_pairs: int = 0, seed: int = 0) -> dict:
    """The frozen-features + linear-head row on a data folder's test split (`benchmarks/`).

    Args:
        data_dir: a data folder with ``{train,val,test}_sft.jsonl`` (labelled).
        backbone: an ImageNet backbone (e.g. ``efficientnet_lite0`` .. ``efficientnet_lite2``).
        stages / short_side: see `idiff_lib.answer.model.feature_cache.FrozenBackbone`.
        max_pairs: cap on pairs per split (0: all).

    Returns:
        test accuracy with its 95% bootstrap interval, val accuracy, the swap flip rate (share of
        test pairs whose answer flips when A and B are exchanged), the chosen C and the seconds spent.
    """
    t0 = time.perf_counter()
    splits = load_splits(data_dir, max_pairs=max_pairs)
    if len(set(splits["test"].labels[~np.isnan(splits["test"].labels)])) < 2:
        raise ParameterError(f"frozen_probe: the test split of {data_dir} needs labelled pairs with both answers")
    p, c = probe_probabilities(splits, backbone, stages, short_side, seed)
    test = splits["test"]
    correct = (p["test"] > 0.5) == (test.labels > 0.5)
    lo, hi = bootstrap_ci(correct, seed=seed, clusters=test.photos)
    return {
        "backbone": resolve_backbone(backbone), "stages": list(stages), "short_side": short_side,
        "n_train": len(splits["train"].pairs), "n_test": len(test.pairs), "C": c,
        "val_accuracy": float(np.mean((p["val"] > 0.5) == (splits["val"].labels > 0.5))),
        "test_accuracy": float(correct.mean()), "test_ci95": [lo, hi], "ci": "cluster bootstrap over photos",
        "seconds": round(time.perf_counter() - t0, 1),
    }
