"""Figures of rationale scores for notebook 05: distributions, aspect-level verdict confusion,
metric correlations; for notebook 03, rationale lines coloured by the benchmark's ground truth, the
training losses and the GRPO rewards.

The numbers come from `idiff_lib.scoring` (`ScoreResult.per_sample` and `ScoreResult.aspects`, and
the tables of `idiff_lib.scoring.system_scores`); nothing is scored here, except the line marks of
`plot_lines_vs_meta` (`idiff_lib.scoring.meta_verdicts`, the same reading as the ``meta_verdicts`` scorer).
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import VIEW_NAMES, load_views
from idiff_lib.scoring import rewards
from idiff_lib.scoring.meta_verdicts import mark_lines, pair_counts
from idiff_lib.scoring.system_scores import (SAMPLE_METRICS, attribute_agreement, metric_correlations, scaled_metrics,
                                             verdict_confusion)


def plot_distributions(per_sample: pd.DataFrame, title: str = "") -> plt.Figure:
    """Histograms of each per-sample metric, person and scene pairs stacked."""
    scaled = scaled_metrics(per_sample).drop(columns=["verdict_agreement"], errors="ignore")
    cols = list(scaled.columns)
    fig, axes = plt.subplots(1, len(cols), figsize=(3.1 * len(cols), 2.9), squeeze=False)
    frame = scaled.assign(category=per_sample.get("category", pd.Series(["all"] * len(per_sample))).fillna("unknown"))
    for ax, col in zip(axes[0], cols):
        sns.histplot(data=frame, x=col, hue="category", multiple="stack", bins=np.linspace(0, 1, 21), ax=ax,
                     legend=ax is axes[0][0])
        ax.set(xlabel=SAMPLE_METRICS[col], ylabel="pairs (count)" if ax is axes[0][0] else "", xlim=(0, 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_aspect_confusion(aspects: pd.DataFrame, title: str = "") -> plt.Figure:
    """Verdict confusion on matched aspects, and verdict agreement per attribute."""
    conf = verdict_confusion(aspects)
    per_attr = attribute_agreement(aspects)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1.3]})
    sns.heatmap(conf, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axes[0])
    axes[0].set(xlabel="candidate verdict", ylabel="reference verdict", title="Verdicts on matched aspects")
    axes[0].tick_params(axis="y", rotation=0)
    if len(per_attr):
        sns.barplot(data=per_attr, y="attribute", x="agreement", ax=axes[1], color=sns.color_palette()[0])
        for i, (_, row) in enumerate(per_attr.iterrows()):
            axes[1].text(min(row["agreement"], 0.97), i, f" n={int(row['matched'])}", va="center", fontsize=8)
    axes[1].set(xlim=(0, 1), xlabel="verdict agreement", ylabel="", title="Which attributes get the verdict wrong")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_correlations(per_sample: pd.DataFrame, title: str = "") -> plt.Figure:
    """Spearman correlations between the per-sample metrics."""
    corr = metric_correlations(per_sample)
    fig, ax = plt.subplots(figsize=(1.1 * max(3, len(corr)) + 1.5, 0.9 * max(3, len(corr)) + 1))
    labels = [SAMPLE_METRICS.get(c, c) for c in corr.columns]
    sns.heatmap(corr, annot=True, fmt=".2f", vmin=-1, vmax=1, cmap="vlag", ax=ax, xticklabels=labels, yticklabels=labels)
    ax.set(title=title or "Do the metrics agree? (Spearman, per pair)")
    fig.tight_layout()
    return fig


# Line colours and marks of `plot_lines_vs_meta`: right, wrong, not judged (the mark keeps it readable
# without colour).
_MARK_STYLE: dict[bool | None, tuple[str, str]] = {True: ("#1b7837", "\u2713"), False: ("#b2182b", "\u2717"),
                                                   None: ("#7f7f7f", "\u00b7")}
_VIEW_TITLES = ("global A", "global B", "local A", "local B")
LINES_VS_META_NOTE = ("\u2713 green: the line's verdict matches the benchmark's ground truth (the degradations the "
                      "pair was built from); \u2717 red: it contradicts it ([truth: ...] gives the right one); "
                      "\u00b7 grey: an aspect the ground truth does not hold (the overall line, an invented "
                      "region) or a line without a heading.")


def plot_lines_vs_meta(pairs: Sequence[Pair], generated: Mapping[str, str], meta: Mapping[str, Sequence[Mapping]],
                       label: str = "generated", wrap: int = 64, max_lines: int = 18) -> plt.Figure:
    """Each pair's four views beside its generated rationale and its reference, every line coloured by
    the ground truth (`idiff_lib.scoring.meta_verdicts.mark_lines`): green right, red wrong, grey not judged.

    Args:
        pairs: labelled pairs with images, one row each (`meta_verdicts.pick_pairs` chooses them).
        generated: pair id -> the generated completion; a missing id is drawn as "(not generated)".
        meta: pair id -> its ground-truth comparisons (`idiff_lib.data.meta.split_comparisons`).
        label: the generated column's title (the system and stage).
        wrap / max_lines: characters per drawn line, and drawn lines per rationale.

    Raises:
        DataError: no pairs.
    """
    if not pairs:
        raise DataError(None, "no pairs to draw the rationale lines of",
                        "pass pairs that have ground truth (meta_verdicts.pick_pairs on meta/test.jsonl)")
    fig = plt.figure(figsize=(19, 3.4 * len(pairs)))
    grid = fig.add_gridspec(len(pairs), 6, width_ratios=[1, 1, 1, 1, 2.8, 2.8], wspace=0.06, hspace=0.3)
    for row, pair in enumerate(pairs):
        views = load_views(pair)
        for col, (name, title) in enumerate(zip(VIEW_NAMES, _VIEW_TITLES)):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(getattr(views, name))
            ax.set(xticks=[], yticks=[])
            ax.set_title(title, fontsize=9)
            ax.grid(False)
        fig.axes[-4].set_ylabel(f"{pair.id}\n{pair.category or ''}, answer {pair.answer}", fontsize=8)
        comparisons = meta.get(pair.id)
        completion = generated.get(pair.id)
        texts = ((label, rewards.raw_thinking(completion) if completion is not None else None),
                 ("reference", pair.thinking))
        for col, (title, text) in enumerate(texts, start=4):
            _draw_marked_lines(fig.add_subplot(grid[row, col]), text, comparisons, title, wrap, max_lines)
    fig.text(0.5, 0.0, textwrap.fill(LINES_VS_META_NOTE, 190), ha="center", va="top", fontsize=8)
    return fig


def _draw_marked_lines(ax: plt.Axes, text: str | None, comparisons: Sequence[Mapping] | None, title: str,
                       wrap: int, max_lines: int) -> None:
    """One rationale as coloured lines in `ax`, its counts in the title."""
    ax.axis("off")
    if text is None:
        ax.set_title(f"{title}: (not generated)", loc="left", fontsize=9)
        return
    counts = pair_counts(text, comparisons)
    ax.set_title(f"{title}\n{counts['right']}/{counts['judged']} judged lines right, "
                 f"{counts['covered']}/{counts['comparisons']} truth aspects covered", loc="left", fontsize=8)
    drawn: list[tuple[str, str]] = []
    for mark in mark_lines(text, comparisons):
        colour, symbol = _MARK_STYLE[mark.right]
        line = mark.line + (f"  [truth: {mark.meta_verdict}]" if mark.right is False else "")
        for k, piece in enumerate(textwrap.wrap(line, wrap) or [""]):
            drawn.append((f"{symbol if k == 0 else ' '} {piece}", colour))
    if len(drawn) > max_lines:
        drawn = drawn[:max_lines - 1] + [("\u2026", _MARK_STYLE[None][0])]
    for k, (piece, colour) in enumerate(drawn or [("(empty rationale)", _MARK_STYLE[None][0])]):
        ax.text(0.0, 1.0 - k / max_lines, piece, color=colour, fontsize=7, ha="left", va="top", transform=ax.transAxes)


def plot_training_loss(train_results: dict[str, dict[str, Any]], title: str = "", columns: int = 3) -> plt.Figure:
    """The Thinking Model's training loss, one panel per run on a shared loss axis (a grid of `columns`
    panels per row), with the val loss where the run measured it and a marker at the step whose weights
    it kept (``best_step``).

    In the progressive ladder each stage starts from the previous stage's weights
    (`thinking.run.train_ladder`), so a panel's first loss is where the previous panel ended.
    """
    stages = list(train_results) or ["(none)"]
    ncols = min(columns, len(stages))
    nrows = -(-len(stages) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols + 0.8, 2.8 * nrows + 0.4), sharey=True, squeeze=False)
    for ax in axes.ravel()[len(stages):]:  # the last row's empty places
        fig.delaxes(ax)
    for ax, stage in zip(axes.ravel(), stages):
        result = train_results.get(stage, {})
        history = result.get("loss_history") or []
        if history:
            steps, losses = zip(*history)
            ax.plot(steps, losses, color=sns.color_palette()[0], label="train")
        val = result.get("val_history") or []
        if val:
            steps, losses = zip(*val)
            ax.plot(steps, losses, "o-", color=sns.color_palette()[1], label="val")
            best = result.get("best_step")
            if best is not None:
                ax.axvline(best, color="0.5", ls="--", lw=1, label=f"kept: step {best}")
            ax.legend(fontsize=7)
        ax.set(title=stage, xlabel="optimiser step")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    for row in axes:
        row[0].set_ylabel("training loss\n(token cross-entropy)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# GRPO log keys (trl 1.16's ``log_history``; `idiff_lib.thinking.train.grpo` names the rewards) and their panel titles.
GRPO_CURVES = {"rewards/accuracy/mean": "accuracy reward", "rewards/format/mean": "format reward", "kl": "KL to the start"}


def plot_grpo_rewards(histories: dict[str, list[dict[str, Any]]], title: str = "") -> plt.Figure:
    """GRPO's reward curves: accuracy reward, format reward and KL per optimiser step, one line per run.

    Args:
        histories: run name -> TRL's ``trainer.state.log_history`` (entries without a curve's key,
            such as the final summary, are skipped).
    """
    fig, axes = plt.subplots(1, len(GRPO_CURVES), figsize=(10, 3.0), squeeze=False)
    for ax, (key, label) in zip(axes[0], GRPO_CURVES.items()):
        for i, (name, history) in enumerate(histories.items()):
            points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o", ms=3, color=sns.color_palette()[i % 10], label=name)
        ax.set(title=label, xlabel="GRPO step")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        if key != "kl":
            ax.set_ylim(-0.05, 1.05)
    if histories:
        axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


