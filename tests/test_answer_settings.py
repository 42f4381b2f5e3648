"""Notebook 02's and 04's settings: one definition, every profile builds, members are built from them."""

from __future__ import annotations


import pytest

from idiff_lib.answer.answer_settings import AnalysisSettings, AnswerSettings
from idiff_lib.core import layout
from idiff_lib.core.errors import ParameterError
from idiff_lib.core.step_settings import PROFILES


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("cls", [AnswerSettings, AnalysisSettings])
def test_every_profile_builds_valid_settings(cls, profile):
    settings = cls.for_profile(profile)
    overlay = cls.profile_overlay(profile)
    assert all(getattr(settings, k) == v for k, v in overlay.items())
    if profile == "cpu":
        assert settings == cls()


def test_profiles_hold_the_values_the_chain_ran_with():
    cpu, paper, tiny = (AnswerSettings.for_profile(p) for p in ("cpu", "paper", "tiny"))
    assert cpu.backbones == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert (cpu.pretrained, cpu.pretext_steps, cpu.pooling, cpu.frozen_stages, cpu.lr) == (True, 0, "stats", 2, 1e-4)
    assert (cpu.threads, cpu.feature_synthetic_pairs, cpu.scratch_rows, cpu.frozen_row) == (2, 1000, ["split"], True)
    assert (cpu.method, paper.method, tiny.method) == ("heads", "finetune", "heads")
    assert paper.backbones == ["wide_resnet50_2", "efficientnet_b2", "convnext_small", "swinv2_small", "maxvit_tiny"]
    assert (paper.pretrained, paper.ensembler, paper.specialist_epochs, paper.threads) == (True, "mean", 3, 16)
    assert (paper.pooling, paper.frozen_stages, paper.scratch_rows, paper.frozen_row) == ("avg", 0, [], False)
    assert (tiny.img_size, tiny.max_pairs, tiny.pretext_steps, tiny.pretrained) == (32, 8, 2, False)
    assert AnalysisSettings.for_profile("tiny").importance_repeats == 1


def test_members_are_built_from_the_settings():
    s = AnswerSettings(lr=0.003, hidden=64, dropout=0.2, warmup_frac=0.1, swap_aug=False, synthetic_pairs=5)
    general = s.member("resnet10t")
    assert (general.lr, general.hidden, general.dropout, general.warmup_frac, general.swap_aug) == (0.003, 64, 0.2, 0.1, False)
    assert general.synthetic_pairs == 5 and general.epochs == s.epochs
    spec = s.member("resnet10t", category="scene", init="g/best.pt")
    assert spec.lr == 0.003 / 3 and spec.epochs == s.specialist_epochs and spec.synthetic_pairs == 0
    assert spec.name == "resnet10t_scene"
    pretrained = AnswerSettings(frozen_stages=2)
    assert (pretrained.member("efficientnet_lite0").pretrained, pretrained.member("efficientnet_lite0").frozen_stages) == (True, 2)
    scratch = pretrained.member("efficientnet_lite0", suffix="scratch", scratch=True)
    assert (scratch.name, scratch.pretrained, scratch.frozen_stages) == ("efficientnet_lite0_scratch", False, 0)


def test_bad_values_are_refused_with_the_parameter_named():
    with pytest.raises(ParameterError, match="pretext_step"):
        AnswerSettings.from_params({"pretext_step": 3})
    with pytest.raises(ParameterError, match="hidden"):
        AnswerSettings.from_params({"hidden": "wide"})
    with pytest.raises(ParameterError, match="bins"):
        AnalysisSettings.from_params({"bins": 0})
    assert AnswerSettings.STEP == layout.ANSWER_STEP and AnalysisSettings.STEP == layout.ANALYSIS_STEP


def test_step02_file_names_agree_with_the_run_layout():
    from idiff_lib.answer.experiments.analysis import PREDICTIONS_FILE

    assert PREDICTIONS_FILE.format(split="test") == layout.TEST_PREDICTIONS_FILE
