"""Data exploration for notebook 01: counts, rationale headings, decomposed views."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Rectangle

from idiff_lib.core.errors import DataError
from idiff_lib.data.content import agreement, detect_content
from idiff_lib.data.datasets import SPLITS
from idiff_lib.data.pairs import Pair, read_pairs
from idiff_lib.data.views import VIEW_NAMES, load_views
from idiff_lib.report.style import CATEGORY_COLOURS, SIDE_COLOURS

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
    """A grid: one row per pair (person and scene in turn), the four decomposed views (global/local x A/B)."""
    shown = [(p, load_views(p)) for p in balanced_pairs(pairs, n)]  # person and scene pairs in turn
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
                ax.set_ylabel(f"{p.id} ({p.category or '?'})\nbetter: {p.answer or '?'}")
    fig.tight_layout()
    return fig


def defect_titles(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """Each side's known defects from a benchmark metadata row, one per line: ``{"A": ..., "B": ...}``.

    A defect on both sides is named on each, marked "(both)"; a row without defects, or no row (a RAIM
    folder), says that the defects are not known.
    """
    if not meta:
        return {"A": "A (left): defects not known (no metadata)", "B": "B (right): defects not known (no metadata)"}
    def named(d: Mapping[str, Any]) -> str:
        return f"{d['kind'].replace('_', ' ')} {d['severity']:.2f} on {d['region']}"

    shared = [f"{named(d)} (both)" for d in meta.get("shared", [])]
    return {side: f"{side} ({where}): " + ("\n".join([named(d) for d in meta.get(key, [])] + shared) or "no defect")
            for side, key, where in (("A", "defects_a", "left"), ("B", "defects_b", "right"))}


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, colour: str, label: str, below: bool = False) -> None:
    ax.add_patch(Rectangle((x, y), w, h, fill=False, lw=1.5, ls="--", color=colour))
    ax.text(x + 2, y + h - 2 if below else y + 2, label, color=colour, fontsize=7, va="bottom" if below else "top")


def plot_defects_1to1(pair: Pair, meta: Mapping[str, Any] | None, dpi: float | None = None) -> plt.Figure:
    """The pair's four views at their own pixel size, each side titled with its known defects.

    One view pixel is one figure pixel at `dpi` (default: the figure dpi of the style, what a notebook
    shows), so a defect of a few pixels is as visible as it is to the model. From the benchmark's
    metadata: the face box where a defect sits on the face, and on the global views the box the detail
    view was cut from. Without metadata the views are shown with no box.
    """
    views = load_views(pair)
    dpi = float(dpi or plt.rcParams["figure.dpi"])
    titles = defect_titles(meta)
    pad, line = 10, 13  # pixels
    title = line * (1 + max(t.count("\n") for t in titles.values())) + 6  # room above the global views
    rows = [(views.global_left, views.global_right), (views.local_left, views.local_right)]
    col_w = max(max(a.shape[1], b.shape[1]) for a, b in rows)
    width = 2 * col_w + 3 * pad
    heads = (title, line + 6)  # the defects above the global views, one line above the details
    height = sum(max(a.shape[0], b.shape[0]) + head for (a, b), head in zip(rows, heads)) + 2 * pad
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    meta = meta or {}
    on_face = {side: any(d["region"] == "face" for d in [*meta.get(key, []), *meta.get("shared", [])])
               for side, key in (("A", "defects_a"), ("B", "defects_b"))}
    top = height
    for r, (left, right) in enumerate(rows):
        top -= heads[r] + max(left.shape[0], right.shape[0])
        for c, (side, img) in enumerate((("A", left), ("B", right))):
            h, w = img.shape[:2]
            x0 = pad + c * (col_w + pad)
            ax = fig.add_axes((x0 / width, top / height, w / width, h / height))
            ax.imshow(img, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(titles[side] if r == 0 else f"detail {side} (1:1)", fontsize=7, loc="left")
            _mark(ax, meta, "global" if r == 0 else "local", img.shape, on_face[side])
    return fig


def _mark(ax: plt.Axes, meta: Mapping[str, Any] | None, view: str, shape: tuple[int, ...], face: bool) -> None:
    """The metadata's boxes on one view: the detail crop (global views) and, when a defect sits there, the face."""
    if not meta or "work_size" not in meta:
        return
    work_w, work_h = meta["work_size"]
    dx, dy, ds = meta.get("detail_box") or (0, 0, max(work_w, work_h))
    if view == "global":
        sx, sy, ox, oy = shape[1] / work_w, shape[0] / work_h, 0, 0
        if meta.get("detail_box"):
            _box(ax, dx * sx, dy * sy, ds * sx, ds * sy, "white", "detail view")
    else:
        sx, sy, ox, oy = shape[1] / ds, shape[0] / ds, dx, dy
    if face:
        for fx, fy, fw, fh in meta.get("faces", []):
            _box(ax, (fx - ox) * sx, (fy - oy) * sy, fw * sx, fh * sy, "yellow", "face", below=True)


def balanced_pairs(pairs: Iterable[Pair], n: int) -> list[Pair]:
    """Up to `n` pairs with both images, taken in turn from each category (person, scene, then any other).

    So a small sample shows scene pairs as well as person pairs, whatever the data's order.
    """
    by_cat: dict[str, list[Pair]] = {}
    for p in pairs:
        if all(img is not None for img in p.images):
            by_cat.setdefault(p.category or "unknown", []).append(p)
    order = [c for c in ("person", "scene") if c in by_cat] + [c for c in by_cat if c not in ("person", "scene")]
    chosen: list[Pair] = []
    for k in range(max((len(v) for v in by_cat.values()), default=0)):
        for cat in order:
            if len(chosen) < n and k < len(by_cat[cat]):
                chosen.append(by_cat[cat][k])
    return chosen


def face_detector_check(pairs: Iterable[Pair], limit: int = 40) -> dict:
    """Agreement of the Haar face detector with the ``p_``/``s_`` labels, on person AND scene pairs.

    At most `limit` labelled pairs with images, taken in turn from each category (`balanced_pairs`).
    Returns `agreement`'s dict (n, accuracy, confusion) plus ``by_category``: per label, its n and
    the share the detector got right, so a detector that calls everything "person" shows it.
    """
    sample = balanced_pairs([p for p in pairs if p.category in ("person", "scene")], limit)
    labels = [p.category for p in sample]
    detected = [detect_content(p, load_views(p).global_left, use_prefix=False).category for p in sample]
    result = agreement(labels, detected)
    result["by_category"] = {}
    for cat in ("person", "scene"):
        hits = [d == cat for label, d in zip(labels, detected) if label == cat]
        result["by_category"][cat] = {"n": len(hits), "accuracy": sum(hits) / len(hits) if hits else None}
    return result


def _rationales_with(pairs: Iterable[Pair]) -> tuple[Counter, int]:
    """Per heading, the number of rationales holding it at least once; and the number of rationales."""
    counts: Counter = Counter()
    total = 0
    for p in pairs:
        if p.thinking:
            total += 1
            counts.update({h for ln in p.thinking.splitlines() if (h := heading(ln))})
    return counts, total


def heading_fractions(pairs: Iterable[Pair], raim: str | Path | None = None,
                      raim_counts: Mapping[str, int] | None = None, raim_total: int = 0) -> pd.DataFrame:
    """Each ``Region Attribute`` heading as a fraction of rationales: this data's beside the public RAIM's.

    Args:
        pairs: the rationales explored (e.g. the demo's, all splits).
        raim: a folder holding the public ``train_sft_1536.jsonl`` (e.g. `idiff_lib.core.paths.raim_dir()`),
            read in place; None (or a folder without it) leaves the RAIM columns out.
        raim_counts, raim_total: instead of `raim`, committed counts (heading -> lines holding it,
            `raim_vocabulary().headings`) and the number of rationales they came from; a heading
            written twice in one rationale counts twice there, so these fractions are upper bounds.

    Returns:
        One row per heading, the most frequent here first: ``heading``, ``rationales`` (holding it),
        ``of`` (rationales in all), ``fraction``, and with RAIM ``raim_rationales``, ``raim_of``,
        ``raim_fraction``.
    """
    counts, total = _rationales_with(pairs)
    if not total:
        raise DataError(None, "no rationale to count headings in", "pass labelled pairs (with a <thinking> part)")
    table = pd.DataFrame({"heading": list(counts), "rationales": list(counts.values())})
    table["of"] = total
    public = Path(raim) / "train_sft_1536.jsonl" if raim else None
    if public is not None and public.exists():
        raim_counts, raim_total = _rationales_with(read_pairs(public))
    if raim_counts and raim_total > 0:
        extra = pd.DataFrame({"heading": list(raim_counts), "raim_rationales": list(raim_counts.values())})
        table = table.merge(extra, on="heading", how="outer").fillna({"rationales": 0, "of": total,
                                                                      "raim_rationales": 0})
        table["raim_of"] = raim_total
        table["raim_fraction"] = table["raim_rationales"] / raim_total
        table = table.astype({"raim_rationales": int, "raim_of": int})
    table = table.astype({"rationales": int, "of": int})
    table["fraction"] = table["rationales"] / total
    cols = [c for c in ("heading", "rationales", "of", "fraction", "raim_rationales", "raim_of", "raim_fraction")
            if c in table]
    return table[cols].sort_values(["rationales", "heading"], ascending=[False, True]).reset_index(drop=True)


def heading_fraction_sentence(table: pd.DataFrame, raim_upper_bound: bool = False) -> str:
    """`heading_fractions` in one sentence: the most frequent heading's share of this data's rationales
    and of the public ones, and how many distinct headings each set uses.

    Args:
        raim_upper_bound: the public counts are the committed per-line counts (upper bounds, see
            `heading_fractions`), so the public share is said as "at most".
    """
    top = table.iloc[0]
    text = (f"The most frequent heading here, {top['heading']}, is in {float(top['fraction']):.0%} of "
            f"{int(top['of'])} rationales")
    if "raim_fraction" in table:
        bound = "at most " if raim_upper_bound else ""
        text += (f" and in {bound}{float(top['raim_fraction']):.0%} of the {int(top['raim_of'])} public RAIM-PIQA ones; "
                 f"this data uses {int((table['rationales'] > 0).sum())} distinct headings, the public rationales "
                 f"{int((table['raim_rationales'] > 0).sum())}")
    return text + "."


def plot_heading_fractions(table: pd.DataFrame, top: int = 15) -> plt.Figure:
    """Paired horizontal bars: the `top` headings of `heading_fractions`, this data vs public RAIM."""
    head = table.head(top)
    y = range(len(head))
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(head) + 1.4))
    has_raim = "raim_fraction" in head
    height = 0.4 if has_raim else 0.8
    ax.barh([v - height / 2 * has_raim for v in y], head["fraction"], height, label="this data",
            color=CATEGORY_COLOURS["person"])
    if has_raim:
        ax.barh([v + height / 2 for v in y], head["raim_fraction"], height, label="public RAIM-PIQA",
                color=CATEGORY_COLOURS["scene"])
    ax.set_yticks(list(y), head["heading"])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="fraction of rationales holding the heading", title="Rationale headings")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
