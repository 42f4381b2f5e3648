"""A data folder's optional per-pair metadata: ``meta/<split>.jsonl`` (the demo benchmark writes it).

Each row names the pair's source ``photo``, its defects (kind, severity, region), the penalties of A
and B and whether the pair is a ``tradeoff`` (A better in one region, worse in another). A RAIM
folder has no ``meta/``; every function here then falls back to what the pairs alone give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from idiff_lib.core import storage


def split_meta(data_dir: str | Path, split: str) -> dict[str, dict]:
    """Pair id -> metadata row of ``<data_dir>/meta/<split>.jsonl``; ``{}`` when the folder has none."""
    path = Path(data_dir) / "meta" / f"{split}.jsonl"
    if not path.exists():
        return {}
    return {row["id"]: row for row in storage.read_jsonl_rows(path) if "id" in row}


def photo_clusters(data_dir: str | Path, split: str, ids: Iterable[str]) -> dict[str, str]:
    """Pair id -> the photo it was cut from, the cluster of a cluster bootstrap.

    A pair without a ``photo`` in the metadata (a RAIM folder, an id not in ``meta/``) is its own
    cluster, so the bootstrap falls back to resampling pairs for it.
    """
    meta = split_meta(data_dir, split)
    return {i: str(meta.get(i, {}).get("photo") or f"pair:{i}") for i in ids}


def split_comparisons(data_dir: str | Path, split: str) -> dict[str, list[dict]]:
    """Pair id -> the ground-truth ``comparisons`` of ``<data_dir>/meta/<split>.jsonl``.

    Each comparison is ``{"region", "attribute", "verdict" ("A", "B" or "similar"), "strength",
    "cause"}``: which image the pair's degradations favour on that aspect. ``{}`` when the folder
    has no ``meta/`` (a RAIM folder); pairs without comparisons are left out.
    """
    return {i: list(row["comparisons"]) for i, row in split_meta(data_dir, split).items() if row.get("comparisons")}
