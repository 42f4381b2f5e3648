"""Notebook 05's analyses: ladder files, self-check sets, confusion, correlations, figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from idiff_lib.report import ladder_plot
from idiff_lib.report import score_figures
from idiff_lib.scoring import system_scores
from idiff_lib.scoring import scorers
from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import make_pair

TEXTS = [
    ("Face Texture: Image A (Left) keeps fine pores, while Image B (Right) looks waxy.\n"
     "Global Noise: Image B (Right) shows more noise than Image A (Left).", "A"),
    ("Hair Sharpness: Image B (Right) renders sharper strands than Image A (Left).\n"
     "Clothing Texture: both images are similar.", "B"),
    ("Building Texture: Image A (Left) is crisper, whereas Image B (Right) is smeared.", "A"),
    ("Global Realism: Image B (Right) looks more natural than Image A (Left).", "B"),
]


def _refs():
    out = []
    for i, (text, ans) in enumerate(TEXTS):
        pid = f"{'s' if i == 2 else 'p'}_{i:03d}"
        out.append(make_pair([f"{pid}_merged_c0.jpg", f"{pid}_merged_c1.jpg"],
                             f"<thinking>\n{text}\n</thinking>\n<answer>{ans}</answer>"))
    return out


def test_self_check_sets_are_ceiling_and_deranged():
    refs = _refs()
    sets = system_scores.self_check_predictions(refs, seed=3)
    assert [r["completion"] for r in sets["self-check: references"]] == [r.completion for r in refs]
    shuffled = sets["self-check: shuffled"]
    assert all(row["completion"] != ref.completion for row, ref in zip(shuffled, refs))
    assert sorted(r["completion"] for r in shuffled) == sorted(r.completion for r in refs)
    with pytest.raises(DataError):
        system_scores.self_check_predictions(refs[:1])


def test_ladder_files_split_system_and_stage(tmp_path):
    for name in ("template_S0", "tiny_model_S4", "Qwen3-VL-8B-Instruct_S2", "nostage"):
        (tmp_path / f"{name}.jsonl").write_text("")
    found = {(s, st) for s, st, _ in system_scores.ladder_files(tmp_path)}
    assert found == {("template", "S0"), ("tiny_model", "S4"), ("Qwen3-VL-8B-Instruct", "S2")}
    assert system_scores.ladder_files(tmp_path / "absent") == []


def test_restrict_references_reports_what_is_left_out():
    refs = _refs()
    kept, left = system_scores.restrict_references(refs, [{"id": "p_000", "completion": ""}, {"id": "s_002", "completion": ""}])
    assert [r.id for r in kept] == ["p_000", "s_002"] and left == ["p_001", "p_003"]


def test_tables_and_figures_from_a_score():
    refs = _refs()
    preds = system_scores.self_check_predictions(refs, seed=0)["self-check: shuffled"]
    res = scorers.score(preds, refs, bootstrap=20)
    table = system_scores.best_and_worst(res, preds, refs, n=1)
    assert list(table["rank"]) == ["best", "worst"] and table["score"].iloc[0] >= table["score"].iloc[1]
    assert table["candidate"].str.len().min() > 0 and table["reference"].str.len().min() > 0
    conf = system_scores.verdict_confusion(res.aspects)
    assert list(conf.index) == ["A", "B", "similar", "mixed", "none"]
    assert conf.values.sum() == len(system_scores.matched_aspects(res.aspects))
    corr = system_scores.metric_correlations(res.per_sample)
    assert all(abs(v) <= 1 + 1e-9 for v in corr.values.ravel() if pd.notna(v))
    for fig in (score_figures.plot_distributions(res.per_sample), score_figures.plot_aspect_confusion(res.aspects),
                score_figures.plot_correlations(res.per_sample)):
        assert fig.axes
    row = system_scores.summary_row(res.metrics)
    assert row["n"] == 4 and 0 <= row["bleu4"] <= 1
    assert "not the challenge's" in row["combined_weights"] and "rouge_l 0.25" in row["combined_weights"]
    ladder = pd.DataFrame([{"system": "t", "stage": s, **row} for s in ("S0", "S1")])
    plot = ladder_plot.plot_ladder(ladder_plot.stage_ladder_panels(ladder))
    assert [p["x_order"] for p in plot.meta["panels"]] == [["S0", "S1"]] * len(plot.meta["panels"])


def test_attribute_agreement_counts_matched_aspects_only():
    aspects = pd.DataFrame([
        {"id": "a", "region": "face", "attribute": "texture", "ref_verdict": "A", "pred_verdict": "A"},
        {"id": "b", "region": "face", "attribute": "texture", "ref_verdict": "A", "pred_verdict": "B"},
        {"id": "c", "region": "hair", "attribute": "noise", "ref_verdict": "B", "pred_verdict": "B"},
        {"id": "d", "region": "hair", "attribute": "noise", "ref_verdict": "absent", "pred_verdict": "A"},
    ])
    agg = system_scores.attribute_agreement(aspects).set_index("attribute")
    assert agg.loc["texture", "matched"] == 2 and agg.loc["texture", "agreement"] == 0.5
    assert agg.loc["noise", "matched"] == 1 and agg.loc["noise", "agreement"] == 1.0
    assert system_scores.verdict_confusion(aspects).loc["A", "B"] == 1


def test_score_ladder_scores_each_file_against_its_references(tmp_path):
    refs = _refs()
    perfect = tmp_path / "template_S4.jsonl"
    storage_rows = [{"id": r.id, "completion": r.completion} for r in refs]
    perfect.write_text("".join(f"{__import__('json').dumps(r)}\n" for r in storage_rows))
    partial = tmp_path / "tiny_S0.jsonl"  # two pairs only, both answered wrongly with an empty rationale
    partial.write_text("".join(__import__("json").dumps({"id": r.id, "completion": "<thinking></thinking><answer>"
                                                          + ("B" if r.answer == "A" else "A") + "</answer>"}) + "\n"
                               for r in refs[:2]))
    ladder = system_scores.score_ladder(system_scores.ladder_files(tmp_path), refs, semantic=False, bootstrap=0)
    by = {(r["system"], r["stage"]): r for r in ladder.to_dict("records")}
    assert by[("template", "S4")]["n"] == 4 and by[("template", "S4")]["accuracy"] == 1.0
    assert by[("template", "S4")]["bleu4"] > 0.999
    assert by[("tiny", "S0")]["n"] == 2 and by[("tiny", "S0")]["accuracy"] == 0.0


def test_prediction_sets_prefer_step03_then_the_parameter_then_the_self_check(tmp_path):
    refs = _refs()
    rows = "".join(__import__("json").dumps({"id": r.id, "completion": r.completion}) + "\n" for r in refs)
    given = tmp_path / "given.jsonl"
    given.write_text(rows)
    systems, kept, source = system_scores.prediction_sets(tmp_path / "step03", refs, predictions=given)
    assert list(systems) == ["final"] and source.startswith("predictions parameter") and len(kept) == 4
    (tmp_path / "step03").mkdir()
    (tmp_path / "step03" / "predictions.jsonl").write_text(rows)
    _, _, source = system_scores.prediction_sets(tmp_path / "step03", refs, predictions=given)
    assert source.startswith("step 03")
    systems, kept, source = system_scores.prediction_sets(tmp_path / "none", refs, limit=3)
    assert source == system_scores.SELF_CHECK and len(kept) == 3 and set(systems) == {"self-check: references", "self-check: shuffled"}
    with pytest.raises(DataError, match="no predictions"):
        system_scores.prediction_sets(tmp_path / "none", refs, self_check=False)


def test_score_systems_reports_left_out_references():
    refs = _refs()
    systems = {"all": [{"id": r.id, "completion": r.completion} for r in refs],
               "half": [{"id": r.id, "completion": r.completion} for r in refs[:2]]}
    results, left_out = system_scores.score_systems(systems, refs, semantic=False, bootstrap=0)
    assert results["all"].metrics["n"] == 4 and results["half"].metrics["n"] == 2
    assert left_out == {"all": [], "half": [refs[2].id, refs[3].id]}


def test_training_loss_plot_has_one_panel_per_stage():
    fig = score_figures.plot_training_loss({"S0": {"loss_history": [(1, 2.0), (2, 1.5)]},
                                 "S1": {"loss_history": [(1, 1.4), (2, 1.2)]}}, title="tiny")
    assert [ax.get_title() for ax in fig.axes] == ["S0", "S1"]
    assert [list(ax.get_lines()[0].get_ydata()) for ax in fig.axes] == [[2.0, 1.5], [1.4, 1.2]]
    assert fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    five = score_figures.plot_training_loss({f"S{k}": {"loss_history": [(1, 1.0)]} for k in range(5)})
    assert [ax.get_title() for ax in five.axes] == [f"S{k}" for k in range(5)], "a grid, no empty panel"
    assert len({round(ax.get_position().y0, 3) for ax in five.axes}) == 2, "three panels to a row, then two"
