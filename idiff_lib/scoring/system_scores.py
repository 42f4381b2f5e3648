"""Scoring whole systems: a notebook ladder's rows, prediction sets, the floors, and the per-aspect tables.

The numbers behind notebook 05's and notebook 03's score tables; `idiff_lib.report.score_figures`
draws them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from idiff_lib.core import layout
from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import Pair
from idiff_lib.scoring import controls, rewards, scorers
from idiff_lib.scoring.predictions import as_predictions, read_predictions

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
