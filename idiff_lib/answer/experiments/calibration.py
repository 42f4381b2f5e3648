"""Temperature scaling of the Answer Model's p_left, fitted on val (notebook 04's calibration analysis).

One parameter per model: ``p' = sigmoid(logit(p) / T)``, with T > 0 chosen to minimise the
binary log-loss on the validation pairs (Guo et al., 2017). T > 1 softens an overconfident
model, T < 1 sharpens a timid one; the answer (which side of 0.5) never changes, so accuracy
is unchanged. Dividing the logit keeps the antisymmetry of the network's logit: swapping A
and B negates the logit, so ``logit(1 - p) / T = -logit(p) / T`` and the calibrated p of the
swapped pair is still ``1 - p'``. Notebook 02's saved predictions are not changed; this is an
analysis of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from idiff_lib.answer.experiments.analysis import Step02Outputs, accuracy, reliability
from idiff_lib.answer.experiments.ensemblers import prob_logit
from idiff_lib.core.errors import ParameterError

T_BOUNDS = (0.05, 100.0)  # the search range of the temperature (a log-scale bounded search)


def _log_loss(z: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of logits `z` against 0/1 labels (stable form)."""
    return float(np.mean(np.logaddexp(0.0, z) - labels * z)) if len(z) else float("nan")


def apply_temperature(p: np.ndarray, temperature: float) -> np.ndarray:
    """``sigmoid(logit(p) / T)``: p_left after temperature scaling (antisymmetric: p -> 1 - p maps to 1 - p').

    Raises:
        ParameterError: for a temperature that is not a positive finite number.
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ParameterError(f"temperature must be a positive number, got {temperature}; fix: use fit_temperature's value")
    z = prob_logit(p) / temperature
    return 1.0 / (1.0 + np.exp(-z))


def fit_temperature(p: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the log-loss of ``sigmoid(logit(p) / T)`` on (val) pairs.

    Args:
        p: p_left per pair (the model's probability that A is better).
        labels: 1.0 where A is better, 0.0 where B is.

    Returns:
        T in `T_BOUNDS`; 1.0 when nothing can be fitted (no pairs, or every p is 0.5).

    Raises:
        ParameterError: when `p` and `labels` differ in length.
    """
    p, labels = np.asarray(p, float), np.asarray(labels, float)
    if p.shape != labels.shape:
        raise ParameterError(f"fit_temperature: {len(p)} probabilities but {len(labels)} labels; fix: pass one label per pair")
    z = prob_logit(p)
    if not len(z) or not np.any(np.abs(z) > 1e-9):
        return 1.0
    res = minimize_scalar(lambda log_t: _log_loss(z / np.exp(log_t), labels), bounds=np.log(T_BOUNDS), method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


@dataclass
class Calibration:
    """Temperature scaling of every model of a run: the table and the test p_left before and after.

    Attributes:
        table: one row per model (``temperature``, test ``ece_before``/``ece_after``,
            ``log_loss_before``/``log_loss_after`` on test, val ``n_val``, test ``accuracy``).
        before: model -> test p_left as saved by notebook 02.
        after: model -> test p_left after its val-fitted temperature.
    """

    table: pd.DataFrame
    before: dict[str, np.ndarray] = field(default_factory=dict)
    after: dict[str, np.ndarray] = field(default_factory=dict)

    def temperatures(self) -> dict[str, float]:
        """Model -> fitted temperature (what ``calibration.json`` records)."""
        return {str(k): float(v) for k, v in self.table["temperature"].items()}


def calibrate(val: Mapping[str, np.ndarray], val_labels: np.ndarray, test: Mapping[str, np.ndarray],
              test_labels: np.ndarray, bins: int = 10) -> Calibration:
    """Fit a temperature per model on val and compare ECE and log-loss on test before and after.

    Args:
        val: model name -> val p_left; test: the same names -> test p_left.
        val_labels, test_labels: 1.0 where A is better.
        bins: reliability bins for the ECE (`analysis.reliability`).

    Raises:
        ParameterError: when val and test do not name the same models.
    """
    if set(val) != set(test):
        raise ParameterError(f"calibrate: val models {sorted(val)} differ from test models {sorted(test)}; "
                             "fix: pass the same members for both splits")
    test_labels = np.asarray(test_labels, float)
    rows, before, after = [], {}, {}
    for name in test:
        t = fit_temperature(val[name], val_labels)
        p = np.asarray(test[name], float)
        q = apply_temperature(p, t)
        before[name], after[name] = p, q
        rows.append({"model": name, "temperature": t, "ece_before": reliability(p, test_labels, bins)[1],
                     "ece_after": reliability(q, test_labels, bins)[1],
                     "log_loss_before": _log_loss(prob_logit(p), test_labels),
                     "log_loss_after": _log_loss(prob_logit(q), test_labels),
                     "accuracy": accuracy(p, test_labels), "n_val": len(np.asarray(val[name]))})
    return Calibration(pd.DataFrame(rows).set_index("model"), before, after)


def calibrate_run(run: Step02Outputs, bins: int = 10) -> Calibration:
    """`calibrate` for each member of a loaded step-02 run and for its final ensemble ("ensemble")."""
    val = {**{n: run.val_probs[n].to_numpy() for n in run.names}, "ensemble": run.final_val}
    test = {**{n: run.test_probs[n].to_numpy() for n in run.names}, "ensemble": run.final_test}
    return calibrate(val, run.val_labels, test, run.test_labels, bins)


def temperature_sentence(cal: Calibration) -> str:
    """The ensemble's temperature and its test ECE before and after, in one sentence."""
    row = cal.table.loc["ensemble"] if "ensemble" in cal.table.index else cal.table.iloc[0]
    t = row["temperature"]
    kind = "softens an overconfident" if t > 1.05 else ("sharpens a timid" if t < 0.95 else "barely changes the")
    better = "lowers" if row["ece_after"] < row["ece_before"] else "does not lower"
    bound = any(abs(np.log(t / b)) < 1e-3 for b in T_BOUNDS)
    caveat = (f" T sits at the search bound {t:.2f}: {int(row['n_val'])} val pairs do not pin it down." if bound else "")
    return (f"The val-fitted temperature of the ensemble is {t:.2f} (it {kind} model); on test it {better} the ECE "
            f"({row['ece_before']:.3f} → {row['ece_after']:.3f}) and leaves the accuracy at {row['accuracy']:.2f}.{caveat}")
