"""Figures of the answer model and its ensemble (notebooks 02 and 04), in the workbench style."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from idiff_lib.answer.experiments import analysis
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views
from idiff_lib.features.table import cue_glossary
from idiff_lib.report.style import CATEGORY_COLOURS, SIDE_COLOURS

CHANCE_BCE = float(np.log(2))  # the binary cross-entropy of always answering p = 0.5


CURVE_COLUMNS = 4  # members per row of the training-curve grid (11 members in one row were 3,454 px wide)


def plot_curves(curves: pd.DataFrame, columns: int = CURVE_COLUMNS) -> plt.Figure:
    """Training curves on a grid, `columns` members per row: per member, loss (top, chance ln 2 marked) and
    accuracy (below it) per epoch, train solid, val dashed."""
    members = list(dict.fromkeys(curves["member"])) or ["(no member)"]
    ncols = max(1, min(columns, len(members)))
    grid_rows = -(-len(members) // ncols)
    fig, axes = plt.subplots(2 * grid_rows, ncols, figsize=(2.8 * ncols + 0.6, 2.6 * 2 * grid_rows), squeeze=False,
                             sharey="row")
    for k, member in enumerate(members):
        sub = curves[curves["member"] == member]
        top, col = 2 * (k // ncols), k % ncols
        for row, kind in enumerate(("loss", "acc")):
            ax = axes[top + row, col]
            for split, style in (("train", "-"), ("val", "--")):
                part = sub[sub["metric"] == f"{split}_{kind}"]
                if len(part):
                    ax.plot(part["epoch"], part["value"], style, marker="o", markersize=3, label=split,
                            color=CATEGORY_COLOURS["overall"])
            chance = CHANCE_BCE if kind == "loss" else 0.5
            ax.axhline(chance, color="grey", lw=1, ls=":", label="chance (ln 2)" if kind == "loss" else "chance")
            if row == 0:
                ax.set_title(member, fontsize=9)
            ax.set_xlabel("epoch" if row == 1 else "")
            ax.set_ylabel(("BCE loss" if kind == "loss" else "accuracy") if col == 0 else "")
    for k in range(len(members), grid_rows * ncols):  # the last row's empty places
        fig.delaxes(axes[2 * (k // ncols), k % ncols])
        fig.delaxes(axes[2 * (k // ncols) + 1, k % ncols])
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle("Training curves per member (dotted: chance)")
    fig.tight_layout()
    return fig


def plot_regularisation(histories: dict[str, list[dict[str, Any]]]) -> plt.Figure:
    """Val log-loss against the head's inverse L2 strength C, one line per head (chance ln 2 dotted).

    The cache-first heads' counterpart of training curves: each point is a head fitted in seconds;
    the val split picks the lowest.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for member, hist in histories.items():
        for head in dict.fromkeys(h.get("head", "all") for h in hist):
            pts = [(h["C"], h["val_loss"]) for h in hist if h.get("head", "all") == head and "C" in h]
            if pts:
                c, loss = zip(*pts)
                ax.plot(c, loss, marker="o", markersize=3, lw=1.2,
                        label=member if head == "all" else f"{member} / {head}")
    ax.axhline(CHANCE_BCE, color="grey", lw=1, ls=":", label="chance (ln 2)")
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse L2 strength)")
    ax.set_ylabel("val log-loss")
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Each head's regularisation, chosen on val")
    fig.tight_layout()
    return fig


def draw_accuracy_bars(ax: plt.Axes, labels: Sequence[str], table: dict[str, tuple[Any, Any, Any]]) -> None:
    """Horizontal grouped bars: one row per label (top to bottom), one bar per group with its 95% interval.

    `table` maps a group (person / scene / overall) to arrays (accuracy, low, high) aligned with
    `labels`. Horizontal, so long rung names stay readable; chance (0.5) is dotted.
    """
    y = np.arange(len(labels))
    height = 0.8 / max(1, len(table))
    for k, (group, (acc, lo, hi)) in enumerate(table.items()):
        acc, lo, hi = (np.asarray(v, float) for v in (acc, lo, hi))
        err = np.nan_to_num(np.vstack([acc - lo, hi - acc]))
        ax.barh(y + (k - (len(table) - 1) / 2) * height, acc, height, xerr=err, capsize=2, label=group,
                color=CATEGORY_COLOURS.get(group))
    ax.set_yticks(y, labels)
    ax.invert_yaxis()  # the first rung on top
    ax.axvline(0.5, color="grey", lw=1, ls=":")
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("test accuracy (fraction of pairs; dotted: chance)")


def plot_confusion(p: np.ndarray, labels: np.ndarray, categories: Sequence[str]) -> plt.Figure:
    """Answer confusion matrices (true A/B vs predicted A/B) per category."""
    cats = [c for c in ("person", "scene") if c in set(categories)] + ["overall"]
    fig, axes = plt.subplots(1, len(cats), figsize=(3.4 * len(cats), 3.2))
    axes = np.atleast_1d(axes)
    categories = np.asarray(categories)
    for ax, cat in zip(axes, cats):
        mask = np.ones(len(p), bool) if cat == "overall" else categories == cat
        true = np.where(labels[mask] > 0.5, "A", "B")
        pred = np.where(p[mask] > 0.5, "A", "B")
        table = pd.crosstab(pd.Categorical(true, ["A", "B"]), pd.Categorical(pred, ["A", "B"]), dropna=False)
        sns.heatmap(table, annot=True, fmt="d", cbar=False, cmap="Blues", ax=ax)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{cat} (acc {np.mean(true == pred):.2f})")
    fig.tight_layout()
    return fig


def plot_agreement(corr: np.ndarray, agree: np.ndarray, names: Sequence[str]) -> plt.Figure:
    """Member agreement: correlation of logits and share of identical answers."""
    fig, axes = plt.subplots(1, 2, figsize=(4.2 * 2 + 1, 4))
    for ax, mat, title in zip(axes, (corr, agree), ("logit correlation", "answer agreement")):
        sns.heatmap(pd.DataFrame(mat, index=names, columns=names), annot=True, fmt=".2f", vmin=0, vmax=1,
                    cmap="viridis", ax=ax, square=True)
        ax.set_title(title)
    fig.tight_layout()
    return fig


def draw_reliability(ax: plt.Axes, curves: dict[str, tuple[list[dict[str, float]], float]], title: str = "Reliability") -> None:
    """One reliability diagram on `ax`: accuracy vs confidence per bin, the diagonal, each curve's ECE in the legend."""
    ax.plot([0.5, 1], [0.5, 1], color="grey", ls=":", lw=1, label="calibrated")
    for name, (rows, ece) in curves.items():
        if rows:
            ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("confidence max(p, 1 - p)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7)


def plot_reliability(curves: dict[str, tuple[list[dict[str, float]], float]],
                     mark: tuple[str, float, float] | None = None) -> plt.Figure:
    """Reliability diagram (accuracy vs confidence per bin) with each curve's ECE in the legend.

    `mark` is one pair drawn on it: (its id, the ensemble's p_left, its label 1 = A better). A single
    pair's accuracy is 1 or 0, so its star sits on the top or bottom edge at its confidence.
    """
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    draw_reliability(ax, curves)
    if mark is not None:
        pair_id, p_left, label = mark
        confidence, right = max(p_left, 1 - p_left), float((p_left > 0.5) == (label > 0.5))
        ax.plot([confidence], [right], marker="*", ms=14, color="black", ls="none", clip_on=False,
                label=f"worked pair {pair_id} ({'right' if right else 'wrong'}, p_A = {p_left:.2f})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_reliability_before_after(before: dict[str, np.ndarray], after: dict[str, np.ndarray], labels: np.ndarray,
                                  bins: int = 10, temperatures: dict[str, float] | None = None) -> plt.Figure:
    """Two reliability panels on the test pairs: as saved by step 02 (left), after val-fitted temperature scaling (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.4), sharey=True)
    temperatures = temperatures or {}
    draw_reliability(axes[0], {n: analysis.reliability(p, labels, bins) for n, p in before.items()}, "Before (as trained)")
    draw_reliability(axes[1], {f"{n}, T={temperatures[n]:.2f}" if n in temperatures else n: analysis.reliability(p, labels, bins)
                               for n, p in after.items()}, "After temperature scaling (T fitted on val)")
    fig.tight_layout()
    return fig


def plot_grad_cams(cams: Sequence[Any]) -> plt.Figure:
    """One row per pair: global A, global B, local A, local B with the member's Grad-CAM map overlaid.

    `cams` are `idiff_lib.answer.experiments.explain.PairCam`; each row's title gives the member's p_left, the
    ensemble's (when known), the true answer and the answer explained.
    """
    n = max(1, len(cams))
    fig, axes = plt.subplots(n, 4, figsize=(9.6, 2.6 * n + 0.4), squeeze=False)
    titles = ("global A", "global B", "local A", "local B")
    for r, cam in enumerate(cams):
        for c in range(4):
            ax = axes[r, c]
            ax.imshow(cam.views[c])
            ax.imshow(cam.cams[c], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c])
        ens = f", ensemble {cam.ensemble_p:.2f}" if cam.ensemble_p is not None else ""
        label = cam.label or "?"
        axes[r, 0].set_ylabel(f"{cam.pair_id}\n{cam.member} p_left {cam.p_left:.2f}{ens}\n"
                              f"label {label}, map of '{cam.target} is better'", fontsize=7)
    if not cams:
        for ax in axes[0]:
            ax.set_visible(False)
    fig.suptitle("Grad-CAM of the difference logit (warm: pushed the member to the answer named; scaled per view)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_defect_accuracy(table: pd.DataFrame) -> plt.Figure:
    """Accuracy per defect kind (left) and per defect region (right) with 95% intervals, n and photos in the labels, chance dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.32 * max(4, int((table["by"] != "no meta").sum())) + 1.6))
    for ax, by in zip(axes, ("kind", "region")):
        sub = table[table["by"] == by].sort_values("acc", ascending=False)
        if sub.empty:
            ax.set_visible(False)
            continue
        draw_accuracy_bars(ax, [f"{g} (n={k}, {ph} photo{'s' if ph != 1 else ''})"
                                for g, k, ph in zip(sub["group"], sub["n"], sub["photos"])],
                           {"overall": (sub["acc"], sub["lo"], sub["hi"])})
        ax.set_title(f"by defect {by}")
    missing = int(table.loc[table["by"] == "no meta", "n"].sum())
    fig.suptitle("Ensemble test accuracy per defect (a pair counts in each of its defects)"
                 + (f"; {missing} pairs without meta" if missing else ""), fontsize=9)
    fig.tight_layout()
    return fig


def plot_evidence_accuracy(table: pd.DataFrame) -> plt.Figure:
    """The evidence heads' test accuracy per defect kind (left) and per aspect (right), with 95%
    intervals, the always-majority floor of each head as a tick, and chance dotted."""
    groups = [("defect", "worse side per defect kind"), ("aspect", "better side per aspect")]
    n_rows = max(4, *(int((table["by"] == by).sum()) for by, _ in groups)) if len(table) else 4
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.3 * n_rows + 1.8))
    for ax, (by, title) in zip(axes, groups):
        sub = table[table["by"] == by].sort_values("acc", ascending=True)
        if sub.empty:
            ax.set_visible(False)
            continue
        y = np.arange(len(sub))
        ax.errorbar(sub["acc"], y, xerr=[sub["acc"] - sub["lo"], sub["hi"] - sub["acc"]], fmt="o", ms=4,
                    color=CATEGORY_COLOURS["overall"], ecolor="grey", capsize=2, label="head (95% interval)")
        ax.scatter(sub["floor"], y, marker="|", s=120, color="black", label="always-majority floor")
        ax.axvline(0.5, color="grey", lw=1, ls=":", label="chance")
        ax.set_yticks(y, [f"{g} (n={n})" for g, n in zip(sub["group"], sub["n"])], fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_xlabel("test accuracy")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("The Answer Model's evidence heads (the Thinking Model's evidence) on test", fontsize=9)
    fig.tight_layout()
    return fig


def plot_accuracy_by_confidence(p: np.ndarray, labels: np.ndarray, quantiles: int = 4) -> tuple[plt.Figure, pd.DataFrame]:
    """Accuracy of p_left per confidence quantile (the most confident quarter first)."""
    conf = np.maximum(p, 1 - p)
    correct = (p > 0.5) == (labels > 0.5)
    q = min(quantiles, max(1, len(p)))
    bins = pd.qcut(pd.Series(conf).rank(method="first"), q, labels=False)
    table = pd.DataFrame({"bin": bins, "conf": conf, "correct": correct}).groupby("bin").agg(
        confidence=("conf", "mean"), accuracy=("correct", "mean"), n=("correct", "size")).reset_index()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.bar(table["bin"].astype(str), table["accuracy"], color=CATEGORY_COLOURS["overall"])
    for i, r in table.iterrows():
        ax.text(i, r.accuracy + 0.02, f"conf {r.confidence:.2f}\nn={r.n}", ha="center", fontsize=7)
    ax.set_xlabel("confidence quantile (0 = least confident)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.15)
    ax.set_title("Accuracy by confidence")
    fig.tight_layout()
    return fig, table


def plot_ensemblers(table: pd.DataFrame) -> plt.Figure:
    """Test accuracy of each ensembler beside each member: horizontal bars from 0, chance at 0.5.

    `table` is `analysis.ensembler_table`'s (``kind``, ``name``, ``acc``, ``lo``, ``hi``, ``n``): each
    bar has its 95% interval, so a difference inside the whiskers reads as what it is: not shown on
    this many pairs.
    """
    rows = list(table.itertuples(index=False))
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.42 * len(rows)))
    colours = {"ensemble": "#4c72b0", "member": "#dd8452"}
    y = np.arange(len(rows))[::-1]
    for row, pos in zip(rows, y):
        ax.barh(pos, row.acc, color=colours[row.kind], height=0.7, label=row.kind)
        if np.isfinite(row.lo) and np.isfinite(row.hi):
            ax.errorbar(row.acc, pos, xerr=[[row.acc - row.lo], [row.hi - row.acc]], color="black", capsize=3, lw=1)
    ax.axvline(0.5, color="grey", lw=1, ls=":", label="chance (0.5)")
    ax.set_yticks(y, [row.name for row in rows])
    ax.set_xlim(0, 1.05)
    n = int(table["n"].max()) if len(table) else 0
    ax.set_xlabel(f"test accuracy (95% interval over photos, {n} pairs)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # off the bars
    fig.tight_layout()
    return fig


def plot_pairs(pairs: Sequence[Pair], notes: Sequence[str], size: int = 150) -> plt.Figure:
    """Each pair's four views (global A, global B, detail A, detail B) with a note under the row."""
    n = max(1, len(pairs))
    fig, axes = plt.subplots(n, 4, figsize=(4 * size / 60, n * size / 60), squeeze=False)
    titles = ("global A", "global B", "detail A", "detail B")
    for r, (pair, note) in enumerate(zip(pairs, notes)):
        views = load_views(pair)
        for c, img in enumerate((views.global_left, views.global_right, views.local_left, views.local_right)):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c])
        axes[r, 0].set_ylabel(f"{pair.id}\n{note}", fontsize=7)
    if not pairs:
        for ax in axes[0]:
            ax.set_visible(False)
        fig.suptitle("no pair is missed by every member")
    fig.tight_layout()
    return fig


def plot_importances(frame: pd.DataFrame) -> plt.Figure:
    """Permutation importances (mean accuracy drop, with the spread over repeats), a glossary of the cues below.

    The glossary (`idiff_lib.features.table.cue_glossary`) says in one line what each cue shown measures.
    """
    frame = frame.sort_values("importance", ascending=True).tail(20)
    glossary = cue_glossary(frame["feature"])
    labels = [f"{cue} ({view})" if view else cue for cue, view in zip(glossary["cue"], glossary["view"])]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(frame) + 1.2))
    y = np.arange(len(frame))
    ax.barh(y, frame["importance"], xerr=frame["std"], color=CATEGORY_COLOURS["overall"])
    ax.set_yticks(y, labels)
    ax.set_xlabel("accuracy drop when permuted")
    ax.set_title("Feature member: permutation importance")
    meanings = dict(zip(glossary["cue"][::-1], glossary["meaning"][::-1]))  # the most important first
    lines = [f"{cue}: {meaning}" for cue, meaning in meanings.items() if meaning]
    if lines:
        fig.text(0.0, 0.0, "Glossary (A − B; > 0 leans to A)\n" + "\n".join(lines), ha="left", va="top", fontsize=7)
    fig.tight_layout()
    return fig


def reliability_curves(probs: pd.DataFrame, final: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability rows and ECE for the final ensemble and each member."""
    curves = {"ensemble": analysis.reliability(final, labels, bins)}
    for name in probs.columns:
        curves[name] = analysis.reliability(probs[name].to_numpy(), labels, bins)
    return curves


def plot_walkthrough(walk: Any, dims: int = 64) -> plt.Figure:
    """One pair through a member: its four crops, the first `dims` feature dimensions of A, B and A - B
    per stream, and the logits (global and local stream, their sum, the swapped pair's).

    Args:
        walk: an `idiff_lib.answer.experiments.walkthrough.Walkthrough`.
        dims: how many leading feature dimensions to draw.
    """
    fig = plt.figure(figsize=(11, 6.2))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.05])
    labels = ("global A", "global B", "local A", "local B")
    for k, label in enumerate(labels):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(walk.crops[k])
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    n = min(dims, walk.features.shape[1])
    colours = dict(zip(("A", "B", "A - B"), (*SIDE_COLOURS.values(), "black")))
    for s, stream in enumerate(("global", "local")):
        ax = fig.add_subplot(grid[1, s])
        f_a, f_b = walk.features[2 * s, :n], walk.features[2 * s + 1, :n]
        for name, values, style in (("A", f_a, "-"), ("B", f_b, "-"), ("A - B", f_a - f_b, ":")):
            ax.plot(np.arange(n), values, style, lw=1, color=colours[name], label=f"f_{name}" if name != "A - B" else "f_A - f_B")
        ax.set_title(f"{stream} features (first {n} of {walk.features.shape[1]})", fontsize=9)
        ax.set_xlabel("feature dimension")
        if s == 0:
            ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 2:])
    names = ["global stream", "local stream", "logit (sum)", "swapped pair"]
    values = [walk.streams["global"].logit, walk.streams["local"].logit, walk.logit, walk.swapped_logit]
    ax.barh(names[::-1], values[::-1], color=CATEGORY_COLOURS["overall"])
    ax.axvline(0, color="grey", lw=1)
    span = max(1e-6, max(abs(v) for v in values)) * 1.6
    ax.set_xlim(-span, span)
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:+.4f} ", va="center", ha="left" if v >= 0 else "right", fontsize=8)
    ax.set_title(f"logits: p(A better) = sigmoid({walk.logit:+.4f}) = {walk.p:.3f}", fontsize=9)
    fig.suptitle(f"Pair {walk.pair_id} through one member")
    fig.tight_layout()
    return fig
