"""Issue 28: the one ladder figure. Stages in S0 -> S4 order whatever the table's order, the value axis
from 0, each floor drawn as a line, whiskers where the metric has an interval, GRPO drawn apart, and a
caption whose counts follow the intervals. Checked on the figure's axes, not only on its metadata."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from idiff_lib.core.errors import DataError  # noqa: E402
from idiff_lib.core.ontology import STAGES  # noqa: E402
from idiff_lib.report import ladder_plot as lp  # noqa: E402
from idiff_lib.scoring import controls  # noqa: E402

GRPO = "GRPO from base"


def _stage_ladder() -> pd.DataFrame:
    """Rows in the zigzag order the old figure drew (S3 first), a GRPO row at S3 and the floor row."""
    rows = []
    for k in (3, 0, 1, 2, 4):
        acc = 0.9 if k == 4 else 0.55
        rows.append({"system": "tiny", "stage": f"S{k}", "accuracy": acc, "accuracy_ci_low": acc - (0.02 if k == 4 else 0.2),
                     "accuracy_ci_high": min(1.0, acc + 0.1), "rouge_l": 0.30 + 0.03 * k,
                     "rouge_l_ci_low": 0.28 + 0.03 * k, "rouge_l_ci_high": 0.32 + 0.03 * k, "bleu4": 0.1 + 0.02 * k})
    rows.append({"system": GRPO, "stage": "S3", "accuracy": 0.25, "accuracy_ci_low": 0.0, "accuracy_ci_high": 0.45,
                 "rouge_l": 0.2, "rouge_l_ci_low": 0.15, "rouge_l_ci_high": 0.25, "bleu4": 0.05})
    rows.append({"system": controls.FLOOR_SYSTEM, "stage": controls.FLOOR_STAGE, "accuracy": 0.625,
                 "rouge_l": 0.385, "bleu4": 0.2})
    return pd.DataFrame(rows)


def _hlines(ax) -> list[float]:
    """The y of every horizontal line spanning the axes (axhline draws in axes coordinates along x)."""
    out = []
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        if len(y) == 2 and y[0] == y[1] and list(x) == [0, 1]:
            out.append(float(y[0]))
    return out


def test_stage_panel_problems_passes_a_drawn_ladder_and_names_each_fault():
    plot = lp.plot_ladder(lp.stage_ladder_panels(_stage_ladder(), ("accuracy", "rouge_l", "bleu4"), apart=[GRPO]))
    assert lp.stage_panel_problems(plot.meta) == []
    acc = {"title": "answer accuracy", "x_order": ["S4", "S0"], "value_axis": [0.2, 1.0], "floors": [{"value": 0.6}]}
    rouge = {"title": "ROUGE-L F", "x_order": ["S0"], "value_axis": [0.0, 1.0], "floors": []}
    problems = lp.stage_panel_problems({"panels": [acc, rouge]})
    assert len(problems) == 4, problems
    assert "not in the order" in problems[0] and "not 0" in problems[1] and "not chance" in problems[2]
    assert problems[3] == "ROUGE-L F: no floor drawn"


def test_stage_ladder_draws_s0_to_s4_from_zero_with_its_floors():
    plot = lp.plot_ladder(lp.stage_ladder_panels(_stage_ladder(), ("accuracy", "rouge_l", "bleu4"), apart=[GRPO]))
    acc_ax, rouge_ax, bleu_ax = plot.figure.axes
    for ax in plot.figure.axes:
        assert ax.get_ylim()[0] == 0.0, ax.get_title()
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks[:5] == list(STAGES), ticks
        assert ticks[5].replace("\n", " ").startswith(GRPO), "GRPO sits after S4, apart from the ladder"
    assert 0.5 in _hlines(acc_ax), "accuracy's floor is chance (0.5), not the shuffled reference's 0.625"
    assert 0.625 not in _hlines(acc_ax)
    assert 0.385 in _hlines(rouge_ax) and 0.2 in _hlines(bleu_ax)
    # the line of "tiny" runs left to right through S0..S4 (no zigzag)
    tiny_line = next(c.lines[0] for c in acc_ax.containers if c.get_label() == "tiny")
    assert np.all(np.diff(tiny_line.get_xdata()) > 0)
    # whiskers: accuracy and ROUGE-L have intervals, BLEU-4 has none
    meta = {p["title"]: p for p in plot.meta["panels"]}
    assert meta["answer accuracy"]["intervals"] and meta["ROUGE-L F"]["intervals"] and not meta["BLEU-4 (0-1)"]["intervals"]
    assert meta["answer accuracy"]["x_order"] == list(STAGES) and meta["answer accuracy"]["floors"][0]["value"] == 0.5
    grpo_line = next(c.lines[0] for c in acc_ax.containers if c.get_label() == GRPO)
    assert grpo_line.get_marker() == "D" and grpo_line.get_xdata()[0] > 4, "GRPO: another marker, right of S4"


def test_caption_counts_follow_the_intervals_not_the_values():
    plot = lp.plot_ladder(lp.stage_ladder_panels(_stage_ladder(), ("accuracy",), apart=[GRPO]))
    # S0-S3 are 0.55 with the interval [0.35, 0.65]: above 0.5 by value, but chance is inside the interval.
    # Only S4 ([0.88, 1.0]) is above; GRPO ([0.0, 0.45]) is below.
    assert "answer accuracy: 1 of 6 rows above chance (0.50), 1 below and 4 with the floor inside" in plot.caption
    assert plot.caption.count(".") >= 1 and plot.caption.endswith(".") and GRPO in plot.caption
    narrow = _stage_ladder()
    narrow["accuracy_ci_low"] = narrow["accuracy"] - 0.01
    again = lp.plot_ladder(lp.stage_ladder_panels(narrow, ("accuracy",), apart=[GRPO]))
    assert "5 of 6 rows above" in again.caption, "with narrow intervals the 0.55 rows clear chance"


def test_a_stage_outside_the_ladder_is_refused_unless_drawn_apart():
    ladder = _stage_ladder()
    ladder.loc[0, "stage"] = "S9"
    with pytest.raises(DataError, match="S9"):
        lp.stage_ladder_panels(ladder)
    with pytest.raises(DataError, match="none of the metrics"):
        lp.stage_ladder_panels(_stage_ladder(), ("judge",))


def _answer_ladder() -> pd.DataFrame:
    rows = []
    for name, kind, acc in (("+ L/R split views", "rung", 0.75), ("single model, merged input", "rung", 0.52),
                            ("frozen features + linear head", "teaching", 0.665), ("scratch", "ablation", 0.5)):
        for cat in ("person", "scene", "overall"):
            rows.append({"rung": name, "kind": kind, "category": cat, "accuracy": acc, "ci_low": acc - 0.05,
                         "ci_high": acc + 0.05})
    return pd.DataFrame(rows)


def test_answer_ladder_keeps_rung_order_and_draws_the_frozen_floor():
    plot = lp.plot_ladder(lp.answer_ladder_panels(_answer_ladder()), orient="h")
    ax = plot.figure.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["+ L/R split views", "single model, merged input", "scratch [ablation]"], "order kept, floor row not a rung"
    assert ax.get_xlim()[0] == 0.0
    vlines = [float(line.get_xdata()[0]) for line in ax.get_lines()
              if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1] and list(line.get_ydata()) == [0, 1]]
    assert 0.665 in vlines and 0.5 in vlines
    assert "frozen-features floor (0.67)" in plot.caption and "1 of 3 rows above" not in plot.caption
    # overall, person and scene of "+ L/R split views" ([0.70, 0.80]) are the only rows above 0.665
    assert "3 of 9 rows above the frozen-features floor" in plot.caption


def test_save_ladder_writes_the_metadata_beside_the_image(tmp_path):
    plot = lp.plot_ladder(lp.stage_ladder_panels(_stage_ladder(), ("rouge_l",), apart=[GRPO]), title="t")
    written = lp.save_ladder(plot, "ladder", tmp_path)
    meta = json.loads((tmp_path / "ladder.json").read_text())
    assert tmp_path / "ladder.png" in written and meta["caption"] == plot.caption
    assert meta["panels"][0]["value_axis"][0] == 0.0 and meta["panels"][0]["floors"][0]["label"] == lp.TEXT_FLOOR_LABEL
