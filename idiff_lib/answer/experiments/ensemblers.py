"""The rules that combine the members' probabilities into the ensemble's: the ensemblers, by name.

Reference: iDiff (NTIRE 2026 RAIM challenge Track 1 winner) averages its backbones' probabilities
with equal weights (``mean``). Beside it: accuracy-weighted voting (``weighted``) and logistic
stacking (``stacking``, scikit-learn), both fitted on the validation split only. Each keeps swap
consistency: exchanging A and B in every member gives ``1 - p``. The members and the ensemble that
holds them are `idiff_lib.answer.experiments.ensemble`; this module imports neither, so the settings
can check an ensembler's name without loading a network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from idiff_lib.core.errors import ParameterError, suggest


def prob_logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [eps, 1 - eps] so certain members stay finite."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


class Ensembler:
    """Combines an (n_pairs, n_members) matrix of p_left into one p_left per pair."""

    name = "base"

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> Ensembler:
        """Learn from validation probabilities and labels (nothing to learn by default)."""
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """One p_left per row of `probs`."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What was learnt, as plain JSON values (saved in the run's spec)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> Ensembler:
        """Restore what `state` returned."""
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

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> AccuracyWeighted:
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

    def load_state(self, state: dict[str, Any]) -> AccuracyWeighted:
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

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> LogisticStacking:
        from sklearn.linear_model import LogisticRegression  # deferred: heavy

        z = prob_logit(probs)
        y = (np.asarray(labels) > 0.5).astype(int)
        clf = LogisticRegression(C=self.C, fit_intercept=False, max_iter=1000)
        clf.fit(np.vstack([z, -z]), np.concatenate([y, 1 - y]))
        self.coef = clf.coef_.reshape(-1)
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise ParameterError("the stacking ensembler must be fitted on val first")
        return 1.0 / (1.0 + np.exp(-(prob_logit(probs) @ self.coef)))

    def state(self) -> dict[str, Any]:
        return {"C": self.C, "coef": None if self.coef is None else self.coef.tolist()}

    def load_state(self, state: dict[str, Any]) -> LogisticStacking:
        self.C = state.get("C", 1.0)
        self.coef = None if state.get("coef") is None else np.asarray(state["coef"], dtype=float)
        return self


ENSEMBLERS: dict[str, type[Ensembler]] = {"mean": EqualWeight, "weighted": AccuracyWeighted, "stacking": LogisticStacking}


def make_ensembler(name: str) -> Ensembler:
    """A fresh ensembler by name (a key of ENSEMBLERS); unknown names suggest close ones."""
    if name not in ENSEMBLERS:
        raise ParameterError(f"unknown ensembler {name!r}.{suggest(name, ENSEMBLERS)} Choose one of {', '.join(ENSEMBLERS)}.")
    return ENSEMBLERS[name]()
