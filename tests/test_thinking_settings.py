"""Notebook 03's settings: defined once, the same for every profile, the notebook and ``idiff think train``."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from idiff_lib.core import layout, paths
from idiff_lib.core.errors import ParameterError
from idiff_lib.core.step_settings import PROFILES, profile_overlay
from idiff_lib.thinking.model.lora import LoraSettings
from idiff_lib.thinking.train.run import RunSettings, build_run_settings
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.model.tiny import TinySettings
from idiff_lib.thinking.train.training import TrainSettings

NOTEBOOK = paths.PROJ_ROOT / "notebooks" / f"{layout.THINKING_STEP}.ipynb"


def _cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("profile", PROFILES)
def test_settings_build_for_every_profile(profile):
    settings = ThinkingSettings.for_profile(profile)
    assert settings.STEP == layout.THINKING_STEP
    assert all(getattr(settings, k) == v for k, v in profile_overlay(layout.THINKING_STEP, profile).items())
    build_run_settings(settings, mixed_precision="no")


def test_the_yaml_holds_only_the_other_profiles():
    assert profile_overlay(layout.THINKING_STEP, "cpu") == {}


def test_notebook_builds_its_settings_and_sets_no_threads():
    code = ["".join(c["source"]) for c in _cells() if c["cell_type"] == "code"]
    assert "settings = ctx.settings" in code[1]
    assert not any("set_num_threads" in c for c in code)
    assert not any(".append(" in c and "= []" not in c for c in code), "a cell that appends must start its list"


def test_bad_values_are_refused_with_the_parameter_named(tmp_path):
    with pytest.raises(ParameterError, match="'stages'.*Did you mean"):
        ThinkingSettings.from_params({"stages": ["S0", "S5"]})
    with pytest.raises(ParameterError, match="answers_fallback"):
        ThinkingSettings.from_params({"answers_fallback": "oracle"})
    with pytest.raises(ParameterError, match="unknown parameter 'epochs'"):
        ThinkingSettings.from_params({"epochs": 2})
    with pytest.raises(ParameterError, match="'raim_dir'.*train_sft_1536.jsonl"):
        ThinkingSettings.from_params({"raim_dir": str(tmp_path)})


def test_run_settings_are_the_ones_notebook_03_built_by_hand():
    settings = ThinkingSettings()
    # The cpu profile (no GPU): the small VLM with LoRA, the processor's own image size.
    by_hand = RunSettings(
        model="small-vlm", lora=True, max_pixels=None, max_new_tokens=224, gen_batch_size=16, swap_augment=True,
        no_repeat_ngram_size=10,
        tiny=TinySettings(vocab_size=1200, hidden_size=160, layers=2, intermediate_size=480,
                          max_pixels=TinySettings.max_pixels, seed=0),
        lora_settings=LoraSettings(r=16, alpha=32, dropout=0.0),
        train=TrainSettings(epochs=1, batch_size=4, grad_accum=1, lr=0.002, seed=0, mixed_precision="no"),
    )
    assert build_run_settings(settings, mixed_precision="no") == by_hand


def _train_args(**overrides) -> argparse.Namespace:
    from idiff_lib import cli

    argv = ["think", "train", "--data", "d.jsonl", "--out", "run"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return cli.build_parser().parse_args(argv)


@pytest.mark.parametrize("overrides", [{}, {"max_pixels": 6272, "lora": True, "stage": "S1", "epochs": 2,
                                            "max_steps": 3, "mixed_precision": "bf16", "save_every": 5}])
def test_cli_train_settings_are_the_ones_it_built_by_hand(overrides):
    from idiff_lib.cli.think import train_settings_of

    args = _train_args(**overrides)
    # What `idiff think train` constructed before it went through build_run_settings.
    by_hand = RunSettings(model=args.model, stage=args.stage, lora=bool(args.lora), max_pixels=args.max_pixels,
                          train=TrainSettings(epochs=args.epochs or TrainSettings.epochs,
                                              batch_size=TrainSettings.batch_size, lr=TrainSettings.lr,
                                              max_steps=args.max_steps, save_every=args.save_every,
                                              mixed_precision=args.mixed_precision))
    assert train_settings_of(args) == by_hand
    assert by_hand.lora_settings == LoraSettings() and dataclasses.asdict(by_hand)["raim_dir"] == ""


@pytest.mark.parametrize("model", ["qwen3-vl-8b", "Qwen/Qwen3-VL-8B-Instruct"])
def test_cli_train_of_a_paper_model_defaults_to_the_paper_profile(model):
    from idiff_lib.cli.think import train_settings_of

    paper = ThinkingSettings.for_profile("paper")
    settings = train_settings_of(_train_args(model=model))
    assert settings.lora and settings.train.lr == paper.lr != TrainSettings.lr
    assert (settings.train.epochs, settings.train.batch_size, settings.max_pixels) == (
        paper.epochs_per_stage, paper.batch_size, paper.max_pixels)
    assert settings.max_new_tokens == paper.max_new_tokens
    explicit = train_settings_of(_train_args(model=model, lr=0.0005, no_lora=True))
    assert explicit.train.lr == 0.0005 and not explicit.lora  # a flag still wins


@pytest.mark.parametrize("name, tag", [("tiny", "tiny"), ("small-vlm", "small-vlm"),
                                       ("Qwen/Qwen3-VL-8B-Instruct", "Qwen3-VL-8B-Instruct"), ("/ckpt/run/final/", "final")])
def test_model_tag_names_the_model_in_the_ladders_rows(name, tag):
    assert ThinkingSettings(model_name=name).model_tag == tag

