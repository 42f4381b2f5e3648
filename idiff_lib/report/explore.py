"""Data exploration for notebook 01: counts, rationale headings, decomposed views."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import matplotlib.pyplot as plt
import pandas as pd

from idiff_lib.data.content import agreement, detect_content
from idiff_lib.data.datasets import SPLITS
from idiff_lib.core.errors import DataError
from idiff_lib.report.style import CATEGORY_COLOURS, SIDE_COLOURS
from idiff_lib.data.pairs import Pair, read_pairs
from idiff_lib.data.views import VIEW_NAMES, load_views

_HEADING_RE = re.compile(r"^\s*([^:]{2,80}?)\s*:")


def load_dataset(spec: str | Path) -> dict[str, list[Pair]]:
    """Pairs by split name from a JSONL file, a split folder (``train_sft.jsonl``...) or a RAIM download."""
    spec = Path(spec)
    if spec.is_file():
        return {spec.stem: read_pairs(spec)}
    if not spec.is_dir():
        raise DataError(spec, "no such file or folder", "give a .jsonl file or a folder of them")
    splits = {s: read_pairs(spec / f"{s}_sft.jsonl") for s in SPLITS if (spec / f"{s}_sft.jsonl").exists()}
    if splits:
        return splits
    files = sorted(spec.glob("*sft*.jsonl")) or sorted(spec.glob("*.jsonl"))
    if not files:
        raise DataError(spec, "the folder holds no .jsonl file", "point at a RAIM-PIQA folder or a split folder")
    return {f.stem: read_pairs(f) for f in files}


def overview(splits: dict[str, list[Pair]]) -> pd.DataFrame:
    """One row per pair: split, id, category, answer, rationale lines and words, images found."""
    rows = []
    for split, pairs in splits.items():
        for p in pairs:
            lines = [ln for ln in p.thinking.splitlines() if ln.strip()]
            rows.append({
                "split": split, "id": p.id, "category": p.category or "unknown", "answer": p.answer or "none",
                "lines": len(lines), "words": len(p.thinking.split()),
                "images_found": all(img is not None for img in p.images),
            })
    return pd.DataFrame(rows)


def heading(line: str) -> str | None:
    """The ``Region Attribute`` heading of a rationale line (the text before the first colon)."""
    m = _HEADING_RE.match(line)
    return m.group(1).strip() if m else None


def counts_series(counts: Mapping[str, int]) -> pd.Series:
    """Heading counts as a Series, most frequent first (ties keep their first-seen order)."""
    return pd.Series(dict(Counter(counts).most_common()), name="count", dtype=int)


def heading_counts(pairs: Iterable[Pair]) -> pd.Series:
    """How often each ``Region Attribute`` heading occurs, most frequent first."""
    return counts_series(Counter(h for p in pairs for ln in p.thinking.splitlines() if (h := heading(ln))))


def plot_counts(df: pd.DataFrame) -> plt.Figure:
    """Pairs per category and split, A/B balance per category, and rationale length."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    table = df.groupby(["split", "category"]).size().unstack(fill_value=0)
    table.plot.bar(ax=axes[0], color=[CATEGORY_COLOURS.get(c, "grey") for c in table.columns], rot=0)
    axes[0].set(title="Pairs per split", xlabel="split", ylabel="pairs (count)")
    balance = df[df.answer.isin(["A", "B"])].groupby(["category", "answer"]).size().unstack(fill_value=0)
    if not balance.empty:
        balance.plot.bar(ax=axes[1], color=[SIDE_COLOURS[c] for c in balance.columns], rot=0)
    axes[1].set(title="Better image (A/B)", xlabel="category", ylabel="pairs (count)")
    labelled = df[df.answer.isin(["A", "B"])]
    axes[2].hist(labelled["words"], bins=20, color=CATEGORY_COLOURS["overall"])
    axes[2].set(title="Rationale length", xlabel="words per rationale", ylabel="pairs (count)")
    fig.tight_layout()
    return fig


def plot_headings(counts: pd.Series, top: int = 15, title: str = "Most frequent rationale headings") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 0.32 * min(top, len(counts)) + 1.2))
    head = counts.head(top)[::-1]
    ax.barh(head.index, head.values, color=CATEGORY_COLOURS["person"])
    ax.set(title=title, xlabel="lines (count)", ylabel="Region Attribute")
    fig.tight_layout()
    return fig


def plot_views(pairs: Iterable[Pair], n: int = 4, size: int = 160) -> plt.Figure:
    """A grid: one row per pair, the four decomposed views (global/local x A/B)."""
    shown = []
    for p in pairs:
        if len(shown) >= n:
            break
        if all(img is not None for img in p.images):
            shown.append((p, load_views(p)))
    if not shown:
        fig, ax = plt.subplots(figsize=(6, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no pair with images to show", ha="center", va="center")
        return fig
    fig, axes = plt.subplots(len(shown), 4, figsize=(4 * size / 60, len(shown) * size / 60), squeeze=False)
    titles = {"global_left": "global A (left)", "global_right": "global B (right)",
              "local_left": "detail A (left)", "local_right": "detail B (right)"}
    for r, (p, views) in enumerate(shown):
        for c, name in enumerate(VIEW_NAMES):
            ax = axes[r][c]
            ax.imshow(getattr(views, name))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[name])
            if c == 0:
                ax.set_ylabel(f"{p.id}\nbetter: {p.answer or '?'}")
    fig.tight_layout()
    return fig


def face_detector_check(pairs: Iterable[Pair], limit: int = 40) -> dict:
    """Agreement of the Haar face detector with the ``p_``/``s_`` labels on pairs with images."""
    labels, detected = [], []
    for p in pairs:
        if len(labels) >= limit:
            break
        if p.category in ("person", "scene") and all(img is not None for img in p.images):
            views = load_views(p)
            labels.append(p.category)
            detected.append(detect_content(p, views.global_left, use_prefix=False).category)
    return agreement(labels, detected)
