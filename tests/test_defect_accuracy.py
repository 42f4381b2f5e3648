"""Accuracy per defect kind and region from meta/<split>.jsonl (analysis.accuracy_by_defect) and its figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from idiff_lib.answer.experiments import analysis
from idiff_lib.core import paths
from idiff_lib.core.errors import ParameterError
from idiff_lib.data.meta import split_meta
from idiff_lib.report import answer_figures

META = {
    "a": {"photo": "x", "defects_a": [{"kind": "jpeg", "region": "global"}], "defects_b": [{"kind": "defocus", "region": "face"}],
          "shared": [{"kind": "luma_noise", "region": "global"}]},
    "b": {"photo": "x", "defects_a": [], "defects_b": [{"kind": "jpeg", "region": "global"}]},
    "c": {"photo": "y", "defects_a": [{"kind": "jpeg", "region": "face"}, {"kind": "jpeg", "region": "skin"}], "defects_b": []},
}


def test_groups_overlap_and_pairs_without_meta_are_counted():
    ids = ["a", "b", "c", "d", "e"]
    p = np.array([0.9, 0.2, 0.7, 0.8, 0.1])
    labels = np.array([1, 1, 1, 0, 0], float)  # right: a, c, e; wrong: b, d
    table = analysis.accuracy_by_defect(p, labels, ids, META).set_index(["by", "group"])
    assert table.loc[("kind", "jpeg"), "n"] == 3 and table.loc[("kind", "jpeg"), "acc"] == pytest.approx(2 / 3)
    assert table.loc[("kind", "defocus"), "n"] == 1 and table.loc[("kind", "defocus"), "acc"] == 1.0
    assert ("kind", "luma_noise") not in table.index  # shared defects hit both sides alike
    assert table.loc[("region", "face"), "n"] == 2 and table.loc[("region", "skin"), "n"] == 1
    assert table.loc[("kind", "jpeg"), "photos"] == 2 and table.loc[("region", "face"), "photos"] == 2
    no_meta = table.loc[("no meta", analysis.NO_META)]
    assert no_meta["n"] == 2 and no_meta["acc"] == 0.5
    assert (table["lo"] <= table["acc"]).all() and (table["acc"] <= table["hi"]).all()
    sentence = analysis.defect_sentence(table.reset_index(), min_n=1)
    assert "defocus" in sentence and "2 test pairs have no meta row" in sentence


def test_all_pairs_with_meta_still_report_the_no_meta_row():
    table = analysis.accuracy_by_defect(np.array([0.9]), np.array([1.0]), ["a"], META)
    row = table[table["by"] == "no meta"].iloc[0]
    assert row["n"] == 0 and np.isnan(row["acc"])
    assert "No defect kind" in analysis.defect_sentence(table)
    with pytest.raises(ParameterError, match="one id per test pair"):
        analysis.accuracy_by_defect(np.array([0.9, 0.1]), np.array([1.0]), ["a"], META)


def test_demo_meta_covers_every_test_pair():
    data_dir = paths.PROJ_ROOT / "data" / "demo"
    meta = split_meta(data_dir, "test")
    ids = sorted(meta)
    rng = np.random.default_rng(0)
    table = analysis.accuracy_by_defect(rng.random(len(ids)), rng.integers(0, 2, len(ids)).astype(float), ids, meta)
    assert int(table.loc[table["by"] == "no meta", "n"].iloc[0]) == 0
    assert {"jpeg", "defocus"} <= set(table.loc[table["by"] == "kind", "group"])
    fig = answer_figures.plot_defect_accuracy(table)
    assert [ax.get_title() for ax in fig.axes] == ["by defect kind", "by defect region"]
    assert all("photo" in t.get_text() for t in fig.axes[0].get_yticklabels())
    assert any(list(line.get_xdata()) == [0.5, 0.5] for line in fig.axes[0].get_lines())  # the chance line
