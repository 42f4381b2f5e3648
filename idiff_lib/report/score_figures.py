"""Analyses and figures of rationale scores for notebook 05: distributions, best and worst
rationales beside their references, aspect-level verdict confusion, metric correlations and the
stage ladder; for notebook 03, rationale lines coloured by the benchmark's ground truth.

Everything here reads the outputs of `idiff_lib.scoring.score` (`ScoreResult.per_sample` and
`ScoreResult.aspects`); nothing is recomputed, except the line marks of `plot_lines_vs_meta`
(`idiff_lib.scoring.meta_verdicts`, the same reading as the ``meta_verdicts`` scorer).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from idiff_lib.core import layout
from idiff_lib.core.errors import DataError
from idiff_lib.data.views import VIEW_NAMES, load_views
from idiff_lib.scoring import controls, rewards, scorers
from idiff_lib.scoring.meta_verdicts import mark_lines, pair_counts
from idiff_lib.scoring.predictions import as_predictions, read_predictions
from idiff_lib.data.pairs import Pair

# Per-sample metrics on a 0-1 scale (the judge's 1-5 mean divided by 5), in display order.
SAMPLE_METRICS: dict[str, str] = {
    "bleu4": "BLEU-4 (0-1)",
    "rouge_l": "ROUGE-L F",
    "aspect_f1": "aspect F1",
    "verdict_agreement": "verdict agreement",
    "semantic": "semantic similarity",
    "judge_mean": "judge mean / 5",
}
_LADDER_RE = re.compile(r"^(?P<system>.+)_(?P<stage>[^_]+)$")
VERDICT_ORDER = ("A", "B", "similar", "mixed", None)


def scaled_metrics(per_sample: pd.DataFrame) -> pd.DataFrame:
    """The per-sample metrics present in `per_sample`, each on a 0-1 scale."""
    out = pd.DataFrame(index=per_sample.index)
    for col in SAMPLE_METRICS:
        if col in per_sample:
            values = pd.to_numeric(per_sample[col], errors="coerce")
            out[col] = values / 5.0 if col == "judge_mean" else values
    return out


def sample_score(per_sample: pd.DataFrame) -> pd.Series:
    """One number per sample to rank rationales: the mean of its 0-1 metrics (missing ones skipped)."""
    return scaled_metrics(per_sample).drop(columns=["verdict_agreement"], errors="ignore").mean(axis=1, skipna=True)


# ---------------------------------------------------------------------------------------------
# Inputs of the notebook
# ---------------------------------------------------------------------------------------------
def ladder_files(ladder_dir: str | Path) -> list[tuple[str, str, Path]]:
    """(system, stage, path) for every ``<system>_<stage>.jsonl`` in `ladder_dir`, sorted."""
    folder = Path(ladder_dir)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        m = _LADDER_RE.match(path.stem)
        if m:
            out.append((m.group("system"), m.group("stage"), path))
    return out


def score_ladder(ladder_inputs: Sequence[tuple[str, str, Path]], references: Sequence[Pair], **options: Any) -> pd.DataFrame:
    """Notebook 03's stage ladder scored by `scorers.score`: one `summary_row` per (system, stage, file).

    Each file is scored against the references it has predictions for; `options` go to `scorers.score`.
    """
    rows = []
    for system, stage, path in ladder_inputs:
        preds = read_predictions(path)
        refs, _ = restrict_references(references, preds)
        result = scorers.score(preds, refs, pred_source=path, **options)
        rows.append({"system": system, "stage": stage, **summary_row(result.metrics),
                     "accuracy_source": controls.accuracy_source(stage)})
    return pd.DataFrame(rows)


def floor_row(references: Sequence[Pair], **options: Any) -> dict[str, Any]:
    """The shuffled-reference floor as one ladder row: every reference scored against another
    pair's reference (`controls.shuffled_reference_predictions`, derangement seeded by ``seed``),
    with the ladder's `options` (those of `scorers.score`)."""
    refs = list(references)
    preds = controls.shuffled_reference_predictions(refs, int(options.get("seed", 0)))
    result = scorers.score(preds, refs, pred_source=controls.FLOOR_SYSTEM, **options)
    return {"system": controls.FLOOR_SYSTEM, "stage": controls.FLOOR_STAGE, **summary_row(result.metrics),
            "accuracy_source": "another pair's answer (chance)"}


def self_check_predictions(refs: Sequence[Pair], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Two prediction sets built from the references themselves, for a pipeline self-check.

    ``references`` is each pair's own rationale (every metric at its ceiling); ``shuffled`` gives
    each pair another pair's rationale and answer (a chance-level floor). Neither is a result.
    """
    refs = list(refs)
    if len(refs) < 2:
        raise DataError(None, "a self-check needs at least two reference pairs", "use a larger reference file")
    return {
        "self-check: references": [{"id": r.id, "completion": r.completion} for r in refs],
        "self-check: shuffled": controls.shuffled_reference_predictions(refs, seed),  # the floor's derangement
    }


def restrict_references(refs: Sequence[Pair], pred_rows: Iterable[Any]) -> tuple[list[Pair], list[str]]:
    """The reference pairs that have a prediction, and the ids left out (to report, not hide).

    Args:
        pred_rows: anything `scorers.score` accepts as predictions.

    Predictions whose id has no reference are still an error, raised by `scorers.score`.
    """
    wanted = {p.id for p in as_predictions(pred_rows)}
    kept = [r for r in refs if r.id in wanted]
    return kept, [r.id for r in refs if r.id not in wanted]


SELF_CHECK = "SELF-CHECK (references vs themselves and a shuffled copy): validates the scorer, not a result"


def prediction_sets(step03: str | Path, references: Sequence[Pair], predictions: str | Path | None = None,
                    self_check: bool = True, limit: int = 0, seed: int = 0
                    ) -> tuple[dict[str, list[Any]], list[Pair], str]:
    """Notebook 05's systems to score: ``({name: prediction rows}, references, source)``.

    Step 03's ``predictions.jsonl`` when it exists, else the `predictions` file, else (with
    `self_check`) the references scored against themselves and a shuffled copy, on the first `limit`
    references (0: all); the returned `source` says which.

    Raises:
        DataError: no predictions anywhere and `self_check` is off.
    """
    final_path = Path(step03) / layout.RATIONALES_FILE
    references = list(references)
    if final_path.exists():
        return {"final": read_predictions(final_path)}, references, f"step 03: {final_path}"
    if predictions:
        return {"final": read_predictions(predictions)}, references, f"predictions parameter: {predictions}"
    if self_check:
        references = references[:limit] if limit else references
        return self_check_predictions(references, seed=seed), references, SELF_CHECK
    raise DataError(final_path, "no predictions to score",
                    "run step 03 first, or pass -p predictions PRED.jsonl, or -p self_check True")


def score_systems(systems: dict[str, Sequence[Any]], references: Sequence[Pair], judge: Any = None,
                  judge_dir: str | Path | None = None, **options: Any
                  ) -> tuple[dict[str, scorers.ScoreResult], dict[str, list[str]]]:
    """`scorers.score` of every system on the references it covers, and the reference ids each left out.

    With a `judge`, each system's verdicts are cached in ``<judge_dir>/judge_cache_<name>.jsonl``.
    """
    results, left_out = {}, {}
    for name, rows in systems.items():
        refs, left_out[name] = restrict_references(references, rows)
        cache = Path(judge_dir) / f"judge_cache_{name}.jsonl" if judge is not None and judge_dir else None
        results[name] = scorers.score(rows, refs, judge=judge, judge_cache=cache, pred_source=name, **options)
    return results, left_out


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def best_and_worst(result: scorers.ScoreResult, preds: Sequence[Any], refs: Sequence[Pair], n: int = 3) -> pd.DataFrame:
    """The `n` best and `n` worst rationales by `sample_score`, beside their references."""
    per = result.per_sample.copy()
    per["sample_score"] = sample_score(per)
    texts = {p.id: rewards.thinking_text(p.completion) for p in as_predictions(preds)}
    ref_text = {r.id: r.thinking for r in refs}
    ranked = per.sort_values("sample_score", ascending=False)
    rows = []
    for label, part in (("best", ranked.head(n)), ("worst", ranked.tail(n).iloc[::-1])):
        for _, row in part.iterrows():
            rows.append({"rank": label, "id": row["id"], "score": round(float(row["sample_score"]), 3),
                         "answer (pred / ref)": f"{row.get('pred_answer')} / {row['ref_answer']}",
                         "candidate": texts.get(row["id"], ""), "reference": ref_text.get(row["id"], "")})
    return pd.DataFrame(rows)


def matched_aspects(aspects: pd.DataFrame) -> pd.DataFrame:
    """Aspect rows discussed by both the candidate and the reference."""
    return aspects[(aspects["ref_verdict"] != "absent") & (aspects["pred_verdict"] != "absent")].copy()


def verdict_confusion(aspects: pd.DataFrame) -> pd.DataFrame:
    """Counts of (reference verdict, candidate verdict) on matched aspects ("none" = no verdict)."""
    m = matched_aspects(aspects).fillna("none")
    labels = ["A", "B", "similar", "mixed", "none"]
    table = pd.crosstab(m["ref_verdict"], m["pred_verdict"]) if len(m) else pd.DataFrame()
    return table.reindex(index=labels, columns=labels, fill_value=0)


def attribute_agreement(aspects: pd.DataFrame) -> pd.DataFrame:
    """Per attribute: matched aspects with a reference verdict, and the share the candidate gets right."""
    m = matched_aspects(aspects)
    m = m[m["ref_verdict"].notna()]
    if m.empty:
        return pd.DataFrame(columns=["attribute", "matched", "agreement"])
    m = m.assign(agree=(m["ref_verdict"] == m["pred_verdict"]).astype(float))
    out = m.groupby("attribute").agg(matched=("agree", "size"), agreement=("agree", "mean")).reset_index()
    return out.sort_values(["agreement", "matched"], ascending=[True, False]).reset_index(drop=True)


def metric_correlations(per_sample: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Rank correlations between the per-sample metrics that vary (constant columns dropped)."""
    scaled = scaled_metrics(per_sample)
    if "accuracy_reward" in per_sample:
        scaled["accuracy"] = per_sample["accuracy_reward"].astype(float)
    varying = [c for c in scaled.columns if scaled[c].nunique(dropna=True) > 1]
    return scaled[varying].corr(method=method)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
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


# GRPO log keys (trl 1.16's ``log_history``; `idiff_lib.thinking.grpo` names the rewards) and their panel titles.
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


def summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one `ScoreResult.metrics`, flat (for a ladder table)."""
    acc = metrics.get("accuracy", {}).get("overall", {})
    row = {
        "n": metrics.get("n"),
        "accuracy": acc.get("value"), "accuracy_ci_low": acc.get("ci_low"), "accuracy_ci_high": acc.get("ci_high"),
        "person_accuracy": metrics.get("accuracy", {}).get("person", {}).get("value"),
        "scene_accuracy": metrics.get("accuracy", {}).get("scene", {}).get("value"),
        "format_failures": metrics.get("format", {}).get("failures"),
        "bleu4": metrics.get("bleu4", {}).get("corpus"),
        "rouge_l": metrics.get("rouge_l", {}).get("f"),
        "rouge_l_ci_low": metrics.get("rouge_l", {}).get("ci_low"),
        "rouge_l_ci_high": metrics.get("rouge_l", {}).get("ci_high"),
        "wrong_side_rate": (metrics.get("wrong_side") or {}).get("rate"),
        "aspect_f1": metrics.get("aspects", {}).get("micro", {}).get("f1"),
        "verdict_agreement": metrics.get("aspects", {}).get("verdict_agreement"),
        "consistency": metrics.get("consistency", {}).get("rate"),
        "verdict_accuracy": (metrics.get("meta_verdicts") or {}).get("verdict_accuracy"),
        "meta_coverage": (metrics.get("meta_verdicts") or {}).get("meta_coverage"),
        "hallucination": metrics.get("hallucination", {}).get("aspect_rate"),
        "semantic": (metrics.get("semantic") or {}).get("mean"),
        "judge": (metrics.get("judge") or {}).get("mean"),
        "combined": (metrics.get("combined") or {}).get("value"),
        "combined_weights": (metrics.get("combined") or {}).get("label"),  # ours, not the challenge's
    }
    return row
