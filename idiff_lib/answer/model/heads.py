"""Heads on cached frozen features: antisymmetric pair heads, per-kind defect heads, per-aspect heads.

Every head here reads the A - B difference of cached view descriptors
(`idiff_lib.answer.model.feature_cache`) and is **antisymmetric by construction**: a linear map with no
intercept of an odd input, so exchanging A and B negates the logit and gives exactly ``1 - p``.

- `PairHead`: logistic regression on the difference (fitted on both orders), its L2 strength chosen
  by log-loss on val; optionally one head per category (person / scene specialists).
- `DefectHeads`: one ridge regression per defect kind of the A - B severity (the benchmark's
  ``meta``: which defect each side shows, and how strongly); their predictions are the **evidence**.
- `AspectHeads`: one logistic head per ground-truth comparison (region x attribute, e.g. Face
  Texture) saying which side is better on it, with a probability: the Thinking Model's evidence. Each
  aspect also has a **presence head** (`PresenceHead`, a ridge linear probability model), the
  probability that the pair differs on that aspect at all, which decides which aspects a rationale
  discusses. It reads ``|A - B|``, so it is
  **symmetric** by construction: a swap leaves it unchanged.

Reference: iDiff (NTIRE 2026 RAIM Track 1) for the difference-aware, swap-consistent answer; linear
probes on frozen features (Kornblith et al., CVPR 2019).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from safetensors.numpy import load_file, save_file

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.core.ontology import CATEGORIES

PAIR_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strengths tried, chosen by val log-loss
ALPHA_GRID = (10.0, 100.0, 1000.0, 3000.0)  # ridge strengths of the defect heads, chosen on val
MIN_ASPECT_PAIRS = 12  # fewer labelled pairs than this on an aspect: no head for it ("unavailable")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), computed stably."""
    z = np.asarray(z, dtype=np.float64)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy (p clipped away from 0 and 1)."""
    p = np.clip(np.asarray(p, float), 1e-9, 1 - 1e-9)
    y = np.asarray(y, float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _scale(x: np.ndarray) -> np.ndarray:
    """Per-column RMS of the difference (its mean is 0 over both orders), 1 where a column is constant."""
    s = np.sqrt(np.mean(np.asarray(x, np.float64) ** 2, axis=0))
    return np.where(s > 1e-12, s, 1.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, C: float, seed: int = 0) -> np.ndarray:
    """Coefficients of an intercept-free logistic regression on both orders (x, y) and (-x, 1 - y)."""
    from sklearn.linear_model import LogisticRegression  # deferred: heavy

    clf = LogisticRegression(C=C, fit_intercept=False, max_iter=5000, random_state=seed)
    clf.fit(np.vstack([x, -x]), np.concatenate([y, 1 - y]))
    return clf.coef_.reshape(-1).astype(np.float64)


@dataclass
class LinearHead:
    """``p = sigmoid(coef . (x / scale))``: antisymmetric in x, stored as plain arrays."""

    coef: np.ndarray
    scale: np.ndarray
    C: float = float("nan")
    path: list[tuple[float, float]] = field(default_factory=list)  # (C, val log-loss) tried (not saved)

    def logit(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) / self.scale) @ self.coef

    def predict(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(x))


def fit_head(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, grid: Sequence[float] = PAIR_C_GRID,
             seed: int = 0) -> LinearHead:
    """The logistic head whose C gives the lowest val log-loss (train on `x`, both orders)."""
    if len(set(np.asarray(y).tolist())) < 2:
        raise ParameterError("a pair head needs training pairs with both answers; fix: give a train split with "
                             "<answer> A and B")
    scale = _scale(x)
    best, path = None, []
    for C in grid:
        head = LinearHead(fit_logistic(x / scale, y, C, seed), scale, C)
        loss = log_loss(head.predict(x_val), y_val) if len(y_val) else -C  # no val: the weakest regularisation
        path.append((float(C), float(loss)))
        if best is None or loss < best[0] - 1e-12:
            best = (loss, head)
    best[1].path = path
    return best[1]


@dataclass
class PairHead:
    """A pair head, or one head per category ("" = every pair; "person" / "scene" = specialists).

    Attributes:
        heads: category -> LinearHead ("" is the generalist, used for a category without a specialist).
    """

    heads: dict[str, LinearHead]

    def predict(self, x: np.ndarray, categories: Sequence[str]) -> np.ndarray:
        """p_left per row, each row through its category's head (the generalist when there is none)."""
        x = np.asarray(x, np.float64)
        out = np.zeros(len(x))
        for i, cat in enumerate(categories):
            head = self.heads.get(cat) or self.heads[""]
            out[i] = head.predict(x[i:i + 1])[0]
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The head's arrays for a safetensors file, names prefixed."""
        out = {}
        for cat, h in self.heads.items():
            key = f"{prefix}.{cat or 'all'}"
            out[f"{key}.coef"], out[f"{key}.scale"] = h.coef, h.scale
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> PairHead:
        heads = {}
        for cat in ("all", *CATEGORIES):
            key = f"{prefix}.{cat}"
            if f"{key}.coef" in arrays:
                heads["" if cat == "all" else cat] = LinearHead(arrays[f"{key}.coef"], arrays[f"{key}.scale"])
        if "" not in heads:
            raise KeyError(f"{prefix}.all")
        return cls(heads)


def fit_pair_head(x: dict[str, np.ndarray], y: dict[str, np.ndarray], categories: dict[str, Sequence[str]],
                  specialists: bool = False, seed: int = 0) -> PairHead:
    """A generalist head, plus a head per category fitted on that category's train pairs when `specialists`.

    Args:
        x / y / categories: split name ("train", "val") -> differences, labels (1 = A better), categories.
    """
    general = fit_head(x["train"], y["train"], x["val"], y["val"], seed=seed)
    heads = {"": general}
    if specialists:
        for cat in CATEGORIES:
            tr = np.array([c == cat for c in categories["train"]])
            va = np.array([c == cat for c in categories["val"]])
            if tr.sum() >= 8 and len(set(y["train"][tr].tolist())) == 2:
                heads[cat] = fit_head(x["train"][tr], y["train"][tr], x["val"][va], y["val"][va], seed=seed)
    return PairHead(heads)


# --------------------------------------------------------------------------- defect evidence
@dataclass
class DefectHeads:
    """Ridge regressions of the A - B severity of each defect kind from the pair's difference.

    ``evidence(x)`` is the predicted A - B severity per kind (positive: A shows more of that
    defect). Being linear without intercept, it is odd in x: a swap negates every kind.
    """

    kinds: list[str]
    coef: np.ndarray  # (n_features, n_kinds)
    scale: np.ndarray
    alpha: float = float("nan")
    val_accuracy: dict[str, float] = field(default_factory=dict)  # worse side picked, per kind, on val

    def evidence(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) / self.scale) @ self.coef


def worse_side_accuracy(pred: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """Share of pairs whose severities differ where the sign of the prediction is right, and their count."""
    mask = np.abs(truth) > 1e-9
    if not mask.any():
        return float("nan"), 0
    return float(np.mean(np.sign(pred[mask]) == np.sign(truth[mask]))), int(mask.sum())


def fit_defect_heads(x: dict[str, np.ndarray], severity: dict[str, np.ndarray], kinds: Sequence[str],
                     grid: Sequence[float] = ALPHA_GRID) -> DefectHeads:
    """Per-kind ridge heads of the A - B severity, fitted on train (both orders), alpha chosen on val.

    Args:
        x: split -> (n, d) view-descriptor differences.
        severity: split -> (n, n_kinds) A - B severity per kind (from ``meta``).
    """
    from sklearn.linear_model import Ridge  # deferred: heavy

    scale = _scale(x["train"])
    xt, st = x["train"] / scale, severity["train"]
    best = None
    for alpha in grid:
        coef = Ridge(alpha=alpha, fit_intercept=False).fit(np.vstack([xt, -xt]), np.vstack([st, -st])).coef_.T
        pred = (x["val"] / scale) @ coef
        accs = [worse_side_accuracy(pred[:, k], severity["val"][:, k])[0] for k in range(len(kinds))]
        score = np.nanmean(accs) if np.isfinite(accs).any() else 0.0
        if best is None or score > best[0] + 1e-12:
            best = (score, alpha, coef, dict(zip(kinds, accs)))
    return DefectHeads(list(kinds), best[2], scale, best[1], best[3])


# --------------------------------------------------------------------------- aspect heads
@dataclass
class PresenceHead:
    """``p = clip(intercept + coef . (|x| / scale), 0, 1)``: does the pair differ on an aspect at all?

    A linear probability model (ridge regression on the 0/1 label), even in x: it reads the size of the
    A - B difference, not its sign, so a swap leaves it unchanged.
    """

    coef: np.ndarray
    scale: np.ndarray
    intercept: np.ndarray  # shape (1,), so it saves as an array
    alpha: float = float("nan")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.clip(float(self.intercept[0]) + (np.abs(np.asarray(x, np.float64)) / self.scale) @ self.coef, 0.0, 1.0)


def fit_presence_heads(x: np.ndarray, labels: dict[str, np.ndarray], x_val: np.ndarray, labels_val: dict[str, np.ndarray],
                       grid: Sequence[float] = ALPHA_GRID) -> dict[str, PresenceHead]:
    """One presence head per aspect of `labels` (name -> 0/1 per train pair), fitted together: a ridge
    regression on ``|x|`` with an intercept, its alpha the one with the lowest val Brier score over
    all aspects (the weakest without val pairs). An aspect that every training pair differs on, or
    none does, gets its rate: there is nothing else to learn.

    One solve per alpha for every aspect at once (``sklearn.linear_model.Ridge``, multi-output): about
    a second on 2 cores, where a logistic fit per aspect and strength took minutes.
    """
    from sklearn.linear_model import Ridge  # deferred: heavy

    names = list(labels)
    if not names:
        return {}
    scale = _scale(np.abs(x))
    a, a_val = np.abs(x) / scale, np.abs(np.asarray(x_val, np.float64)) / scale
    y = np.stack([labels[n] for n in names], axis=1)
    y_val = np.stack([labels_val[n] for n in names], axis=1) if len(x_val) else np.zeros((0, len(names)))
    best = None
    for alpha in grid:
        model = Ridge(alpha=alpha).fit(a, y)
        coef, intercept = model.coef_.reshape(len(names), -1), np.atleast_1d(model.intercept_)
        brier = float(np.mean((np.clip(a_val @ coef.T + intercept, 0, 1) - y_val) ** 2)) if len(y_val) else -alpha
        if best is None or brier < best[0] - 1e-12:
            best = (brier, alpha, coef, intercept)
    _, alpha, coef, intercept = best
    return {n: PresenceHead(coef[i].astype(np.float64), scale, np.array([float(intercept[i])]), alpha)
            for i, n in enumerate(names)}


@dataclass
class AspectHeads:
    """One logistic head per (region, attribute) comparison: p that A is better on that aspect.

    Attributes:
        heads: "Region Attribute" -> LinearHead, only for aspects with enough labelled pairs.
        presence: "Region Attribute" -> PresenceHead (p that the pair's ground truth holds the aspect),
            one per verdict head.
    """

    heads: dict[str, LinearHead]
    presence: dict[str, PresenceHead] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Aspect name -> p(A better on it) per row."""
        return {name: h.predict(x) for name, h in self.heads.items()}

    def predict_presence(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Aspect name -> p(the pair differs on it) per row."""
        return {name: h.predict(x) for name, h in self.presence.items()}


def aspect_labels(comparisons: Sequence[Sequence[dict]]) -> dict[str, np.ndarray]:
    """Aspect name -> per-pair label (1 A better, 0 B better, NaN not compared or similar)."""
    names = sorted({f"{c['region']} {c['attribute']}" for comps in comparisons for c in comps})
    out = {n: np.full(len(comparisons), np.nan) for n in names}
    for i, comps in enumerate(comparisons):
        for c in comps:
            if c.get("verdict") in ("A", "B"):
                out[f"{c['region']} {c['attribute']}"][i] = 1.0 if c["verdict"] == "A" else 0.0
    return out


def presence_labels(comparisons: Sequence[Sequence[dict]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Aspect name -> per-pair label: 1 when the pair's ground truth holds the aspect (any verdict), else 0."""
    out = {n: np.zeros(len(comparisons)) for n in names}
    for i, comps in enumerate(comparisons):
        for c in comps:
            name = f"{c['region']} {c['attribute']}"
            if name in out:
                out[name][i] = 1.0
    return out


def fit_aspect_heads(x: dict[str, np.ndarray], comparisons: dict[str, Sequence[Sequence[dict]]],
                     min_pairs: int = MIN_ASPECT_PAIRS, seed: int = 0) -> AspectHeads:
    """A verdict head and a presence head per aspect that has at least `min_pairs` train pairs with both verdicts."""
    train, val = aspect_labels(comparisons["train"]), aspect_labels(comparisons["val"])
    heads = {}
    for name, lab in train.items():
        m = ~np.isnan(lab)
        if m.sum() < min_pairs or len(set(lab[m].tolist())) < 2:
            continue
        lv = val.get(name, np.full(len(x["val"]), np.nan))
        mv = ~np.isnan(lv)
        heads[name] = fit_head(x["train"][m], lab[m], x["val"][mv], lv[mv], seed=seed)
    presence = fit_presence_heads(x["train"], presence_labels(comparisons["train"], list(heads)), x["val"],
                                  presence_labels(comparisons["val"], list(heads)))
    return AspectHeads(heads, presence)


# --------------------------------------------------------------------------- files
def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays as safetensors (no pickles), atomically."""
    with storage.atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    return Path(path)


def load_arrays(path: str | Path, hint: str) -> dict[str, np.ndarray]:
    """Read a safetensors file of arrays; a missing or damaged file is a DataError naming it and `hint`."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise DataError(path, "is missing", hint) from None
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise DataError(path, f"cannot be read as safetensors ({type(err).__name__}: {err})", hint) from None
