"""Temperature scaling of p_left (idiff_lib.answer.experiments.calibration) and its before/after reliability figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from idiff_lib.answer.experiments import calibration
from idiff_lib.answer.experiments.analysis import reliability
from idiff_lib.core.errors import ParameterError
from idiff_lib.report import answer_figures


def _overconfident(n: int = 4000, factor: float = 3.0, seed: int = 0):
    """True logits z, labels drawn from sigmoid(z), and p from z * factor (overconfident when factor > 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return 1 / (1 + np.exp(-factor * z)), labels


@pytest.mark.parametrize("factor", [3.0, 0.5])
def test_fit_temperature_recovers_the_scale(factor):
    p, labels = _overconfident(factor=factor)
    assert calibration.fit_temperature(p, labels) == pytest.approx(factor, rel=0.15)


def test_apply_temperature_keeps_antisymmetry_and_answers():
    p = np.array([0.02, 0.3, 0.5, 0.7, 0.99])
    q = calibration.apply_temperature(p, 2.5)
    np.testing.assert_allclose(calibration.apply_temperature(1 - p, 2.5), 1 - q, atol=1e-12)
    assert np.array_equal(q > 0.5, p > 0.5) and q[2] == pytest.approx(0.5)
    assert np.all(np.abs(q - 0.5) < np.abs(p - 0.5) + 1e-12)  # T > 1 softens
    np.testing.assert_allclose(calibration.apply_temperature(p, 1.0), p, atol=1e-6)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ParameterError, match="temperature"):
            calibration.apply_temperature(p, bad)


def test_fit_temperature_degenerate_and_bad_input():
    assert calibration.fit_temperature(np.full(10, 0.5), np.arange(10) % 2) == 1.0
    assert calibration.fit_temperature(np.zeros(0), np.zeros(0)) == 1.0
    with pytest.raises(ParameterError, match="labels"):
        calibration.fit_temperature(np.full(3, 0.6), np.ones(4))


def test_calibrate_lowers_the_ece_of_an_overconfident_model():
    p_val, y_val = _overconfident(seed=1)
    p_test, y_test = _overconfident(seed=2)
    ok_val, _ = _overconfident(factor=1.0, seed=1)
    ok_test, _ = _overconfident(factor=1.0, seed=2)
    cal = calibration.calibrate({"over": p_val, "ensemble": ok_val}, y_val, {"over": p_test, "ensemble": ok_test}, y_test)
    row = cal.table.loc["over"]
    assert row["temperature"] > 2 and row["ece_after"] < row["ece_before"] / 2
    assert row["log_loss_after"] < row["log_loss_before"]
    assert cal.table.loc["ensemble", "temperature"] == pytest.approx(1.0, abs=0.15)
    assert row["ece_before"] == pytest.approx(reliability(p_test, y_test)[1])
    assert np.array_equal(cal.after["over"] > 0.5, p_test > 0.5)
    assert set(cal.temperatures()) == {"over", "ensemble"}
    assert "ensemble" in calibration.temperature_sentence(cal)
    with pytest.raises(ParameterError, match="same members"):
        calibration.calibrate({"a": p_val}, y_val, {"b": p_test}, y_test)


def test_temperature_sentence_names_the_direction():
    p_val, y_val = _overconfident(seed=3)
    cal = calibration.calibrate({"ensemble": p_val}, y_val, {"ensemble": p_val}, y_val)
    assert "softens" in calibration.temperature_sentence(cal)


def test_reliability_before_after_has_two_panels_with_the_diagonal():
    p, y = _overconfident(n=500)
    q = calibration.apply_temperature(p, 3.0)
    fig = answer_figures.plot_reliability_before_after({"m": p}, {"m": q}, y, bins=5, temperatures={"m": 3.0})
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert any(list(line.get_xdata()) == [0.5, 1] for line in ax.get_lines())
    assert "T=3.00" in fig.axes[1].get_legend().get_texts()[1].get_text()


def test_temperature_sentence_flags_a_temperature_at_the_search_bound():
    p = np.array([0.501, 0.499, 0.502, 0.498])
    labels = np.array([1, 0, 1, 0], float)  # every answer right, p near 0.5: the fit sharpens as far as it may
    cal = calibration.calibrate({"ensemble": p}, labels, {"ensemble": p}, labels)
    assert cal.table.loc["ensemble", "temperature"] == pytest.approx(calibration.T_BOUNDS[0], rel=1e-3)
    assert "search bound" in calibration.temperature_sentence(cal)
    assert "search bound" not in calibration.temperature_sentence(
        calibration.calibrate({"ensemble": _overconfident()[0]}, _overconfident()[1],
                              {"ensemble": _overconfident()[0]}, _overconfident()[1]))
