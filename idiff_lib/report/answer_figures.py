"""Figures of the answer model and its ensemble (notebooks 02 and 04), in the workbench style."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from idiff_lib.answer import analysis
from idiff_lib.report.style import CATEGORY_COLOURS
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views


def plot_curves(curves: pd.DataFrame) -> plt.Figure:
    """Loss and accuracy per epoch for every member (train solid, val dashed)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, kind in zip(axes, ("loss", "acc")):
        sub = curves[curves.metric.str.endswith(kind)].copy()
        if sub.empty:
            ax.set_visible(False)
            continue
        sub["split"] = sub.metric.str.split("_").str[0]
        sns.lineplot(data=sub, x="epoch", y="value", hue="member", style="split", marker="o", ax=ax)
        ax.set_ylabel("BCE loss" if kind == "loss" else "accuracy")
        ax.set_title("Loss" if kind == "loss" else "Accuracy")
        ax.legend(fontsize=7, ncols=2)
    fig.tight_layout()
    return fig


def plot_answer_ladder_accuracy(ladder: pd.DataFrame) -> plt.Figure:
    """The Answer-model ladder: test accuracy of its rows per person / scene / overall, with 95% cluster-bootstrap intervals over photos."""
    groups = ("person", "scene", "overall")
    labels = [f"{r.row}{'' if r.pretext else ' (no pretext)'}" if "pretext" in ladder else r.row for r in ladder.itertuples()]
    x = np.arange(len(ladder))
    width = 0.26
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(ladder)), 4))
    for k, g in enumerate(groups):
        acc = ladder[f"{g}_acc"].to_numpy(float)
        err = np.vstack([acc - ladder[f"{g}_lo"].to_numpy(float), ladder[f"{g}_hi"].to_numpy(float) - acc])
        ax.bar(x + (k - 1) * width, acc, width, yerr=err, capsize=3, label=g, color=CATEGORY_COLOURS[g])
    ax.axhline(0.5, color="grey", lw=1, ls=":")
    ax.set_xticks(x, labels, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title("Ablation ladder (95% cluster-bootstrap interval over photos)")
    ax.legend(ncols=3, loc="lower right")
    fig.tight_layout()
    return fig


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


def plot_reliability(curves: dict[str, tuple[list[dict[str, float]], float]]) -> plt.Figure:
    """Reliability diagram (accuracy vs confidence per bin) with each curve's ECE in the legend."""
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0.5, 1], [0.5, 1], color="grey", ls=":", lw=1, label="calibrated")
    for name, (rows, ece) in curves.items():
        if rows:
            ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("confidence max(p, 1 - p)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_title("Reliability")
    ax.legend(fontsize=7)
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


def plot_ensemblers(scores: dict[str, float], singles: dict[str, float]) -> plt.Figure:
    """Test accuracy of each ensembler beside each member."""
    frame = pd.DataFrame([{"name": k, "kind": "ensemble", "acc": v} for k, v in scores.items()]
                         + [{"name": k, "kind": "member", "acc": v} for k, v in singles.items()])
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(frame)), 3.6))
    sns.barplot(data=frame, x="name", y="acc", hue="kind", dodge=False, ax=ax)
    ax.axhline(0.5, color="grey", lw=1, ls=":")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("")
    ax.set_ylabel("test accuracy")
    ax.set_title("Equal vs weighted vs stacked (fitted on val)")
    ax.tick_params(axis="x", rotation=20)
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
    """Permutation importances (mean accuracy drop, with the spread over repeats)."""
    frame = frame.sort_values("importance", ascending=True).tail(20)
    fig, ax = plt.subplots(figsize=(5.5, 0.3 * len(frame) + 1.2))
    ax.barh(frame["feature"], frame["importance"], xerr=frame["std"], color=CATEGORY_COLOURS["overall"])
    ax.set_xlabel("accuracy drop when permuted")
    ax.set_title("Feature member: permutation importance")
    fig.tight_layout()
    return fig



def reliability_curves(probs: pd.DataFrame, final: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability rows and ECE for the final ensemble and each member."""
    curves = {"ensemble": analysis.reliability(final, labels, bins)}
    for name in probs.columns:
        curves[name] = analysis.reliability(probs[name].to_numpy(), labels, bins)
    return curves
