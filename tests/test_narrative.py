"""Issue 28: the narrative functions' claims agree with the numbers they are given. Settings and metrics
are shaped like the tiny run's (step 03's params.yaml and metrics.json, notebook 05's ladder_scores.csv,
the ladder's JSONL rows); each claim is checked against them, and against contradictory cases."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import format_completion
from idiff_lib.report import narrative
from idiff_lib.scoring import controls

PARAMS03 = {"stages": ["S0", "S1", "S2", "S3", "S4"], "ladder": "progressive", "s0_control": True, "grpo": True,
            "grpo_from_base": True, "grpo_prompts": 2}
METRICS03 = {"final_system": "tiny_S4", "s4_answer_source": "answer model (preds_test.jsonl) for 1 of 6 pairs",
             "grpo": {"run": True, "prompt_stage": "S3",
                      "train": {"GRPO from base": {"steps": 2}, "S4 + GRPO": {"steps": 2}},
                      "own_accuracy": [{"system": "GRPO from base", "accuracy": 0.25, "ci_low": 0.0, "ci_high": 0.5},
                                       {"system": "S4 + GRPO", "accuracy": 0.75, "ci_low": 0.6, "ci_high": 0.9}]}}


@pytest.mark.parametrize("value, low, high, floor, expected", [
    (0.62, 0.46, 0.77, 0.5, "within"),   # above by value, but chance is inside the interval
    (0.62, 0.55, 0.77, 0.5, "above"),
    (0.40, 0.30, 0.49, 0.5, "below"),
    (0.40, 0.30, 0.50, 0.5, "within"),   # an upper bound at the floor is not below it
    (0.60, None, None, 0.5, "above"),    # no interval: the value decides
    (0.60, math.nan, 0.7, 0.5, "above"),
    (0.50, None, None, 0.5, "within"),
])
def test_floor_position_follows_the_interval(value, low, high, floor, expected):
    assert narrative.floor_position(value, low, high, floor) == expected


def test_floor_claim_says_above_only_when_the_lower_bound_is():
    assert "lies above chance (0.50)" in narrative.floor_claim("x", 0.7, 0.55, 0.85, 0.5)
    within = narrative.floor_claim("x", 0.62, 0.46, 0.77, 0.5)
    assert "inside its 95% interval" in within and "above" not in within
    assert "lies below the shuffled-reference floor (0.41)" in narrative.floor_claim("x", 0.3, 0.2, 0.35, 0.41,
                                                                             "shuffled-reference floor")
    assert "no interval" in narrative.floor_claim("x", 0.3, None, None, 0.41, "floor")


def _rows(letters, source):
    return [{"id": f"p_{i}", "completion": format_completion("Global Overall: fine.", a), "answer_source": source}
            for i, a in enumerate(letters)]


def test_a_constant_answer_is_called_the_share_of_its_letter():
    counts = narrative.answer_counts(_rows("AAAA", "fallback"))
    assert counts == {"n": 4, "A": 4, "B": 0, "none": 0, "sources": {"fallback": 4}}
    s = narrative.answer_count_sentence("tiny S0", counts, 0.75, 0.75)
    assert "answers A for 4 of 4 pairs" in s and "share of A in the truth (0.75)" in s and "fallback" in s
    mixed = narrative.answer_counts(_rows("ABAB", "model"))
    s = narrative.answer_count_sentence("tiny S0", mixed, 0.5)
    assert "A for 2 and B for 2 of 4" in s and "share of" not in s and "the model's own" in s
    copied = narrative.answer_count_sentence("tiny S4", narrative.answer_counts(_rows("AB", "answer_model")), 1.0)
    assert controls.ACCURACY_COPIED_NOTE in copied and "own" not in copied


def _ladder_dir(tmp_path):
    folder = tmp_path / "ladder"
    folder.mkdir()
    for name, rows in {"tiny_S0": _rows("BBBB", "fallback"), "tiny_S4": _rows("ABBB", "answer_model"),
                       "GRPO from base_S3": _rows("BBBB", "fallback")}.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


TRUTH = {"p_0": "A", "p_1": "B", "p_2": "A", "p_3": "A"}
LADDER = pd.DataFrame([
    {"system": "tiny", "stage": "S0", "accuracy": 0.25, "accuracy_ci_low": 0.0, "accuracy_ci_high": 0.5,
     "rouge_l": 0.30, "rouge_l_ci_low": 0.25, "rouge_l_ci_high": 0.35, "bleu4": 0.1},
    {"system": "tiny", "stage": "S4", "accuracy": 0.75, "accuracy_ci_low": 0.55, "accuracy_ci_high": 1.0,
     "rouge_l": 0.45, "rouge_l_ci_low": 0.40, "rouge_l_ci_high": 0.50, "bleu4": 0.3},
    {"system": controls.FLOOR_SYSTEM, "stage": controls.FLOOR_STAGE, "accuracy": 0.625, "rouge_l": 0.38, "bleu4": 0.2},
])


def test_ladder_counts_and_sentences_from_the_files(tmp_path):
    counts = narrative.ladder_answer_counts(_ladder_dir(tmp_path), TRUTH)
    s0 = counts.set_index(["system", "stage"]).loc[("tiny", "S0")]
    assert s0["constant"] == "B" and s0["truth_share"] == 0.25 and s0["source: fallback"] == 4
    lines = narrative.ladder_accuracy_sentences(LADDER, counts, METRICS03["s4_answer_source"])
    assert len(lines) == 2, "one entry per ladder row, the floor row skipped"
    assert lines[0].startswith("tiny S0 answers B for 4 of 4 pairs") and "chance" not in lines[0]
    assert lines[1].startswith("tiny S4 answers A for 1 and B for 3 of 4 pairs")
    assert "copied from the prompt" in lines[1] and "1 of 6 pairs" in lines[1]
    assert "chance" not in lines[1], "an accuracy copied from the prompt is not praised against chance"
    # the same rows answered by the model itself: the sources first, then the claim against chance
    s4 = (counts["system"] == "tiny") & (counts["stage"] == "S4")
    own = counts.assign(**{"source: model": s4 * 4, "source: answer_model": 0})
    line = narrative.ladder_accuracy_sentences(LADDER, own)[1]
    assert line.index("the model's own") < line.index("lies above chance (0.50)")
    # with an interval that holds 0.5 it may not be called above chance
    wide = LADDER.assign(accuracy_ci_low=[0.0, 0.45, None])
    assert "lies above" not in narrative.ladder_accuracy_sentences(wide, own)[1]


def test_text_floor_sentence_counts_rows_by_their_interval():
    s = narrative.text_floor_sentence(LADDER, "rouge_l")
    assert s.startswith("1 of 2 ladder rows score above") and "whole 95% interval, 1 below" in s and "+0.070" in s
    touching = LADDER.assign(rouge_l_ci_low=[0.25, 0.37, None])
    assert narrative.text_floor_sentence(touching, "rouge_l").startswith("0 of 2"), "0.37 < 0.38: the floor is inside"
    assert "no interval" in narrative.text_floor_sentence(LADDER, "bleu4")
    assert narrative.text_floor_sentence(LADDER[LADDER["stage"] != controls.FLOOR_STAGE], "rouge_l") == ""


def test_thinking_run_sentence_says_what_ran():
    s = narrative.thinking_run_sentence(PARAMS03, METRICS03)
    assert "stage by stage" in s and "with an S0 control" in s and "GRPO from 2 start(s) on 2 train prompts" in s
    joint = narrative.thinking_run_sentence({**PARAMS03, "ladder": "joint", "s0_control": False, "grpo": False}, {})
    assert "one joint run" in joint and "without an S0 control" in joint and "no GRPO" in joint
    assert "stage by stage" not in joint
    assert "recorded no run" in narrative.thinking_run_sentence(PARAMS03, {"grpo": {"run": False}})


def test_grpo_sentences_name_a_constant_answer(tmp_path):
    counts = narrative.ladder_answer_counts(_ladder_dir(tmp_path), TRUTH)
    lines = narrative.grpo_sentences(METRICS03, counts)
    assert lines[0].startswith("GRPO from base answers B for 4 of 4 pairs") and "fallback" in lines[0]
    assert "lies above chance" in lines[1], "S4 + GRPO has no ladder file here: its interval [0.6, 0.9] decides"
    assert narrative.grpo_sentences({"grpo": {"run": False}}, counts) == []


def test_time_sentence_reads_the_latest_attempt():
    rows = [{"step": "03_tune_thinking_model", "status": "failed", "stopped_after_s": 60.0},
            {"step": "03_tune_thinking_model", "status": "ran", "wall_s": 3138.0, "machine": {"cores": 2}}]
    assert narrative.time_sentence(rows, "03_tune_thinking_model") == (
        "03_tune_thinking_model took 52.3 min of wall time (3,138 s) on 2 cores.")
    assert "interrupted after 1.0 min" in narrative.time_sentence([{"step": "s", "status": "interrupted",
                                                              "stopped_after_s": 60}], "s")
    assert "no recorded time" in narrative.time_sentence(rows, "05_score_rationales")


def test_what_this_shows_is_empty_when_the_result_did_not_run():
    assert narrative.what_this_shows("The floor ...", ran=False) == ""
    assert narrative.what_this_shows("The floor ...", ran=True).startswith("**What this shows.** The floor")


def test_reading_paragraph_and_markers(tmp_path):
    answer = pd.DataFrame([{"rung": r, "kind": k, "category": "overall", "accuracy": a, "ci_low": a - 0.1,
                            "ci_high": a + 0.1} for r, k, a in (("merged", "rung", 0.5), ("split", "rung", 0.66),
                                                               ("frozen", "teaching", 0.6),
                                                               ("split (no pretraining)", "ablation", 0.49))])
    counts = narrative.ladder_answer_counts(_ladder_dir(tmp_path), TRUTH)
    text = narrative.reading_paragraph(answer, LADDER, PARAMS03, METRICS03, counts, "tiny", 16)
    assert "split +0.160" in text and "frozen-features floor (0.60) is inside" in text
    assert "The ablation split (no pretraining) is 0.49 [0.39, 0.59]: chance (0.50) is inside" in text
    assert "stage by stage" in text and "one pair moves an accuracy by 0.062" in text
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- s -->\nold\n<!-- e -->\nb\n")
    narrative.write_between_markers(readme, "<!-- s -->", "<!-- e -->", text)
    assert readme.read_text() == f"a\n<!-- s -->\n{text}\n<!-- e -->\nb\n"
    with pytest.raises(DataError, match="markers"):
        narrative.write_between_markers(readme, "<!-- e -->", "<!-- s -->", "x")


def test_metrics_summary_rounds_and_names_missing_keys():
    assert narrative.metrics_summary({"a": 0.123456789, "b": {"x": 0.98765}}, ["a", "b"]) == "a: 0.123\nb: x 0.988"
    with pytest.raises(DataError, match="no \\['c'\\]"):
        narrative.metrics_summary({"a": 1}, ["c"])


def test_metrics_summary_rounds_inside_lists_and_times_are_said_in_words():
    assert narrative.metrics_summary({"ci": [0.6257862903225807, 0.8289473684210527], "n": [3, 4]}, ["ci", "n"]) == (
        "ci: [0.626, 0.829]\nn: [3, 4]")
    assert narrative.elapsed_sentence("02_train_answer_model", 3138.0) == \
        "02_train_answer_model took 52.3 min of wall time (3,138 s)."


def test_ladder_clause_is_shared_by_the_run_sentence():
    assert narrative.ladder_clause(PARAMS03) in narrative.thinking_run_sentence(PARAMS03, METRICS03)
    assert narrative.ladder_clause({"stages": ["S0"], "ladder": "joint"}).startswith("one joint run on the prompts of all 1")
