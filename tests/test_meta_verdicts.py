"""Issue 17 item 5: rationale lines checked against the benchmark's ground truth (meta comparisons),
the ladder's verdict_accuracy / meta_coverage columns, Table B and notebook 03's teaching figure."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from idiff_lib.core import layout, paths
from idiff_lib.core.errors import DataError
from idiff_lib.data import meta as meta_mod  # alias: 'meta' names a comparison map here
from idiff_lib.data.datasets import load_split
from idiff_lib.data.pairs import format_completion, make_pair
from idiff_lib.report import html_report
from idiff_lib.report import score_figures
from idiff_lib.scoring import system_scores
from idiff_lib.scoring import controls, scorers
from idiff_lib.scoring import meta_verdicts
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.decode.evaluation import score_completions
from idiff_lib.thinking.decode.generation import ladder_stage

DEMO = paths.DEMO_DIR
COMPARISONS = [
    {"region": "Face", "attribute": "Texture", "verdict": "A", "strength": 0.3, "cause": "defocus"},
    {"region": "Global", "attribute": "Noise", "verdict": "B", "strength": 0.2, "cause": "luma_noise"},
    {"region": "Skin", "attribute": "Realism", "verdict": "B", "strength": 0.1, "cause": "oversmooth"},
    {"region": "Hair", "attribute": "Sharpness", "verdict": "similar", "strength": 0.0, "cause": "none"},
]
RIGHT = "Face Texture: Image A (Left) shows richer texture, while Image B (Right) looks blurred."
WRONG = "Global Noise: Image A (Left) is cleaner, while Image B (Right) shows heavy noise."
ABSENT = "Clothing Texture: Image A (Left) keeps the fabric detail, while Image B (Right) is smeared."
SIMILAR = "Hair Sharpness: Both images show similar sharpness in the hair."
FOLDED = "Face Realism: Image B (Right) looks more natural, while Image A (Left) appears plastic."
OVERALL = "Global Overall: Image A (Left) is better overall."


def _pair(pid: str, thinking: str, answer: str = "A"):
    return make_pair([f"{pid}_merged_c0.jpg", f"{pid}_merged_c1.jpg"], format_completion(thinking, answer))


# ------------------------------------------------------------------ one rationale, line by line
def test_comparison_verdicts_use_the_parsers_vocabulary():
    held = meta_verdicts.comparison_verdicts(COMPARISONS)
    assert held == {("face", "texture"): "A", ("global", "noise"): "B", ("skin", "realism"): "B",
                    ("hair", "sharpness"): "similar"}
    assert meta_verdicts.comparison_verdicts(None) == {}


@pytest.mark.parametrize("row, match", [
    ({"region": "Face", "attribute": "Texture"}, "lacks region, attribute or verdict"),
    ({"region": "Spaceship", "attribute": "Warp", "verdict": "A"}, "unknown region or attribute"),
])
def test_a_bad_comparison_is_a_data_error(row, match):
    with pytest.raises(DataError, match=match):
        meta_verdicts.comparison_verdicts([row])


def test_mark_lines_right_wrong_absent_similar_and_folded_skin():
    text = "\n".join([RIGHT, WRONG, ABSENT, SIMILAR, FOLDED, OVERALL, "no heading here"])
    marks = meta_verdicts.mark_lines(f"<thinking>{text}</thinking>\n<answer>A</answer>", COMPARISONS)
    assert [m.right for m in marks] == [True, False, None, True, True, None, None]
    assert marks[0].verdict == "A" and marks[0].meta_verdict == "A" and marks[0].region == "face"
    assert marks[1].verdict == "A" and marks[1].meta_verdict == "B"
    assert marks[2].meta_verdict is None and marks[2].meta_key is None
    assert marks[3].verdict == "similar" and marks[3].meta_verdict == "similar"
    assert marks[4].meta_key == ("skin", "realism"), "the template writes skin under Face"
    assert marks[6].region is None and marks[6].line == "no heading here"
    assert all(m.right is None for m in meta_verdicts.mark_lines(text, None)), "no ground truth: nothing judged"


def test_a_line_without_a_verdict_on_a_held_aspect_is_judged_wrong():
    (mark,) = meta_verdicts.mark_lines("Face Texture: the texture of the face.", COMPARISONS)
    assert mark.verdict is None and mark.right is False


def test_pair_counts_and_coverage_count_each_truth_aspect_once():
    counts = meta_verdicts.pair_counts("\n".join([RIGHT, RIGHT, WRONG, ABSENT, OVERALL]), COMPARISONS)
    assert counts == {"lines": 5, "judged": 3, "right": 2, "comparisons": 4, "covered": 2}


# ------------------------------------------------------------------ a set of rationales
def test_meta_verdict_scores_pool_over_pairs_and_skip_pairs_without_meta():
    meta = {"p_0": COMPARISONS, "p_1": COMPARISONS[:1]}
    out = meta_verdicts.meta_verdict_scores({"p_0": "\n".join([RIGHT, WRONG]), "p_1": RIGHT, "p_2": WRONG}, meta)
    assert out["verdict_accuracy"] == pytest.approx(2 / 3) and out["n_lines_judged"] == 3
    assert out["meta_coverage"] == pytest.approx(3 / 5) and out["pairs_with_meta"] == 2
    assert out["n_lines"] == 3, "p_2 has no ground truth: its line is not counted"
    none = meta_verdicts.meta_verdict_scores({"p_0": RIGHT}, None)
    assert none["verdict_accuracy"] is None and none["meta_coverage"] is None and none["pairs_with_meta"] == 0
    absent_only = meta_verdicts.meta_verdict_scores({"p_0": ABSENT}, meta)
    assert absent_only["verdict_accuracy"] is None and absent_only["meta_coverage"] == 0.0


def test_pick_pairs_puts_the_worked_pair_first_and_skips_pairs_without_meta():
    meta = {"a": COMPARISONS, "c": COMPARISONS, "d": COMPARISONS, "e": COMPARISONS}
    assert meta_verdicts.pick_pairs(["a", "b", "c", "d", "e"], meta, first="d") == ["d", "a", "c"]
    assert meta_verdicts.pick_pairs(["a", "b", "c"], meta, first="b", n=5) == ["a", "c"]
    assert meta_verdicts.pick_pairs(["a"], None) == []


def test_split_comparisons_reads_the_demo_and_is_empty_without_meta(tmp_path):
    demo = meta_mod.split_comparisons(DEMO, "test")
    assert len(demo) > 0 and all(rows and {"region", "attribute", "verdict"} <= set(rows[0]) for rows in demo.values())
    assert {c["verdict"] for rows in demo.values() for c in rows} <= {"A", "B", "similar"}
    assert meta_mod.split_comparisons(tmp_path, "test") == {}


# ------------------------------------------------------------------ scorers, ladder rows, the floor
def test_score_adds_the_meta_scorer_only_when_meta_is_given():
    refs = [_pair("p_0", "\n".join([RIGHT, OVERALL])), _pair("p_1", RIGHT)]
    preds = [{"id": "p_0", "completion": format_completion("\n".join([RIGHT, WRONG]), "A")},
             {"id": "p_1", "completion": format_completion(RIGHT, "A")}]
    with_meta = scorers.score(preds, refs, bootstrap=0, meta={"p_0": COMPARISONS})
    m = with_meta.metrics["meta_verdicts"]
    assert m["verdict_accuracy"] == 0.5 and m["meta_coverage"] == 0.5 and m["pairs_with_meta"] == 1
    per = with_meta.per_sample.set_index("id")
    assert per.loc["p_0", "meta_verdict_accuracy"] == 0.5 and math.isnan(per.loc["p_1", "meta_verdict_accuracy"])
    assert per.loc["p_0", "meta_lines_judged"] == 2 and per.loc["p_1", "meta_lines_judged"] == 0
    row = system_scores.summary_row(with_meta.metrics)
    assert row["verdict_accuracy"] == 0.5 and row["meta_coverage"] == 0.5
    without = scorers.score(preds, refs, bootstrap=0)
    assert "meta_verdicts" not in without.metrics and "meta_coverage" not in without.per_sample
    assert system_scores.summary_row(without.metrics)["verdict_accuracy"] is None


def test_score_gives_verdict_accuracy_and_coverage_intervals_resampling_photos_not_lines():
    refs = [_pair(f"p_{i}", RIGHT) for i in range(6)]
    meta = {r.id: COMPARISONS for r in refs}
    mixed = [{"id": r.id, "completion": format_completion("\n".join([RIGHT, WRONG] if i % 2 else [RIGHT]), "A")}
             for i, r in enumerate(refs)]
    m = scorers.score(mixed, refs, bootstrap=200, meta=meta).metrics["meta_verdicts"]
    assert m["verdict_accuracy"] == 6 / 9 and m["meta_coverage"] == 9 / 24  # 4 comparisons per pair
    assert m["verdict_accuracy_ci_low"] < m["verdict_accuracy"] < m["verdict_accuracy_ci_high"]
    assert m["meta_coverage_ci_low"] < m["meta_coverage"] < m["meta_coverage_ci_high"]
    # one photo for every pair: a single cluster, so every resample is the whole set and the interval is a point
    one_photo = scorers.score(mixed, refs, bootstrap=200, meta=meta, clusters={r.id: "photo" for r in refs})
    m1 = one_photo.metrics["meta_verdicts"]
    assert m1["verdict_accuracy_ci_low"] == m1["verdict_accuracy_ci_high"] == m1["verdict_accuracy"]
    right = [{"id": r.id, "completion": format_completion(RIGHT, "A")} for r in refs]
    m2 = scorers.score(right, refs, bootstrap=200, meta=meta).metrics["meta_verdicts"]
    assert m2["verdict_accuracy_ci_low"] == m2["verdict_accuracy_ci_high"] == 1.0


def test_score_completions_and_ladder_stage_report_the_two_columns(tmp_path):
    text = format_completion("\n".join([RIGHT, WRONG, OVERALL]), "A")
    refs = [make_pair([f"p_{i:03d}_merged_c0.jpg", f"p_{i:03d}_merged_c1.jpg"], text) for i in range(3)]
    meta = {r.id: COMPARISONS for r in refs}
    scored = score_completions({r.id: text for r in refs}, refs, meta=meta)
    assert scored["verdict_accuracy"] == 0.5 and scored["meta_coverage"] == 0.5
    plain = score_completions({r.id: text for r in refs}, refs)
    assert plain["verdict_accuracy"] is None and plain["meta_coverage"] is None
    assert score_completions({r.id: text for r in refs}, refs, meta={})["verdict_accuracy"] is None
    built = {p.id: prompts.build_prompt("S0", "person") for p in refs}
    row = ladder_stage("fixed", "S0", refs, built, tmp_path / "fixed_S0.jsonl",
                       lambda part, _p: [(text, {"raw_format_ok": True})] * len(part), progress=False, meta=meta)
    assert row["verdict_accuracy"] == 0.5 and row["meta_coverage"] == 0.5 and row["bleu4"] > 0.99


def test_the_floor_has_verdict_accuracy_near_chance_and_the_references_are_right():
    refs = list(load_split(DEMO, "test"))[:40]
    meta = meta_mod.split_comparisons(DEMO, "test")
    floor = system_scores.floor_row(refs, bootstrap=0, meta=meta)
    ceiling = meta_verdicts.meta_verdict_scores({r.id: r.thinking for r in refs}, meta)
    assert ceiling["verdict_accuracy"] == 1.0, "the demo references are written from the ground truth"
    assert 0.2 < floor["verdict_accuracy"] < 0.8 and floor["meta_coverage"] < ceiling["meta_coverage"]


def test_table_b_shows_the_truth_columns_and_a_dash_without_them(tmp_path):
    (tmp_path / layout.SCORING_STEP).mkdir()
    base = {"system": "tiny", "bleu4": 0.3, "rouge_l": 0.4, "aspect_f1": 0.5, "consistency": 0.9, "accuracy": 0.5,
            "accuracy_ci_low": 0.4, "accuracy_ci_high": 0.6, "wrong_side_rate": 0.0}
    rows = [{**base, "stage": "S0", "verdict_accuracy": 0.75, "meta_coverage": 0.5},
            {**base, "stage": "S1", "verdict_accuracy": None, "meta_coverage": None}]
    pd.DataFrame(rows).to_csv(tmp_path / layout.SCORING_STEP / layout.SCORING_LADDER_FILE, index=False)
    table = html_report.thinking_table(tmp_path)
    assert list(table["verdict acc. (truth)"]) == ["0.75", "–"] and list(table["truth coverage"]) == ["0.50", "–"]
    assert "truth coverage" in html_report.TABLE_B_NOTE


# ------------------------------------------------------------------ the teaching figure
def test_lines_vs_meta_figure_has_six_axes_per_pair_and_counts_in_the_titles():
    refs = list(load_split(DEMO, "test"))[:5]
    meta = meta_mod.split_comparisons(DEMO, "test")
    shown = meta_verdicts.pick_pairs([r.id for r in refs], meta, first=refs[2].id, n=3)
    by_id = {r.id: r for r in refs}
    generated = {r["id"]: r["completion"] for r in controls.shuffled_reference_predictions(refs)}
    del generated[shown[1]]
    fig = score_figures.plot_lines_vs_meta([by_id[i] for i in shown], generated, meta, label="tiny S4")
    assert len(fig.axes) == 18
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[4].startswith("tiny S4\n") and "judged lines right" in titles[4]
    ref = meta_verdicts.pair_counts(by_id[shown[0]].thinking, meta[shown[0]])
    assert f"{ref['judged']}/{ref['judged']} judged lines right" in titles[5], "the reference is right wherever judged"
    assert titles[10] == "tiny S4: (not generated)"
    colours = {t.get_color() for t in fig.axes[5].texts}
    assert colours <= {"#1b7837", "#7f7f7f"} and "#1b7837" in colours
    with pytest.raises(DataError, match="no pairs"):
        score_figures.plot_lines_vs_meta([], {}, meta)


def test_notebook_03_draws_the_figure_after_the_worked_pair_and_explains_it_only_when_drawn():
    """The reading under the lines-vs-truth figure is a code cell that shows it only when the figure was drawn
    (pairs with ground truth were `shown`); without ground truth nothing is said about a figure absent."""
    from types import SimpleNamespace

    from idiff_lib.report import narrative

    cells = json.loads((paths.PROJ_ROOT / "notebooks" / "03_tune_thinking_model.ipynb").read_text())["cells"]
    at = next(i for i, c in enumerate(cells) if "03_thinking_lines_vs_meta" in "".join(c["source"]))
    assert "shown = " in "".join(cells[at]["source"]), "the figure cell names the pairs it draws"
    reading = cells[at + 1]
    assert reading["cell_type"] == "code"
    for shown, expect_shown in (([], False), (["p_000"], True)):
        said = []
        stub = SimpleNamespace(what_this_shows=narrative.what_this_shows, show_markdown=said.append)
        exec("".join(reading["source"]), {"narrative": stub, "shown": shown})
        assert len(said) == 1 and bool(said[0]) == expect_shown
        assert not expect_shown or said[0].startswith("**What this shows.** Which claims of the last stage")
    worked = next(i for i, c in enumerate(cells) if "worked_pair_rationales(files" in "".join(c["source"]))
    assert at > worked
