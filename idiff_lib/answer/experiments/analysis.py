"""Notebook 04's statistics of a trained Answer run: accuracy with intervals, calibration, agreement.

`load_step02` reads what notebook 02 left in its step folder; the other functions take plain
arrays (p_left per pair, labels 1.0 = A better), so notebook 02's ladder uses them as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from idiff_lib.answer.experiments.ensemble import Ensemble, FeatureMemberAdapter
from idiff_lib.answer.experiments.ensemblers import ENSEMBLERS, make_ensembler, prob_logit
from idiff_lib.answer.experiments.run_store import load_answer_run
from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.datasets import load_split
from idiff_lib.data.meta import photo_clusters, split_meta
from idiff_lib.data.pairs import Pair
from idiff_lib.data.swap import write_swapped_pair
from idiff_lib.scoring.stats import cluster_bootstrap_mean

# Step 02's per-split outputs beside ensemble.json (`split` is "val" or "test").
MEMBER_PROBS_FILE = "member_probs_{split}.csv"  # p_left of every member, one row per pair id
PREDICTIONS_FILE = "preds_{split}.jsonl"  # the final ensemble's rows (`ensemble.predict_rows` format)


def accuracy(p: np.ndarray, labels: np.ndarray) -> float:
    """Share of pairs where p_left > 0.5 agrees with label > 0.5 (NaN for no pairs)."""
    p, labels = np.asarray(p), np.asarray(labels)
    return float(np.mean((p > 0.5) == (labels > 0.5))) if len(p) else float("nan")


def bootstrap_ci(correct: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 clusters: Sequence[str] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean of 0/1 outcomes, resampling `clusters` (photos) when
    given, else pairs (`scoring.stats.cluster_bootstrap_mean`)."""
    ci = cluster_bootstrap_mean(np.asarray(correct, dtype=float), clusters, n_boot=n_boot, seed=seed, level=level)
    return (float("nan"), float("nan")) if ci["n"] == 0 else (ci["ci_low"], ci["ci_high"])


def accuracy_table(p: np.ndarray, labels: np.ndarray, categories: Sequence[str], seed: int = 0,
                   clusters: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Accuracy with a 95% bootstrap interval for person, scene and overall (over photos when
    `clusters` names each pair's photo, else over pairs)."""
    p, labels, categories = np.asarray(p), np.asarray(labels), np.asarray(categories)
    photos = None if clusters is None else np.asarray(list(clusters), dtype=object)
    out = {}
    for group in ("person", "scene", "overall"):
        mask = np.ones(len(p), bool) if group == "overall" else categories == group
        correct = (p[mask] > 0.5) == (labels[mask] > 0.5)
        lo, hi = bootstrap_ci(correct, seed=seed, clusters=None if photos is None else photos[mask])
        out[group] = {"acc": float(correct.mean()) if mask.any() else float("nan"), "lo": lo, "hi": hi, "n": int(mask.sum())}
    return out


def reliability(p: np.ndarray, labels: np.ndarray, bins: int = 10) -> tuple[list[dict[str, float]], float]:
    """Reliability bins on the confidence max(p, 1 - p) and the expected calibration error (ECE)."""
    p, labels = np.asarray(p, float), np.asarray(labels, float)
    conf = np.maximum(p, 1 - p)
    correct = ((p > 0.5) == (labels > 0.5)).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1)
    rows, ece = [], 0.0
    for i in range(bins):
        mask = (conf >= edges[i]) & ((conf < edges[i + 1]) if i < bins - 1 else (conf <= edges[i + 1]))
        if not mask.any():
            continue
        acc, mean_conf = float(correct[mask].mean()), float(conf[mask].mean())
        ece += mask.mean() * abs(acc - mean_conf)
        rows.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "confidence": mean_conf, "accuracy": acc, "n": int(mask.sum())})
    return rows, float(ece)


def agreement_matrix(probs: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(Pearson correlation of the members' logits, share of pairs where their answers agree).

    A member whose logit is the same for every pair has no correlation with any other: 0 is drawn for it.
    """
    probs = np.asarray(probs, float)
    z = prob_logit(probs)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant member's 0/0, set to 0 below
        corr = np.corrcoef(z.T) if probs.shape[1] > 1 else np.ones((1, 1))
    answers = probs > 0.5
    agree = (answers[:, :, None] == answers[:, None, :]).mean(axis=0)
    return np.nan_to_num(corr, nan=0.0), agree


def ensembler_predictions(val_probs: np.ndarray, val_labels: np.ndarray, test_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Test p_left of every ensembler, each fitted on val only."""
    return {name: make_ensembler(name).fit(val_probs, val_labels).predict(test_probs) for name in ENSEMBLERS}


def compare_ensemblers(val_probs: np.ndarray, val_labels: np.ndarray, test_probs: np.ndarray,
                       test_labels: np.ndarray) -> dict[str, float]:
    """Test accuracy of every ensembler, each fitted on val only."""
    return {name: accuracy(p, test_labels) for name, p in ensembler_predictions(val_probs, val_labels, test_probs).items()}


def all_wrong(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of the pairs every member gets wrong."""
    wrong = (np.asarray(probs) > 0.5) != (np.asarray(labels)[:, None] > 0.5)
    return np.flatnonzero(wrong.all(axis=1))


@dataclass
class Step02Outputs:
    """What notebook 04 reads from step 02: member and final probabilities, labels and pairs."""

    names: list[str]
    val_probs: pd.DataFrame
    test_probs: pd.DataFrame
    val_labels: np.ndarray
    test_labels: np.ndarray
    final_val: np.ndarray
    final_test: np.ndarray
    test_categories: list[str]
    test_pairs: list[Pair]
    ensemble: Ensemble


def _labels(rows: list[dict]) -> np.ndarray:
    return np.array([float(r["label"] == "A") for r in rows])


def load_step02(step_dir: str | Path, data_dir: str | Path, device: str | None = None) -> Step02Outputs:
    """Read notebook 02's outputs (member_probs_*.csv, preds_*.jsonl, ensemble.json) and the test pairs.

    Raises:
        DataError: naming the missing file and the step to run.
    """
    step_dir = Path(step_dir)
    need = [MEMBER_PROBS_FILE.format(split="val"), MEMBER_PROBS_FILE.format(split="test"),
            PREDICTIONS_FILE.format(split="val"), PREDICTIONS_FILE.format(split="test"), layout.ENSEMBLE_FILE]
    for name in need:
        if not (step_dir / name).exists():
            raise DataError(step_dir / name, "step 02 output not found",
                            "run notebook 02 first in the same run folder (idiff run --only 02)")
    val_probs = pd.read_csv(step_dir / MEMBER_PROBS_FILE.format(split="val"), index_col=0)
    test_probs = pd.read_csv(step_dir / MEMBER_PROBS_FILE.format(split="test"), index_col=0)
    ens = load_answer_run(step_dir, device=device)
    val_rows = storage.read_jsonl_rows(step_dir / PREDICTIONS_FILE.format(split="val"))
    test_file = step_dir / PREDICTIONS_FILE.format(split="test")
    test_rows = storage.read_jsonl_rows(test_file)
    by_id = {p.id: p for p in load_split(data_dir, "test")}
    missing = [r["id"] for r in test_rows if r["id"] not in by_id]
    if missing:
        raise DataError(test_file, f"{len(missing)} test ids (e.g. {missing[0]}) are not in {data_dir}",
                        "pass the data_dir that step 02 was run with")
    names = ens.names
    return Step02Outputs(
        names=names, val_probs=val_probs.loc[[r["id"] for r in val_rows], names],
        test_probs=test_probs.loc[[r["id"] for r in test_rows], names],
        val_labels=_labels(val_rows), test_labels=_labels(test_rows),
        final_val=np.array([r["p_left"] for r in val_rows]), final_test=np.array([r["p_left"] for r in test_rows]),
        test_categories=[r["category"] for r in test_rows], test_pairs=[by_id[r["id"]] for r in test_rows], ensemble=ens)


def feature_importances(run: Step02Outputs, repeats: int = 5, seed: int = 0) -> pd.DataFrame | None:
    """Permutation importances of the feature member on the test pairs, or None without one.

    `FeatureMember.permutation_importances`: the accuracy drop when a column is shuffled.
    """
    member = next((m for m in run.ensemble.members if isinstance(m, FeatureMemberAdapter)), None)
    if member is None:
        return None
    return member.member.permutation_importances(member.table_fn(run.test_pairs), run.test_labels,
                                                 n_repeats=repeats, seed=seed)


# --------------------------------------------------------------------------- accuracy per defect
DEFECT_GROUPINGS = ("kind", "region")  # the fields of a meta row's defects that accuracy is split by
NO_META = "(no meta)"  # the group of pairs that have no row in meta/<split>.jsonl


def accuracy_by_defect(p: np.ndarray, labels: np.ndarray, ids: Sequence[str], meta: dict[str, dict],
                       seed: int = 0) -> pd.DataFrame:
    """Accuracy with n and a 95% interval per defect kind and per defect region (`data.meta` rows).

    A pair counts in every kind and every region of the defects that differ between its sides
    (``defects_a`` and ``defects_b``; ``shared`` defects hit both sides alike), so the groups
    overlap. Intervals are cluster-bootstrap intervals over the pairs' photos (a group cut from one
    photo gets a zero-width interval: read ``photos`` beside it). Pairs with no meta row are not
    dropped: they form the row ``by = "no meta"`` (always present, n may be 0).

    Returns:
        columns ``by`` ("kind" | "region" | "no meta"), ``group``, ``n``, ``photos`` (distinct
        source photos), ``acc``, ``lo``, ``hi``.

    Raises:
        ParameterError: when `p`, `labels` and `ids` differ in length.
    """
    p, labels = np.asarray(p, float), np.asarray(labels, float)
    if not len(p) == len(labels) == len(ids):
        raise ParameterError(f"accuracy_by_defect: {len(p)} probabilities, {len(labels)} labels and {len(ids)} ids; "
                             "fix: pass one p_left, one label and one id per test pair")
    correct = (p > 0.5) == (labels > 0.5)
    photos = np.array([str(meta.get(i, {}).get("photo") or f"pair:{i}") for i in ids], dtype=object)
    groups: dict[tuple[str, str], list[int]] = {}
    missing = []
    for k, pid in enumerate(ids):
        if pid not in meta:
            missing.append(k)
            continue
        defects = [*meta[pid].get("defects_a", []), *meta[pid].get("defects_b", [])]
        for by in DEFECT_GROUPINGS:
            for g in sorted({str(d[by]) for d in defects if by in d}):
                groups.setdefault((by, g), []).append(k)
    rows = []
    for (by, g), idx in [*sorted(groups.items()), (("no meta", NO_META), missing)]:
        lo, hi = bootstrap_ci(correct[idx], seed=seed, clusters=photos[idx]) if idx else (float("nan"), float("nan"))
        rows.append({"by": by, "group": g, "n": len(idx), "photos": len(set(photos[idx])),
                     "acc": float(correct[idx].mean()) if idx else float("nan"), "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def run_accuracy_by_defect(run: Step02Outputs, data_dir: str | Path, seed: int = 0) -> pd.DataFrame:
    """`accuracy_by_defect` of the final ensemble's test answers, with ``<data_dir>/meta/test.jsonl``."""
    return accuracy_by_defect(run.final_test, run.test_labels, [p.id for p in run.test_pairs],
                              split_meta(data_dir, "test"), seed=seed)


def defect_sentence(table: pd.DataFrame, min_n: int = 5) -> str:
    """The best and worst defect kinds (with at least `min_n` pairs) and the count of pairs without meta."""
    kinds = table[(table["by"] == "kind") & (table["n"] >= min_n)].sort_values("acc")
    no_meta = int(table.loc[table["by"] == "no meta", "n"].sum())
    tail = f" {no_meta} test pairs have no meta row and are counted apart." if no_meta else ""
    if kinds.empty:
        return f"No defect kind has {min_n} or more test pairs, so none is compared.{tail}"
    lo, hi = kinds.iloc[0], kinds.iloc[-1]
    return (f"The ensemble is most accurate on {hi['group']} ({hi['acc']:.2f}, n={hi['n']}) and least on {lo['group']} "
            f"({lo['acc']:.2f}, n={lo['n']}); an interval that holds 0.5 is not shown to beat chance.{tail}")


# --------------------------------------------------------------------------- the worked pair
def ensembler_table(run: Step02Outputs, data_dir: str | Path, seed: int = 0) -> pd.DataFrame:
    """Test accuracy of every ensembler (fitted on val only) and every member, with 95% intervals.

    The intervals are `bootstrap_ci`'s, over the test pairs' photos (`data.meta.photo_clusters`), as in
    Table A. Columns ``kind`` ("ensemble" | "member"), ``name``, ``acc``, ``lo``, ``hi``, ``n``.
    """
    ids = [p.id for p in run.test_pairs]
    photo = photo_clusters(data_dir, "test", ids)
    photos = [photo[i] for i in ids]
    preds = {("ensemble", name): p for name, p in
             ensembler_predictions(run.val_probs.to_numpy(), run.val_labels, run.test_probs.to_numpy()).items()}
    preds.update({("member", name): run.test_probs[name].to_numpy() for name in run.names})
    rows = []
    for (kind, name), p in preds.items():
        correct = (np.asarray(p) > 0.5) == (run.test_labels > 0.5)
        lo, hi = bootstrap_ci(correct, seed=seed, clusters=photos)
        rows.append({"kind": kind, "name": name, "acc": accuracy(p, run.test_labels), "lo": lo, "hi": hi, "n": len(ids)})
    return pd.DataFrame(rows, columns=["kind", "name", "acc", "lo", "hi", "n"])


def worked_pair_point(run: Step02Outputs, pair_id: str) -> tuple[str, float, float] | None:
    """The worked pair on the test split of a step-02 run: (its id, the ensemble's p_left, its label);
    None when the pair is not among the run's test pairs (a limited split, other data)."""
    ids = [p.id for p in run.test_pairs]
    if pair_id not in ids:
        return None
    i = ids.index(pair_id)
    return pair_id, float(run.final_test[i]), float(run.test_labels[i])


def worked_pair_probabilities(ens: Ensemble, pair: Pair, work_dir: str | Path) -> pd.DataFrame:
    """Each member's and the ensemble's p_left for the worked pair and for its swapped copy.

    Returns:
        one row per member plus "ensemble": ``p_left``, ``p_left (swapped)``, ``1 - p (swapped)`` and
        ``|difference|`` (0 for a model that does not care which side an image is on).
    """
    swapped = write_swapped_pair(pair, work_dir)
    probs, _ = ens.member_probs([pair, swapped])
    final = ens.ensembler.predict(probs)
    names = [*ens.names, "ensemble"]
    p = [*probs[0], final[0]]
    q = [*probs[1], final[1]]
    return pd.DataFrame({"model": names, "p_left": p, "p_left (swapped)": q,
                         "1 - p (swapped)": [1 - v for v in q],
                         "|difference|": [abs(a - (1 - b)) for a, b in zip(p, q)]})


# --------------------------------------------------------------------------- sentences for the notebooks
def member_weights(ens: Ensemble) -> dict[str, float] | None:
    """The ensembler's weight per member (stacking coefficients or accuracy weights); None when it has none."""
    rule = ens.ensembler
    weights = getattr(rule, "coef", None)
    if weights is None:
        weights = getattr(rule, "weights", None)
    if weights is None:
        return None
    return dict(zip(ens.names, np.asarray(weights, dtype=float).tolist()))


def ensemble_weight_sentence(ens: Ensemble) -> str:
    """How much the ensembler leans on the feature member compared with the networks, in one sentence."""
    weights = member_weights(ens)
    if not weights:
        return f"The {ens.ensembler.name} ensemble weights every member equally."
    features = [m.name for m in ens.members if isinstance(m, FeatureMemberAdapter)]
    nets = [n for n in weights if n not in features]
    if not features or not nets:
        top = max(weights, key=lambda n: abs(weights[n]))
        return f"The {ens.ensembler.name} ensemble gives its largest weight to {top} ({weights[top]:.2f})."
    f = weights[features[0]]
    net_mean = float(np.mean([abs(weights[n]) for n in nets]))
    ratio = abs(f) / net_mean if net_mean > 0 else float("inf")
    return (f"The {ens.ensembler.name} ensemble weights the feature member {ratio:.1f}× the networks' mean "
            f"({f:.2f} against {net_mean:.2f}), so it is "
            f"{'mostly the feature member' if ratio >= 2 else 'a real mix of its members'}.")


def all_wrong_sentence(probs: np.ndarray, labels: np.ndarray) -> str:
    """The all-wrong count beside what independent members of the same accuracies would give."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, float)
    n = len(labels)
    wrong = (probs > 0.5) != (labels[:, None] > 0.5)
    expected = float(np.prod(wrong.mean(axis=0)) * n) if n else 0.0
    observed = int(wrong.all(axis=1).sum())
    verdict = "more than" if observed > 1.5 * expected + 1 else "about what"
    return (f"All {probs.shape[1]} members are wrong on {observed} of {n} test pairs; members that erred "
            f"independently at their own error rates would share {expected:.1f}, so this is {verdict} chance predicts.")


def calibration_sentence(p: np.ndarray, labels: np.ndarray, name: str) -> str:
    """A model's ECE beside how far its probabilities stray from 0.5 (a model that always says 0.5 has ECE ~ 0)."""
    p = np.asarray(p, float)
    _, ece = reliability(p, labels)
    spread = float(np.mean(np.abs(p - 0.5))) if len(p) else float("nan")
    why = " because its p stays near 0.5" if spread < 0.05 else ""
    return (f"{name}'s ECE is {ece:.3f}{why} (mean |p − 0.5| = {spread:.2f}, accuracy {accuracy(p, labels):.2f}).")
