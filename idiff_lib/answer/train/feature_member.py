"""The feature-based Answer member: a scikit-learn classifier on the pairs' A − B feature differences.

It reads the difference columns (``*.diff``) of a feature table of `idiff_lib.features` (the
ensemble uses the aligned pair-difference cues). Saved with ``skops.io`` and loaded back with an
explicit list of trusted types, so opening a saved member never runs code stored in the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError, suggest

# The only non-default types a saved member may hold: the fitted trees of the two boosters
# (skops trusts scikit-learn's estimators, NumPy arrays and builtins by itself).
TRUSTED_SKOPS_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
def as_labels(labels: Iterable[Any]) -> np.ndarray:
    """1.0 where Image A is better, 0.0 where B is: accepts "A"/"B" or numbers (> 0.5 = A)."""
    out = []
    for i, v in enumerate(labels):
        if isinstance(v, str):
            if v not in ("A", "B"):
                raise ParameterError(f"label {i} is {v!r}; expected 'A' or 'B'")
            out.append(1.0 if v == "A" else 0.0)
        else:
            out.append(1.0 if float(v) > 0.5 else 0.0)
    return np.asarray(out)


DEFAULT_GRID = ({"kind": "logistic", "C": 0.01}, {"kind": "logistic", "C": 0.1}, {"kind": "logistic", "C": 1.0},
                {"kind": "gbm"})


class FeatureMember:
    """Feature-based Answer member: a scikit-learn classifier on the A − B feature differences.

    Antisymmetric by construction: it is trained on both orders (x, y) and (−x, 1 − y), and at
    predict time returns (p(x) + 1 − p(−x)) / 2, so exchanging A and B gives exactly 1 − p.
    Missing differences (no face in a scene, a flagged bad sample) are 0, i.e. no evidence.

    Args:
        kind: ``"logistic"`` (standardised logistic regression), ``"gbm"`` (exact gradient
            boosting, for a few hundred pairs) or ``"hgb"`` (histogram gradient boosting, for the
            thousands of synthetic training pairs of `synthetic.synthetic_cue_table`).
        C: inverse regularisation strength of the logistic regression.
        seed: random state of the gradient boosting.
    """

    KINDS = ("logistic", "gbm", "hgb")

    def __init__(self, kind: str = "logistic", C: float = 0.1, seed: int = 0):
        if kind not in self.KINDS:
            raise ParameterError(f"unknown FeatureMember kind {kind!r}; choose from {self.KINDS}.{suggest(kind, self.KINDS)}")
        self.kind, self.C, self.seed = kind, C, seed
        self.columns_: list[str] | None = None
        self.model_: Any = None

    def _estimator(self):
        from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier  # deferred: heavy
        from sklearn.linear_model import LogisticRegression  # deferred: heavy
        from sklearn.pipeline import make_pipeline  # deferred: heavy
        from sklearn.preprocessing import StandardScaler  # deferred: heavy

        if self.kind == "logistic":
            # no centring and no intercept: the decision function stays odd in x
            return make_pipeline(StandardScaler(with_mean=False),
                                 LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000))
        if self.kind == "hgb":
            # 15 leaves, 300 rounds: on 4,000-12,000 synthetic pairs larger trees fit the synthetic
            # photos more closely without gaining on val (0.70-0.74 either way)
            return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                                  l2_regularization=1.0, early_stopping=False, random_state=self.seed)
        # the exact (single-threaded) booster: at a few hundred pairs it beats the OpenMP histogram one on 2 busy cores
        return GradientBoostingClassifier(n_estimators=150, learning_rate=0.05, max_depth=2, subsample=0.8,
                                          random_state=self.seed)

    def _matrix(self, table: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(table, pd.DataFrame):
            if self.columns_ is None:
                cols = sorted(c for c in table.columns if c.endswith(".diff"))
            else:
                cols = self.columns_
                missing = [c for c in cols if c not in table.columns]
                if missing:
                    raise DataError(None, f"feature table lacks {len(missing)} column(s) the member was trained on, "
                                    f"e.g. {missing[:3]}",
                                    "build the table with the same features= sources as at training time")
            x = table[cols].to_numpy(dtype=float)
        else:
            x = np.asarray(table, dtype=float)
            if self.columns_ is not None and x.shape[1] != len(self.columns_):
                raise ParameterError(f"expected {len(self.columns_)} columns, got {x.shape[1]}")
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def fit(self, table: pd.DataFrame, labels: Iterable[Any]) -> FeatureMember:
        """Fit on the difference columns of `table` and labels ("A"/"B" or 1 = A better)."""
        self.columns_ = None
        x = self._matrix(table)
        if isinstance(table, pd.DataFrame):
            self.columns_ = sorted(c for c in table.columns if c.endswith(".diff"))
        y = as_labels(labels)
        if len(y) != len(x):
            raise ParameterError(f"{len(x)} table rows but {len(y)} labels")
        if not x.shape[1]:
            raise ParameterError("the table has no '.diff' columns to learn from")
        self.model_ = self._estimator().fit(np.vstack([x, -x]), np.concatenate([y, 1 - y]))
        return self

    def predict_proba(self, table: pd.DataFrame | np.ndarray) -> np.ndarray:
        """p_left (probability that Image A is better) per row, exactly antisymmetric."""
        if self.model_ is None:
            raise ParameterError("FeatureMember.predict_proba called before fit")
        x = self._matrix(table)
        if not len(x):
            return np.zeros(0)
        classes = list(self.model_.classes_)
        pos = classes.index(1.0)
        p = self.model_.predict_proba(x)[:, pos]
        q = self.model_.predict_proba(-x)[:, pos]
        return (p + 1 - q) / 2

    def predict_by_id(self, table: pd.DataFrame) -> pd.Series:
        """p_left per pair id (the table's index)."""
        return pd.Series(self.predict_proba(table), index=table.index, name="p_left")

    def permutation_importances(self, table: pd.DataFrame, labels: Iterable[Any], n_repeats: int = 5,
                                seed: int = 0) -> pd.DataFrame:
        """Accuracy drop when each difference column is shuffled (``sklearn.inspection.permutation_importance``)."""
        from sklearn.inspection import permutation_importance  # deferred: heavy

        frame = table[self.columns_]
        y = as_labels(labels)

        def score(est: FeatureMember, X: Any, yy: np.ndarray) -> float:
            X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self.columns_)
            return float(np.mean((est.predict_proba(X) > 0.5) == (yy > 0.5)))

        res = permutation_importance(self, frame, y, scoring=score, n_repeats=n_repeats, random_state=seed)
        return (pd.DataFrame({"feature": self.columns_, "importance": res.importances_mean, "std": res.importances_std})
                .sort_values("importance", ascending=False).reset_index(drop=True))

    @classmethod
    def select(cls, train: pd.DataFrame, y_train: Iterable[Any], val: pd.DataFrame, y_val: Iterable[Any],
               grid: Sequence[Mapping[str, Any]] = DEFAULT_GRID) -> tuple[FeatureMember, pd.DataFrame]:
        """Fit each setting of `grid` on train and keep the best by validation accuracy (first on ties).

        Returns:
            The chosen member (fitted on train only) and a table of every setting's validation accuracy.
        """
        y_train, y_val = as_labels(y_train), as_labels(y_val)
        rows, best, best_acc = [], None, -1.0
        for settings in grid:
            member = cls(**settings).fit(train, y_train)
            acc = float(np.mean((member.predict_proba(val) > 0.5) == (y_val > 0.5)))
            rows.append({**settings, "val_accuracy": acc})
            if acc > best_acc:
                best, best_acc = member, acc
        return best, pd.DataFrame(rows)

    def settings(self) -> dict[str, Any]:
        """The constructor arguments (what a run's spec records beside the weights file)."""
        return {"kind": self.kind, "C": self.C, "seed": self.seed}

    def save(self, path: str | Path) -> Path:
        """``skops.io`` dump of the settings, the trained columns and the fitted estimator, written atomically."""
        # deferred: heavy (idiff_lib/__init__.py)
        import skops.io as sio  # alias: skops' documented short name

        if self.model_ is None:
            raise ParameterError("FeatureMember.save called before fit")
        state = {"class": type(self).__name__, **self.settings(), "columns": self.columns_, "model": self.model_}
        with storage.atomic_path(path) as tmp:
            sio.dump(state, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureMember:
        """A member written by `save`; only scikit-learn types and `TRUSTED_SKOPS_TYPES` are accepted.

        Raises:
            DataError: naming the file when it is missing, unreadable, or holds other types.
        """
        # deferred: heavy (idiff_lib/__init__.py)
        import skops.io as sio  # alias: skops' documented short name

        path = Path(path)
        fix = "fit the member again and call FeatureMember.save(path) (step 02: idiff run --only 02_train_answer_model)"
        if not path.exists():
            raise DataError(path, "feature member not found", fix)
        try:
            untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_SKOPS_TYPES))
            state = None if untrusted else sio.load(path, trusted=list(TRUSTED_SKOPS_TYPES))
        except Exception as err:  # a truncated zip, a file of another format: report each the same way
            raise DataError(path, f"cannot be read as a saved FeatureMember ({type(err).__name__}: {err})", fix) from None
        if untrusted:
            raise DataError(path, f"holds types that are not trusted: {untrusted[:3]}", fix)
        if not isinstance(state, dict) or state.get("class") != cls.__name__:
            raise DataError(path, "does not hold a saved FeatureMember", fix)
        member = cls(state["kind"], state["C"], state["seed"])
        member.columns_ = None if state["columns"] is None else [str(c) for c in state["columns"]]
        member.model_ = state["model"]
        return member
