"""Issue 28: notebook 03's sentences follow its settings and its records: the plan (joint or stage by
stage, the control, GRPO), each training run's loss, the control's meaning in the ladder that ran, each
ladder row's accuracy interval from its own answers, and the GRPO rewards. The prompt ladder shows only
what each stage changes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from idiff_lib.data.pairs import format_completion
from idiff_lib.report import prompt_diff
from idiff_lib.report import thinking_narrative

PARAMS = {"stages": ["S0", "S1", "S2", "S3", "S4"], "ladder": "joint", "s0_control": False, "grpo": True,
          "grpo_from_base": False, "grpo_prompts": 2, "epochs_per_stage": 1}


def test_plan_sentence_says_what_the_settings_run():
    joint = thinking_narrative.thinking_plan_sentence(PARAMS)
    assert "one joint run on the prompts of all 5 stages" in joint and "without an S0 control" in joint
    assert "GRPO from the tuned S4 model, on 2 train prompts each" in joint and "stage by stage" not in joint
    prog = thinking_narrative.thinking_plan_sentence({**PARAMS, "ladder": "progressive", "s0_control": True, "grpo_from_base": True})
    assert "stage by stage" in prog and "with an S0 control" in prog and "and from the base model" in prog
    assert thinking_narrative.thinking_plan_sentence({**PARAMS, "grpo": False}).endswith("; no GRPO.")


def test_control_sentence_follows_the_ladder_mode():
    assert "every stage's rationales come from the same weights" in thinking_narrative.control_status_sentence(PARAMS)
    progressive = thinking_narrative.control_status_sentence({**PARAMS, "ladder": "progressive"})
    assert progressive.startswith("No S0 control ran") and "mixes the richer prompt with the longer training" in progressive
    assert "for 5 epochs" in thinking_narrative.control_status_sentence({**PARAMS, "ladder": "progressive", "s0_control": True})


def test_training_sentences_read_the_loss_histories():
    falling = {"steps": 3, "loss_history": [[1, 3.0], [2, 2.0], [3, 1.5]], "val_history": [[1, 2.5], [3, 2.0]],
               "best_step": 3}
    turned = {"steps": 3, "loss_history": [[1, 3.0], [3, 1.0]], "val_history": [[1, 2.0], [2, 1.8], [3, 1.9]]}
    lines = thinking_narrative.training_sentences({"joint": falling, "S1": turned, "S2": {"steps": 2, "loss_history": [[2, 1.0]]}})
    assert lines[0] == ("joint: 3 optimiser steps, training loss 3.00 → 1.50; val loss lowest (2.00) at step 3 of 3, "
                        "the weights kept (still falling at the last point).")
    assert "lowest (1.80) at step 2 of 3" in lines[1] and "still falling" not in lines[1]
    assert "no val loss measured" in lines[2]
    assert lines[3].startswith("1 of 2 runs' val loss was still falling"), "the run without val loss is not counted"


def test_accuracy_intervals_come_from_each_rows_answers(tmp_path):
    folder = tmp_path / "ladder"
    folder.mkdir()
    truth = {f"p{i}": a for i, a in enumerate("AABBAABB")}
    rows = [{"id": pid, "completion": format_completion("Global Overall: fine.", a)} for pid, a in truth.items()]
    (folder / "tiny_S4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # every answer right
    (folder / "tiny_S0.jsonl").write_text("".join(json.dumps({**r, "completion": format_completion("x", "A")}) + "\n"
                                                  for r in rows))
    ladder = pd.DataFrame([{"system": "tiny", "stage": "S0", "accuracy": 0.5},
                           {"system": "tiny", "stage": "S4", "accuracy": 1.0},
                           {"system": "tiny", "stage": "S1", "accuracy": 0.5}])  # no file: no interval
    clusters = {pid: f"photo{i // 2}" for i, pid in enumerate(truth)}
    out = thinking_narrative.with_accuracy_intervals(ladder, folder, truth, clusters, seed=0).set_index("stage")
    assert out.loc["S4", "accuracy_ci_low"] == out.loc["S4", "accuracy_ci_high"] == 1.0
    assert out.loc["S0", "accuracy_ci_low"] < 0.5 < out.loc["S0", "accuracy_ci_high"]
    assert pd.isna(out.loc["S1", "accuracy_ci_low"]) and "accuracy_ci_low" not in ladder, "the input is not changed"


def test_grpo_reward_sentences():
    history = [{"step": 1, "rewards/format/mean": 0.0, "rewards/accuracy/mean": 0.0, "frac_reward_zero_std": 1.0},
               {"step": 2, "rewards/format/mean": 0.5, "rewards/accuracy/mean": 0.25, "frac_reward_zero_std": 0.5},
               {"train_runtime": 3.0}]
    (line, none) = thinking_narrative.grpo_reward_sentences({"GRPO from base": history, "S4 + GRPO": []})
    assert line == ("GRPO from base: 2 steps, format reward 0.00 → 0.50, accuracy reward 0.00 → 0.25; on average 75% "
                    "of its groups had one reward for every completion (no signal).")
    assert none == "S4 + GRPO logged no reward."


def test_the_prompt_ladder_shows_what_each_stage_changes():
    stages = {"S0": "<image><image>\nCompare.\n", "S1": "<image><image>\nCompare.\n\nTemplate:\nFace Texture: ...",
              "S2": "<image><image>\nCompare.\n\nTemplate:\nFace Texture: ...\n\nCues:\n(not measured)",
              "S3": "<image><image>\nCompare.\n\nTemplate:\nFace Texture: ...\n\nCues:\nA is noisier"}
    changes = {c.stage: c for c in prompt_diff.stage_changes(stages)}
    assert changes["S1"].added == ("Template:", "Face Texture: ...") and changes["S1"].removed == ()
    assert changes["S3"].added == ("A is noisier",) and changes["S3"].removed == ("(not measured)",)
    text = prompt_diff.prompt_ladder_text(stages, {"S0": "baseline prompt"})
    assert text.splitlines()[:3] == ["== S0 (baseline prompt): the whole prompt ==", "<image><image>", "Compare."]
    assert text.count("Compare.") == 1 and "+ A is noisier" in text and "- (not measured)" in text
    same = prompt_diff.prompt_ladder_text({"S0": "a", "S1": "a\n\n"})
    assert same.endswith("(no change)") and prompt_diff.prompt_ladder_text({}) == ""


@pytest.mark.parametrize("profile", ["cpu", "paper", "tiny"])
def test_the_plan_of_every_profile_says_its_own_settings(profile):
    """What notebook 03 prints under its settings agrees with them, for each profile's settings."""
    from idiff_lib.thinking.thinking_settings import ThinkingSettings

    params = ThinkingSettings.for_profile(profile).as_dict()
    plan = thinking_narrative.thinking_plan_sentence(params)
    assert ("stage by stage" in plan) == (params["ladder"] == "progressive")
    assert ("one joint run" in plan) == (params["ladder"] == "joint")
    assert ("with an S0 control" in plan) == bool(params["s0_control"])
    assert ("no GRPO" in plan) == (not params["grpo"])
    assert ("from the base model" in plan) == bool(params["grpo"] and params["grpo_from_base"])
    control = thinking_narrative.control_status_sentence(params)
    assert control.startswith("No S0 control ran") != bool(params["s0_control"])


CONTROL_ROWS = [{"system": "tiny", "stage": s, "rouge_l": v, "rouge_l_ci_low": v - 0.05, "rouge_l_ci_high": v + 0.05}
                for s, v in (("S0", 0.30), ("S1", 0.35), ("S4", 0.50))]
CONTROL_ROWS.append({"system": "tiny-S0-5ep", "stage": "S0", "rouge_l": 0.35, "rouge_l_ci_low": 0.3, "rouge_l_ci_high": 0.4})


def test_control_sentence_splits_the_gain_only_outside_the_last_stages_interval():
    split = thinking_narrative.control_sentence(CONTROL_ROWS, "tiny", "tiny-S0-5ep")
    assert "S4 0.500 [0.450, 0.550]" in split and "training alone accounts for 25%" in split
    assert "whole 95% interval lies above the control" in split and "No interval" not in split
    near = [r if r["system"] != "tiny-S0-5ep" else {**r, "rouge_l": 0.47} for r in CONTROL_ROWS]
    inside = thinking_narrative.control_sentence(near, "tiny", "tiny-S0-5ep")
    assert "inside S4's 95% interval" in inside and "accounts for" not in inside, "0.47 lies in [0.45, 0.55]"
    wide = [{**r, "rouge_l_ci_low": 0.2} if r["stage"] == "S4" and r["system"] == "tiny" else r for r in CONTROL_ROWS]
    no_gain = thinking_narrative.control_sentence(wide, "tiny", "tiny-S0-5ep")
    assert "no gain to split: S0's value lies inside S4's 95% interval" in no_gain


def test_training_time_sentence_counts_sequences():
    runs = {"joint": {"steps": 20, "seconds": 280.0}, "S0 control": {"steps": 10, "seconds": 140.0}}
    assert thinking_narrative.training_time_sentence(runs, batch_size=4, grad_accum=1) == (
        "2 training run(s) took 420 s (val loss points included) for 30 optimiser steps of 4 sequences: "
        "3.5 s per training sequence here.")
    assert thinking_narrative.training_time_sentence({}, 4) == "No optimiser step ran."


def test_rouge_intervals_hold_the_rows_mean(tmp_path):
    from idiff_lib.thinking.decode.evaluation import score_completions
    from idiff_lib.data.pairs import make_pair

    refs = {f"p_{i}": f"Face Noise: Image A (Left) is cleaner.\nGlobal Overall: Image A is better{'.' * i}"
            for i in range(6)}
    folder = tmp_path / "ladder"
    folder.mkdir()
    rows = [{"id": pid, "completion": format_completion("Face Noise: Image A (Left) is cleaner." if i % 2 else "x", "A")}
            for i, pid in enumerate(refs)]
    (folder / "tiny_S1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = [make_pair([f"{pid}_merged_c0.jpg", f"{pid}_merged_c1.jpg"], format_completion(text, "A"))
             for pid, text in refs.items()]
    mean = score_completions({r["id"]: r["completion"] for r in rows}, pairs)["rouge_l"]
    ladder = pd.DataFrame([{"system": "tiny", "stage": "S1", "rouge_l": mean}, {"system": "tiny", "stage": "S2"}])
    out = thinking_narrative.with_rouge_intervals(ladder, folder, refs, {pid: f"photo{i // 3}" for i, pid in enumerate(refs)})
    assert out.loc[0, "rouge_l_ci_low"] - 1e-4 <= mean <= out.loc[0, "rouge_l_ci_high"] + 1e-4  # the row is rounded
    assert out.loc[0, "rouge_l_ci_low"] < out.loc[0, "rouge_l_ci_high"] and pd.isna(out.loc[1, "rouge_l_ci_low"])
