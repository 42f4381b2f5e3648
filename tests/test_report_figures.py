"""Issue 19's figure fixes: readable ladder labels, legends off the bars, curves in panels with the chance
loss, the cue glossary, person and scene pairs in the face check, and headings as fractions of rationales."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from idiff_lib.data.pairs import read_pairs
from idiff_lib.features import pair_cues
from idiff_lib.features.table import cue_glossary
from idiff_lib.report import answer_figures
from idiff_lib.report import (
    explore,
    ladder_plot,
)
from idiff_lib.report import html_report


def _ladder() -> pd.DataFrame:
    rows = []
    for i, name in enumerate(["merged", "split", "specialists", "ensemble", "specialists (no pretraining)"]):
        row = {"row": name, "kind": "rung" if i < 4 else "ablation"}
        for g in ("person", "scene", "overall"):
            row.update({f"{g}_acc": 0.5 + 0.05 * i, f"{g}_lo": 0.45 + 0.05 * i, f"{g}_hi": 0.55 + 0.05 * i})
        rows.append(row)
    return pd.DataFrame(rows)


def _overlaps(labels) -> bool:
    boxes = [t.get_window_extent() for t in labels if t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_answer_ladder_tick_labels_do_not_overlap():
    fig = ladder_plot.plot_ladder(ladder_plot.answer_ladder_panels(ladder_plot.answer_ladder_long(_ladder())),
                                  orient="h").figure
    fig.canvas.draw()
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[-1] == "specialists (no pretraining) [ablation]" and not _overlaps(ax.get_yticklabels())


def _ensembler_table(accs: dict[str, float], members: dict[str, float], n: int = 48) -> pd.DataFrame:
    rows = [{"kind": kind, "name": k, "acc": v, "lo": v - 0.1, "hi": min(1.0, v + 0.1), "n": n}
            for kind, group in (("ensemble", accs), ("member", members)) for k, v in group.items()]
    return pd.DataFrame(rows)


def test_ensemble_legend_sits_off_the_bars():
    fig = answer_figures.plot_ensemblers(_ensembler_table({"equal": 0.6, "stacked": 0.7}, {"resnet10t": 0.5, "features": 0.7}))
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1


def test_ensemble_bars_start_at_zero_with_chance_and_intervals_and_labels_apart():
    """Issue 28: 04's ensemble comparison had no intervals and overlapping labels."""
    names = {"equal": 0.6, "weighted": 0.62, "stacked": 0.7}
    members = {"tf_efficientnet_lite0_views": 0.55, "resnet10t (random) features": 0.5, "feature member": 0.66}
    fig = answer_figures.plot_ensemblers(_ensembler_table(names, members))
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == 0 and any(np.allclose(line.get_xdata(), 0.5) for line in ax.get_lines())
    whiskers = [c for c in ax.collections if c.get_segments()]
    assert len(whiskers) == len(names) + len(members)
    assert "48 pairs" in ax.get_xlabel()
    assert not _overlaps(ax.get_yticklabels())


def test_training_curves_one_panel_per_member_with_the_chance_loss():
    curves = pd.DataFrame([{"member": m, "epoch": e, "metric": k, "value": v}
                           for m in ("a", "b", "c") for e in (1, 2)
                           for k, v in (("train_loss", 0.7), ("val_loss", 0.69), ("train_acc", 0.5), ("val_acc", 0.5))])
    fig = answer_figures.plot_curves(curves)
    assert len(fig.axes) == 6 and [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    loss_axis = fig.axes[0]
    assert any(np.allclose(line.get_ydata(), math.log(2)) for line in loss_axis.get_lines())


def test_training_curves_of_many_members_wrap_onto_a_grid():
    """Issue 28: 11 members were 11 panels in one 3,454-px row; they now wrap, `CURVE_COLUMNS` to a row."""
    names = [f"m{k}" for k in range(11)]
    curves = pd.DataFrame([{"member": m, "epoch": 1, "metric": k, "value": 0.6} for m in names
                           for k in ("train_loss", "val_loss", "train_acc", "val_acc")])
    fig = answer_figures.plot_curves(curves)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == names and len(fig.axes) == 2 * len(names), "no empty panel left"
    assert fig.get_size_inches()[0] < 13 and len({round(ax.get_position().y0, 3) for ax in titled}) == 3


def test_every_pair_cue_has_a_glossary_line_and_the_figure_shows_it():
    table = cue_glossary(pair_cues.columns() + ["cv.lap_var.global.diff", "made.up.global.diff"])
    assert (table["meaning"].iloc[:-1] != "").all() and table["meaning"].iloc[-1] == ""
    assert set(pair_cues.GLOSSARY) == set(pair_cues.NAMES)
    assert table.loc[0, "view"] == "global view" and "Laplacian" in table["meaning"].iloc[-2]
    frame = pd.DataFrame({"feature": ["pair.y_mean_shift.global.diff", "pair.y1_gain_edges.local.diff"],
                          "importance": [0.1, 0.2], "std": [0.01, 0.02]})
    fig = answer_figures.plot_importances(frame)
    text = "\n".join(t.get_text() for t in fig.texts)
    assert pair_cues.GLOSSARY["y_mean_shift"] in text and pair_cues.GLOSSARY["y1_gain_edges"] in text


def test_views_and_face_check_take_person_and_scene_pairs(pair_folder):
    pairs = read_pairs(pair_folder / "pairs.jsonl")  # p_000, p_001, s_000: person first
    assert [p.category for p in explore.balanced_pairs(pairs, 2)] == ["person", "scene"]
    check = explore.face_detector_check(pairs, limit=2)
    assert check["n"] == 2 and check["by_category"]["scene"]["n"] == 1 and check["by_category"]["person"]["n"] == 1
    fig = explore.plot_views(pairs, n=2)
    assert "(scene)" in fig.axes[4].get_ylabel()


def test_heading_fractions_count_rationales_and_add_raim_when_present(pair_folder, tmp_path):
    pairs = read_pairs(pair_folder / "pairs.jsonl")
    alone = explore.heading_fractions(pairs, raim=None)
    assert "raim_fraction" not in alone
    row = alone.set_index("heading").loc["Global Overall"]
    assert row["rationales"] == 3 and row["of"] == 3 and row["fraction"] == 1.0
    raim = tmp_path / "raim"
    raim.mkdir()
    lines = (pair_folder / "pairs.jsonl").read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    content = edited[0]["messages"][-1]["content"]
    edited[0]["messages"][-1]["content"] = content.replace("Global Overall", "Hair Texture")
    (raim / "train_sft_1536.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edited))
    both = explore.heading_fractions(pairs, raim=raim).set_index("heading")
    assert both.loc["Global Overall", "raim_rationales"] == 2 and both.loc["Global Overall", "raim_of"] == 3
    assert both.loc["Hair Texture", "rationales"] == 0 and both.loc["Hair Texture", "raim_fraction"] == pytest.approx(1 / 3)
    fig = explore.plot_heading_fractions(both.reset_index())
    assert len(fig.axes[0].containers) == 2


def test_heading_fractions_from_committed_counts(pair_folder):
    pairs = read_pairs(pair_folder / "pairs.jsonl")
    table = explore.heading_fractions(pairs, raim_counts={"Global Overall": 1, "Hair Texture": 4}, raim_total=10)
    table = table.set_index("heading")
    assert table.loc["Global Overall", "raim_fraction"] == pytest.approx(0.1)
    assert table.loc["Hair Texture", "rationales"] == 0 and table.loc["Hair Texture", "raim_of"] == 10
    assert "raim_fraction" not in explore.heading_fractions(pairs, raim_counts={"Hair Texture": 4}, raim_total=0)


def test_heading_fraction_sentence_reads_the_table(pair_folder):
    pairs = read_pairs(pair_folder / "pairs.jsonl")
    table = explore.heading_fractions(pairs, raim_counts={"Global Overall": 1, "Hair Texture": 4}, raim_total=10)
    here = int((table["rationales"] > 0).sum())
    first = table["heading"] == "Global Overall"  # one of the headings every rationale here holds, first
    s = explore.heading_fraction_sentence(table.iloc[list(first[first].index) + list(first[~first].index)],
                                          raim_upper_bound=True)
    assert s.startswith("The most frequent heading here, Global Overall, is in 100% of 3 rationales")
    assert "at most 10% of the 10 public RAIM-PIQA ones" in s
    assert s.endswith(f"this data uses {here} distinct headings, the public rationales 2.")
    alone = explore.heading_fraction_sentence(explore.heading_fractions(pairs))
    assert "public" not in alone and alone.endswith("of 3 rationales.")


def test_committed_vocabulary_records_how_many_rationales_it_counted():
    from idiff_lib.core.vocabulary import mine_vocabulary, raim_vocabulary

    assert raim_vocabulary().n_texts == 100  # the committed counts come from the 100 public rationales
    mined = mine_vocabulary([("person", "Face Noise: A is cleaner."), ("scene", "Global Overall: B.")])
    assert mined.n_texts == 2 and mined.plus(mined).n_texts == 4


def test_html_report_names_its_own_step_this_report(tmp_path):
    run = tmp_path / "run"
    (run / "05_score_rationales").mkdir(parents=True)
    (run / "05_score_rationales" / "step.json").write_text(json.dumps({"seconds": 3}))
    (run / "06_report_figures").mkdir()
    index = html_report.build_html_report(run, run / "06_report_figures" / "html")
    text = index.read_text()
    assert "this report" in text and "not finished" not in text


def test_worked_pair_defects_shown_one_view_pixel_per_screen_pixel_with_the_face_marked(pair_folder):
    from matplotlib.patches import Rectangle

    from idiff_lib.data.views import load_views

    pair = read_pairs(pair_folder / "pairs.jsonl")[0]
    views = load_views(pair)
    gh, gw = views.global_left.shape[:2]
    meta = {"work_size": [gw * 2, gh * 2], "detail_box": [10, 20, 60], "faces": [[20, 30, 40, 40]],
            "defects_a": [{"kind": "oversharpen", "severity": 0.409, "region": "face"}],
            "defects_b": [{"kind": "defocus", "severity": 0.72, "region": "global"}],
            "shared": [{"kind": "luma_noise", "severity": 0.314, "region": "global"}]}
    fig = explore.plot_defects_1to1(pair, meta, dpi=100)
    width, height = fig.get_size_inches() * 100
    for ax, img in zip(fig.axes, (views.global_left, views.global_right, views.local_left, views.local_right)):
        x0, y0, w, h = ax.get_position().bounds
        assert abs(w * width - img.shape[1]) < 0.5 and abs(h * height - img.shape[0]) < 0.5  # 1:1
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0] == "A (left): oversharpen 0.41 on face\nluma noise 0.31 on global (both)"
    assert titles[1].startswith("B (right): defocus 0.72 on global")
    boxes = [[p for p in ax.patches if isinstance(p, Rectangle)] for ax in fig.axes]
    assert [len(b) for b in boxes] == [2, 1, 1, 0]  # detail box on both globals, the face only on A (its defect)
    face_a = boxes[2][0]  # detail coordinates: (face - detail origin) x view pixels / detail size
    scale = views.local_left.shape[1] / 60
    assert abs(face_a.get_x() - 10 * scale) < 1e-6 and abs(face_a.get_width() - 40 * scale) < 1e-6

    bare = explore.plot_defects_1to1(pair, None, dpi=100)
    assert not any(ax.patches for ax in bare.axes) and "not known" in bare.axes[0].get_title(loc="left")
