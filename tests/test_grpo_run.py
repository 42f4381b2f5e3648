"""Notebook 03's GRPO step: prompts without the answer, resumable TRL runs, own accuracy, reward curves, settings."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pytest
import torch

from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists here
from idiff_lib.report.score_figures import GRPO_CURVES, plot_grpo_rewards
from idiff_lib.thinking.train import grpo_rows, grpo_run, grpo_settings
from idiff_lib.thinking.thinking_settings import ThinkingSettings

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture(scope="module")
def train_pairs():
    return pairs_mod.read_pairs(DEMO / "train_sft.jsonl", limit=10)


# --------------------------------------------------------------------------- prompts
def test_grpo_prompts_are_s3_without_train_predictions_and_never_hold_the_answer(tmp_path, train_pairs):
    rows, stage, note = grpo_run.grpo_train_rows(train_pairs, tmp_path)
    assert stage == "S3" and "preds_train.jsonl missing" in note
    assert len(rows) == len(train_pairs) and grpo_rows.label_leaks(rows) == []
    assert all(grpo_rows.prompt_verdict(r) is None and "<image>" not in grpo_rows.prompt_text(r) for r in rows)
    assert all(r["solution"][-18:] not in grpo_rows.prompt_text(r) for r in rows)  # no "<answer>X</answer>"
    grpo_rows.check_grpo_rows(rows)


def test_answer_aware_grpo_prompts_take_the_answer_models_train_verdicts(tmp_path, train_pairs):
    predicted = {p.id: "A" for p in train_pairs[:8]}  # an Answer Model saying A; the last two pairs unpredicted
    (tmp_path / grpo_run.TRAIN_PREDICTIONS_FILE).write_text(
        "".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in predicted.items()))
    rows, stage, _ = grpo_run.grpo_train_rows(train_pairs, tmp_path)
    assert stage == "S4" and [r["id"] for r in rows] == list(predicted)  # no pair gets its label instead
    assert [grpo_rows.prompt_verdict(r) for r in rows] == ["A"] * 8
    labels = [p.answer for p in train_pairs[:8]]
    assert set(labels) == {"A", "B"} and grpo_rows.label_leaks(rows) == []


def test_grpo_rows_refuse_an_unlabeled_pair(train_pairs):
    pair = pairs_mod.Pair(**{**train_pairs[0].__dict__, "answer": None})
    with pytest.raises(DataError, match="unlabeled"):
        grpo_run.grpo_rows([pair], {})


# --------------------------------------------------------------------------- settings
def test_thinking_settings_build_the_grpo_settings():
    cpu = ThinkingSettings().grpo_settings()
    assert (cpu.prompts, cpu.num_generations, cpu.batch_size, cpu.beta, cpu.temperature) == (2, 4, 8, 0.04, 0.9)  # one step of two prompts x 4 generations
    assert cpu.max_completion_length == 200 and cpu.lora
    paper = ThinkingSettings.for_profile("paper").grpo_settings()
    assert (paper.prompts, paper.max_completion_length, paper.lr, paper.epochs) == (0, 512, 1e-6, 10)
    tiny = ThinkingSettings.for_profile("tiny").grpo_settings()
    assert tiny.max_steps == 2 and tiny.max_completion_length <= 16 and not tiny.lora
    with pytest.raises(ParameterError, match="grpo_num_generations must be at least 2"):
        ThinkingSettings(grpo_num_generations=1).validate()
    with pytest.raises(ParameterError, match="grpo_batch_size .6. must be a multiple of num_generations"):
        ThinkingSettings(grpo_batch_size=6).validate()
    with pytest.raises(ParameterError, match="'grpo_prompts' must be >= 0"):
        ThinkingSettings(grpo_prompts=-1).validate()


# --------------------------------------------------------------------------- own accuracy, curves
def test_own_accuracy_scores_the_written_answer_beside_the_answer_model(tmp_path, train_pairs):
    pairs = train_pairs[:6]
    right = tmp_path / "right_S3.jsonl"
    right.write_text("".join(json.dumps({"id": p.id, "completion": p.completion}) + "\n" for p in pairs))
    flipped = tmp_path / "wrong_S3.jsonl"
    flipped.write_text("".join(json.dumps({"id": p.id, "completion": pairs_mod.format_completion(
        p.thinking, "B" if p.answer == "A" else "A")}) + "\n" for p in pairs))
    preds = tmp_path / "preds_test.jsonl"
    preds.write_text("".join(json.dumps({"id": p.id, "answer": p.answer if i < 3 else "AB".replace(p.answer, "")})
                             + "\n" for i, p in enumerate(pairs)))
    table = grpo_run.own_accuracy({"right": right, "wrong": flipped}, pairs, {p.id: p.id for p in pairs}, preds)
    acc = dict(zip(table["system"], table["accuracy"]))
    assert acc == {"right": 1.0, "wrong": 0.0, "Answer Model": 0.5}
    row = table.set_index("system").loc["Answer Model"]
    assert row["ci_low"] <= 0.5 <= row["ci_high"] and row["n"] == 6


def test_reward_curves_plot_one_line_per_run_and_skip_the_summary_entry():
    history = [{"step": 1, "rewards/accuracy/mean": 0.25, "rewards/format/mean": 0.5, "kl": 0.0},
               {"step": 2, "rewards/accuracy/mean": 0.5, "rewards/format/mean": 1.0, "kl": 0.01},
               {"step": 2, "train_runtime": 3.0}]
    fig = plot_grpo_rewards({"GRPO from base": history, "S4 + GRPO": history[:1]})
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(GRPO_CURVES.values())
    assert [len(line.get_xdata()) for line in axes[0].get_lines()] == [2, 1]
    assert list(axes[1].get_lines()[0].get_ydata()) == [0.5, 1.0]


def test_read_log_history_names_a_run_without_one(tmp_path):
    with pytest.raises(DataError, match="no GRPO log history"):
        grpo_run.read_log_history(tmp_path)


def test_last_checkpoint_orders_by_step_number(tmp_path):
    assert grpo_run.last_checkpoint(tmp_path) is None
    for n in (2, 10, 9):
        (tmp_path / f"checkpoint-{n}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert grpo_run.last_checkpoint(tmp_path).name == "checkpoint-10"


# --------------------------------------------------------------------------- resumable TRL runs (tiny model)
class _Killed(RuntimeError):
    pass


def _kill_after_first_save(monkeypatch):
    """Make the next GRPO trainer die right after it writes its first checkpoint (a kill mid-training)."""
    from transformers import TrainerCallback

    real = grpo_run.grpo_trainer

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise _Killed(f"killed at step {state.global_step}")

    def killing(*args, **kwargs):
        trainer = real(*args, **kwargs)
        trainer.add_callback(Kill())
        return trainer

    monkeypatch.setattr(grpo_run, "grpo_trainer", killing)


@pytest.mark.slow
def test_a_killed_grpo_run_resumes_from_its_checkpoint_and_a_finished_one_is_not_retrained(tmp_path, train_pairs,
                                                                                           monkeypatch):
    pytest.importorskip("trl")
    from idiff_lib.thinking.train.run import build_run_settings, load_thinking_run

    thinking = ThinkingSettings.for_profile("tiny")
    run_settings = build_run_settings(thinking, stage="S3")
    rows, _, _ = grpo_run.grpo_train_rows(train_pairs[:4], tmp_path)
    settings = grpo_settings.GrpoSettings(prompts=4, num_generations=2, batch_size=2, max_completion_length=6, max_steps=3,
                                 save_steps=1, lora=False)
    kwargs = dict(base_dir=tmp_path / "model" / "S0", vocabulary=_vocabulary(train_pairs),
                  corpus_pairs=train_pairs, report_to=[])
    out = tmp_path / "grpo" / "base"
    _kill_after_first_save(monkeypatch)
    with pytest.raises(_Killed):
        grpo_run.train_grpo_run(out, rows, run_settings, settings, **kwargs)
    assert (out / "checkpoint-1").is_dir() and not (out / "final").exists()
    monkeypatch.undo()
    # Mark the checkpoint's weights: the resumed run must go on from them, not from its starting model.
    # (The random tiny model's rewards are all 0 here, so GRPO's loss and gradients are 0: weights stay put.)
    from transformers import AutoModelForImageTextToText

    marked = AutoModelForImageTextToText.from_pretrained(out / "checkpoint-1")
    with torch.no_grad():
        marked.lm_head.weight.add_(1.0)
    marked.save_pretrained(out / "checkpoint-1")
    result = grpo_run.train_grpo_run(out, rows, run_settings, settings, **kwargs)
    assert result["resumed_from"] == "checkpoint-1" and result["steps"] == 3
    assert all((out / f"checkpoint-{n}").is_dir() for n in (1, 2, 3))  # trained work is never deleted
    final = AutoModelForImageTextToText.from_pretrained(out / "final")
    assert torch.allclose(final.lm_head.weight, marked.lm_head.weight)
    history = grpo_run.read_log_history(out)
    assert [h["step"] for h in history if "rewards/accuracy/mean" in h] == [1, 2, 3]  # step 1 from the checkpoint
    assert all("kl" in h and "rewards/format/mean" in h for h in history if "rewards/accuracy/mean" in h)
    # A finished run is not retrained: the trainer is never built again.
    monkeypatch.setattr(grpo_run, "grpo_trainer", lambda *a, **k: pytest.fail("a finished run was retrained"))
    assert grpo_run.train_grpo_run(out, rows, run_settings, settings, **kwargs) == result
    monkeypatch.undo()
    # S4 + GRPO: from a trained run's final folder, here with LoRA adapters on the tiny model.
    s4 = tmp_path / "grpo" / "s4"
    lora = grpo_settings.GrpoSettings(**{**settings.__dict__, "lora": True, "lora_r": 2, "lora_alpha": 4, "max_steps": 1})
    assert grpo_run.train_grpo_run(s4, rows, run_settings, lora, init_from=out / "final", **kwargs)["steps"] == 1
    assert (s4 / "final" / "adapter_config.json").exists()  # a full start: its adapter is saved alone
    model, processor, loaded, _ = load_thinking_run(s4)
    assert loaded.stage == "S3" and model is not None and processor is not None
    # From a LoRA run: its adapter is merged first (the KL reference is that start), the result saved merged.
    again = tmp_path / "grpo" / "from_lora"
    assert grpo_run.train_grpo_run(again, rows, run_settings, lora, init_from=s4 / "final", **kwargs)["steps"] == 1
    assert not (again / "final" / "adapter_config.json").exists() and (again / "final" / "config.json").exists()
    assert load_thinking_run(again)[2].stage == "S3"


def _vocabulary(train_pairs):
    from idiff_lib.thinking.prompting import prompts

    return prompts.load_vocabulary(train_pairs)
