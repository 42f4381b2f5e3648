"""The train / val / test splits notebook 02 trains and scores on, with labels and routed categories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from idiff_lib.answer.model.inputs import label_of
from idiff_lib.answer.experiments.ensemble import pair_category
from idiff_lib.data.datasets import SPLITS, load_split
from idiff_lib.data.meta import photo_clusters
from idiff_lib.data.pairs import Pair


@dataclass
class Split:
    """One data split: the pairs, their labels (1.0 = A better), routed categories and source photos.

    Attributes:
        photos: each pair's photo (`idiff_lib.data.meta.photo_clusters`), the clusters of the
            accuracy intervals; None resamples pairs.
    """

    name: str
    pairs: list[Pair]
    labels: np.ndarray
    categories: list[str]
    photos: list[str] | None = None


def load_splits(data_dir: str | Path, max_pairs: int = 0) -> dict[str, Split]:
    """train / val / test of a data folder (``{split}_sft.jsonl``), each capped at `max_pairs` (0 = all)."""
    out = {}
    for name in SPLITS:
        pairs = list(load_split(data_dir, name, require_images=True))
        if max_pairs and len(pairs) > max_pairs:  # spread over the file, so both categories appear
            pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int)]
        cats = [pair_category(p) for p in pairs]
        photos = photo_clusters(data_dir, name, [p.id for p in pairs])
        out[name] = Split(name, pairs, np.array([label_of(p) for p in pairs], dtype=float), cats,
                          [photos[p.id] for p in pairs])
    return out
