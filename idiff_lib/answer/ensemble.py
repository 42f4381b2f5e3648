"""Person/scene specialists and ensembles of answer-model members.

Reference: iDiff (NTIRE 2026 RAIM challenge Track 1 winner) routes each pair to a person or a
scene specialist by its content and averages the backbones' probabilities with equal weights.
Beside that choice this module offers accuracy-weighted voting and logistic stacking
(scikit-learn), both fitted on the validation split only.

A member is anything that yields ``p_left`` (the probability that Image A is better) per pair:
a trained network with its specialists (`NetworkMember`) or the feature-based member of
`idiff_lib.features.cv` (`FeatureMemberAdapter`, used when that module is present). Every
ensembler keeps swap consistency: exchanging A and B in every member gives ``1 - p``.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from idiff_lib.core import storage
from idiff_lib.answer.model import MemberConfig, PairwiseModel, load_items, load_member, predict_items
from idiff_lib.data.content import detect_content
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views

ENSEMBLE_FILE = "ensemble.json"
STEP = "02_train_answer_model"


# --------------------------------------------------------------------------- routing
def pair_category(pair: Pair, cache: dict | None = None) -> str:
    """"person" or "scene": the ``p_``/``s_`` prefix when present, else the face detector."""
    if pair.category in ("person", "scene"):
        return pair.category
    key = ("category", pair.id, str(pair.source))
    if cache is not None and key in cache:
        return cache[key]
    category = detect_content(pair, image=load_views(pair).global_left, use_prefix=False).category
    if cache is not None:
        cache[key] = category
    return category


# --------------------------------------------------------------------------- members
class Member(Protocol):
    name: str

    def predict(self, pairs: Sequence[Pair], categories: Sequence[str], cache: dict, batch_size: int = 16) -> np.ndarray:
        """p_left per pair."""


@dataclass
class NetworkMember:
    """One backbone: a generalist and optional person/scene specialists, routed by category.

    Attributes:
        name: the member's name (the backbone key).
        models: "" -> generalist, "person"/"scene" -> specialist (each a PairwiseModel in eval mode).
        dirs: the folders the models were loaded from (relative to the run folder when saved).
    """

    name: str
    models: dict[str, PairwiseModel]
    dirs: dict[str, str] = field(default_factory=dict)

    def route(self, category: str) -> PairwiseModel:
        return self.models.get(category) or self.models[""]

    def predict(self, pairs: Sequence[Pair], categories: Sequence[str], cache: dict, batch_size: int = 16) -> np.ndarray:
        out = np.zeros(len(pairs))
        for key, model in self.models.items():
            idx = [i for i, c in enumerate(categories) if (key == c) or (key == "" and c not in self.models)]
            if not idx:
                continue
            items = load_items([pairs[i] for i in idx], model.cfg, cache=cache, desc=f"{self.name} views")
            out[idx] = predict_items(model, items, batch_size=batch_size, desc=f"{self.name}{'/' + key if key else ''}")
        return out


class FeatureMemberAdapter:
    """The feature-based member of `idiff_lib.features.cv` (``fit(table, labels)``, ``predict_proba(table)``).

    `table_fn(pairs)` builds its feature table; the pair order of the table is the order given.
    """

    def __init__(self, member: Any, table_fn: Any, name: str = "features"):
        self.member, self.table_fn, self.name = member, table_fn, name

    def predict(self, pairs: Sequence[Pair], categories: Sequence[str], cache: dict, batch_size: int = 16) -> np.ndarray:
        return np.asarray(self.member.predict_proba(self.table_fn(list(pairs))), dtype=float).reshape(-1)


# --------------------------------------------------------------------------- ensemblers
def _logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


class Ensembler:
    """Combines an (n_pairs, n_members) matrix of p_left into one p_left per pair."""

    name = "base"

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> "Ensembler":
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> "Ensembler":
        return self


class EqualWeight(Ensembler):
    """The mean of the members' probabilities (the paper's choice)."""

    name = "mean"

    def predict(self, probs: np.ndarray) -> np.ndarray:
        return np.asarray(probs, dtype=float).mean(axis=1)


class AccuracyWeighted(Ensembler):
    """A weighted mean of probabilities, weights = max(val accuracy - 0.5, 0) (chance earns nothing)."""

    name = "weighted"

    def __init__(self) -> None:
        self.weights: np.ndarray | None = None

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> "AccuracyWeighted":
        acc = ((np.asarray(probs) > 0.5) == (np.asarray(labels)[:, None] > 0.5)).mean(axis=0)
        w = np.clip(acc - 0.5, 0.0, None)
        self.weights = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise ParameterError("the weighted ensembler must be fitted on val first")
        return np.asarray(probs, dtype=float) @ self.weights

    def state(self) -> dict[str, Any]:
        return {"weights": None if self.weights is None else self.weights.tolist()}

    def load_state(self, state: dict[str, Any]) -> "AccuracyWeighted":
        self.weights = None if state.get("weights") is None else np.asarray(state["weights"], dtype=float)
        return self


class LogisticStacking(Ensembler):
    """Logistic regression on the members' logits, fitted on val with every pair also swapped.

    No intercept and swap-mirrored training rows keep it antisymmetric: p(swap) = 1 - p.
    """

    name = "stacking"

    def __init__(self, C: float = 1.0) -> None:
        self.C = C
        self.coef: np.ndarray | None = None

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> "LogisticStacking":
        from sklearn.linear_model import LogisticRegression

        z = _logit(probs)
        y = (np.asarray(labels) > 0.5).astype(int)
        clf = LogisticRegression(C=self.C, fit_intercept=False, max_iter=1000)
        clf.fit(np.vstack([z, -z]), np.concatenate([y, 1 - y]))
        self.coef = clf.coef_.reshape(-1)
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise ParameterError("the stacking ensembler must be fitted on val first")
        return 1.0 / (1.0 + np.exp(-(_logit(probs) @ self.coef)))

    def state(self) -> dict[str, Any]:
        return {"C": self.C, "coef": None if self.coef is None else self.coef.tolist()}

    def load_state(self, state: dict[str, Any]) -> "LogisticStacking":
        self.C = state.get("C", 1.0)
        self.coef = None if state.get("coef") is None else np.asarray(state["coef"], dtype=float)
        return self


ENSEMBLERS: dict[str, type[Ensembler]] = {"mean": EqualWeight, "weighted": AccuracyWeighted, "stacking": LogisticStacking}


def make_ensembler(name: str) -> Ensembler:
    if name not in ENSEMBLERS:
        raise ParameterError(f"unknown ensembler {name!r}.{suggest(name, ENSEMBLERS)} Choose one of {', '.join(ENSEMBLERS)}.")
    return ENSEMBLERS[name]()


# --------------------------------------------------------------------------- the ensemble
@dataclass
class Ensemble:
    """Members and the rule that combines them."""

    members: list[Any]
    ensembler: Ensembler
    run_dir: Path | None = None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def member_probs(self, pairs: Sequence[Pair], cache: dict | None = None,
                     batch_size: int = 16) -> tuple[np.ndarray, list[str]]:
        """(n_pairs, n_members) p_left and each pair's routed category."""
        cache = {} if cache is None else cache
        categories = [pair_category(p, cache) for p in pairs]
        probs = np.column_stack([m.predict(pairs, categories, cache, batch_size) for m in self.members]) \
            if pairs else np.zeros((0, len(self.members)))
        return probs, categories


def predict_rows(ens: Ensemble, pairs: Sequence[Pair], batch_size: int = 16, skip_bad: bool = False,
                 cache: dict | None = None) -> list[dict[str, Any]]:
    """One row per pair: id, answer (A/B), p_left, category, members {name: p_left}, label when known.

    Args:
        skip_bad: pairs whose images cannot be read get a row with ``error`` instead of stopping.

    Raises:
        DataError: for the first unreadable pair (naming its file and line) unless `skip_bad`.
    """
    cache = {} if cache is None else cache
    good, bad = [], []
    for pair in pairs:
        try:
            load_items([pair], _first_cfg(ens), cache=cache)
            good.append(pair)
        except DataError as err:
            if not skip_bad:
                raise
            bad.append({"id": pair.id, "answer": None, "p_left": None, "category": pair.category, "error": str(err)})
    probs, categories = ens.member_probs(good, cache, batch_size)
    p = ens.ensembler.predict(probs) if len(good) else np.zeros(0)
    rows = {r["id"]: r for r in bad}
    for i, pair in enumerate(good):
        row = {"id": pair.id, "answer": "A" if p[i] > 0.5 else "B", "p_left": float(p[i]), "category": categories[i],
               "members": {n: float(probs[i, j]) for j, n in enumerate(ens.names)}}
        if pair.answer is not None:
            row["label"] = pair.answer
        rows[pair.id] = row
    return [rows[p.id] for p in pairs]


def _first_cfg(ens: Ensemble) -> MemberConfig:
    for m in ens.members:
        if isinstance(m, NetworkMember):
            return next(iter(m.models.values())).cfg
    return MemberConfig(name="views", backbone="resnet10t")


def save_run(step_dir: str | Path, members: Sequence[Any], ensembler: Ensembler) -> Path:
    """Write ``ensemble.json`` (and the feature member's pickle) so `load_run` / the CLI can predict."""
    step_dir = Path(step_dir)
    spec: dict[str, Any] = {"members": [], "ensembler": {"name": ensembler.name, "state": ensembler.state()}}
    for m in members:
        if isinstance(m, NetworkMember):
            dirs = {k: _relative(Path(v), step_dir) for k, v in m.dirs.items()}
            spec["members"].append({"name": m.name, "kind": "network", "dirs": dirs})
        else:
            target = step_dir / "members" / f"{m.name}.pkl"
            with storage.atomic_path(target) as tmp:
                tmp.write_bytes(pickle.dumps(m))
            spec["members"].append({"name": m.name, "kind": "pickle", "path": _relative(target, step_dir)})
    return storage.write_json(step_dir / ENSEMBLE_FILE, spec)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def load_run(run_dir: str | Path, device: str | None = None) -> Ensemble:
    """The ensemble of a notebook-02 step folder, or of a chain run folder that holds one.

    Raises:
        DataError: when no ``ensemble.json`` is found.
    """
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / STEP):
        if (folder / ENSEMBLE_FILE).exists():
            break
    else:
        raise DataError(run_dir / ENSEMBLE_FILE, "no trained ensemble here",
                        f"pass --run <run folder> or <run folder>/{STEP} after running notebook 02")
    spec = json.loads((folder / ENSEMBLE_FILE).read_text(encoding="utf-8"))
    members: list[Any] = []
    for m in spec["members"]:
        if m["kind"] == "network":
            models, dirs = {}, {}
            for key, rel in m["dirs"].items():
                path = folder / rel
                models[key] = load_member(path, device=device)[1]
                dirs[key] = str(path)
            members.append(NetworkMember(m["name"], models, dirs))
        else:
            members.append(pickle.loads((folder / m["path"]).read_bytes()))
    ensembler = make_ensembler(spec["ensembler"]["name"]).load_state(spec["ensembler"].get("state") or {})
    return Ensemble(members, ensembler, folder)


def network_member(name: str, dirs: dict[str, str | Path], device: str | None = None) -> NetworkMember:
    """A NetworkMember loaded from member folders ("" generalist, "person"/"scene" specialists)."""
    return NetworkMember(name, {k: load_member(v, device=device)[1] for k, v in dirs.items()},
                         {k: str(v) for k, v in dirs.items()})


# --------------------------------------------------------------------------- analysis
def accuracy(p: np.ndarray, labels: np.ndarray) -> float:
    p, labels = np.asarray(p), np.asarray(labels)
    return float(np.mean((p > 0.5) == (labels > 0.5))) if len(p) else float("nan")


def bootstrap_ci(correct: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean of 0/1 outcomes (`scoring.bootstrap_mean`'s interval)."""
    from idiff_lib.scoring.metrics import bootstrap_mean

    ci = bootstrap_mean(np.asarray(correct, dtype=float), n_boot=n_boot, seed=seed, level=level)
    return (float("nan"), float("nan")) if ci["n"] == 0 else (ci["ci_low"], ci["ci_high"])


def accuracy_table(p: np.ndarray, labels: np.ndarray, categories: Sequence[str], seed: int = 0) -> dict[str, dict[str, float]]:
    """Accuracy with a 95% bootstrap interval for person, scene and overall."""
    p, labels, categories = np.asarray(p), np.asarray(labels), np.asarray(categories)
    out = {}
    for group in ("person", "scene", "overall"):
        mask = np.ones(len(p), bool) if group == "overall" else categories == group
        correct = (p[mask] > 0.5) == (labels[mask] > 0.5)
        lo, hi = bootstrap_ci(correct, seed=seed)
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
    """(Pearson correlation of the members' logits, share of pairs where their answers agree)."""
    probs = np.asarray(probs, float)
    z = _logit(probs)
    corr = np.corrcoef(z.T) if probs.shape[1] > 1 else np.ones((1, 1))
    answers = probs > 0.5
    agree = (answers[:, :, None] == answers[:, None, :]).mean(axis=0)
    return np.nan_to_num(corr, nan=0.0), agree


def compare_ensemblers(val_probs: np.ndarray, val_labels: np.ndarray, test_probs: np.ndarray,
                       test_labels: np.ndarray) -> dict[str, float]:
    """Test accuracy of every ensembler, each fitted on val only."""
    return {name: accuracy(make_ensembler(name).fit(val_probs, val_labels).predict(test_probs), test_labels)
            for name in ENSEMBLERS}


def all_wrong(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of the pairs every member gets wrong."""
    wrong = (np.asarray(probs) > 0.5) != (np.asarray(labels)[:, None] > 0.5)
    return np.flatnonzero(wrong.all(axis=1))


def set_threads(n: int = 2) -> None:
    """Keep torch to `n` threads (the CPU profile shares a small machine)."""
    torch.set_num_threads(max(1, n))


@dataclass
class Step02Outputs:
    """What notebook 04 reads from step 02: member and final probabilities, labels and pairs."""

    names: list[str]
    val_probs: Any
    test_probs: Any
    val_labels: np.ndarray
    test_labels: np.ndarray
    final_val: np.ndarray
    final_test: np.ndarray
    test_categories: list[str]
    test_pairs: list[Pair]
    ensemble: Ensemble


def load_step02(step_dir: str | Path, data_dir: str | Path, device: str | None = None) -> Step02Outputs:
    """Read notebook 02's outputs (member_probs_*.csv, preds_*.jsonl, ensemble.json) and the test pairs.

    Raises:
        DataError: naming the missing file and the step to run.
    """
    import pandas as pd

    from idiff_lib.data.datasets import load_split

    step_dir = Path(step_dir)
    need = ["member_probs_val.csv", "member_probs_test.csv", "preds_val.jsonl", "preds_test.jsonl", ENSEMBLE_FILE]
    for name in need:
        if not (step_dir / name).exists():
            raise DataError(step_dir / name, "step 02 output not found",
                            "run notebook 02 first in the same run folder (idiff run --only 02)")
    val_probs = pd.read_csv(step_dir / "member_probs_val.csv", index_col=0)
    test_probs = pd.read_csv(step_dir / "member_probs_test.csv", index_col=0)
    ens = load_run(step_dir, device=device)
    val_rows = storage.read_jsonl_rows(step_dir / "preds_val.jsonl")
    test_rows = storage.read_jsonl_rows(step_dir / "preds_test.jsonl")
    by_id = {p.id: p for p in load_split(data_dir, "test")}
    missing = [r["id"] for r in test_rows if r["id"] not in by_id]
    if missing:
        raise DataError(step_dir / "preds_test.jsonl", f"{len(missing)} test ids (e.g. {missing[0]}) are not in {data_dir}",
                        "pass the data_dir that step 02 was run with")
    labels = lambda rows: np.array([float(r["label"] == "A") for r in rows])  # noqa: E731
    names = ens.names
    return Step02Outputs(
        names=names, val_probs=val_probs.loc[[r["id"] for r in val_rows], names],
        test_probs=test_probs.loc[[r["id"] for r in test_rows], names],
        val_labels=labels(val_rows), test_labels=labels(test_rows),
        final_val=np.array([r["p_left"] for r in val_rows]), final_test=np.array([r["p_left"] for r in test_rows]),
        test_categories=[r["category"] for r in test_rows], test_pairs=[by_id[r["id"]] for r in test_rows], ensemble=ens)


def feature_importances(run: Step02Outputs, repeats: int = 5, seed: int = 0):
    """Permutation importances of the feature member on the test pairs, or None without one.

    `features.FeatureMember.permutation_importances`: the accuracy drop when a column is shuffled.
    """
    member = next((m for m in run.ensemble.members if isinstance(m, FeatureMemberAdapter)), None)
    if member is None:
        return None
    return member.member.permutation_importances(member.table_fn(run.test_pairs), run.test_labels,
                                                 n_repeats=repeats, seed=seed)
