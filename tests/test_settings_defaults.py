"""Each settings default is defined once, read from the dataclasses themselves (no source is grepped).

- A step's settings and the objects built from them share settings (notebook 02's `AnswerSettings`
  and a member's `MemberConfig`; notebook 03's `ThinkingSettings` and a run's `TrainSettings`,
  `RunSettings`, `GrpoSettings`, `TinySettings`, `LoraSettings`). The step's class reads each shared
  default from the class that owns it, so the two cannot disagree; where they differ on purpose (the
  `idiff think train` command's own defaults for the tiny model, the paper's GRPO run) the pair is
  listed below with its reason.
- A profile overlay (``idiff_lib/configs/profiles/<step>.yaml``) changes only what differs from the
  defaults: a key that repeats its default would be a second place to keep in step.
"""

from __future__ import annotations

import dataclasses

import pytest

from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.chain.steps import STEP_SETTINGS
from idiff_lib.core.step_settings import PROFILES, profile_overlay
from idiff_lib.thinking.train.grpo_settings import GrpoSettings
from idiff_lib.thinking.model.lora import LoraSettings
from idiff_lib.thinking.train.run import RunSettings
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.model.tiny import TinySettings
from idiff_lib.thinking.train.training import TrainSettings

# (step settings, built object, prefix of the step's field names for the object's fields)
SHARED = [(AnswerSettings, MemberConfig, ""), (ThinkingSettings, TrainSettings, ""), (ThinkingSettings, RunSettings, ""),
          (ThinkingSettings, GrpoSettings, "grpo_"), (ThinkingSettings, TinySettings, "tiny_"),
          (ThinkingSettings, LoraSettings, "lora_")]
TINY_CLI = "`idiff think train`'s own default for the tiny model it trains by default, not notebook 03's"
DIFFERENT_BY_DESIGN = {
    ("TrainSettings", "batch_size"): TINY_CLI,
    ("TrainSettings", "max_steps"): "None and 0 both mean 'run the epochs' (the notebook's parameters take no None)",
    ("RunSettings", "lora"): TINY_CLI,
    ("RunSettings", "max_pixels"): "None and 0 both mean 'the processor's own budget'",
    ("RunSettings", "max_new_tokens"): TINY_CLI,
    ("RunSettings", "gen_batch_size"): TINY_CLI,
    ("RunSettings", "no_repeat_ngram_size"): TINY_CLI,
    ("RunSettings", "swap_augment"): TINY_CLI,
    ("TinySettings", "max_pixels"): "the tiny image processor's budget; notebook 03's 0 means 'the processor's own'",
    ("GrpoSettings", "prompts"): "the paper's GRPO run (GPU) against notebook 03's 3-minute cpu run",
    ("GrpoSettings", "max_completion_length"): "the paper's GRPO run (GPU) against notebook 03's 3-minute cpu run",
    ("GrpoSettings", "batch_size"): "the paper's GRPO run (GPU) against notebook 03's 3-minute cpu run",
    ("GrpoSettings", "save_steps"): "the paper's GRPO run (GPU) against notebook 03's 3-minute cpu run",
    ("LoraSettings", "dropout"): "the library's LoRA default; notebook 03's 20-step run trains without dropout",
}


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("step_cls, built_cls, prefix", SHARED, ids=lambda x: getattr(x, "__name__", x))
def test_a_setting_shared_by_two_dataclasses_has_one_default(step_cls, built_cls, prefix):
    step, built = _defaults(step_cls), _defaults(built_cls)
    shared = {name: prefix + name if prefix + name in step else name for name in built
              if prefix + name in step or (name in step and name == "seed")}
    assert shared, f"{step_cls.__name__} and {built_cls.__name__} share no setting: the pair is listed for nothing"
    differ = {name: (step[key], built[name]) for name, key in shared.items()
              if step[key] != built[name] and (built_cls.__name__, name) not in DIFFERENT_BY_DESIGN}
    assert not differ, (f"{step_cls.__name__} and {built_cls.__name__} disagree on {differ}: read the default from "
                        f"{built_cls.__name__} (one place), or list the difference in DIFFERENT_BY_DESIGN with its reason")


def test_every_difference_listed_by_design_is_real():
    for (cls_name, name), _ in DIFFERENT_BY_DESIGN.items():
        (step_cls, built_cls, prefix), = [s for s in SHARED if s[1].__name__ == cls_name]
        step = _defaults(step_cls)
        key = prefix + name if prefix + name in step else name
        assert step[key] != _defaults(built_cls)[name], f"{cls_name}.{name} agrees now: drop it from the list"


@pytest.mark.parametrize("step", sorted(STEP_SETTINGS))
def test_a_profile_overlay_changes_only_what_differs(step):
    defaults = _defaults(STEP_SETTINGS[step])
    for profile in PROFILES:
        overlay = profile_overlay(step, profile)
        unknown = sorted(set(overlay) - set(defaults))
        assert not unknown, f"{step} profile {profile}: keys that are no setting: {unknown}"
        repeated = sorted(k for k, v in overlay.items() if defaults[k] == v)
        assert not repeated, (f"{step} profile {profile} repeats the defaults of {repeated}: drop them from "
                              f"idiff_lib/configs/profiles/{step}.yaml (the default lives in the settings class)")
