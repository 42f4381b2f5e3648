"""The cpu profile's member options: stats pooling, frozen early stages, a larger step for the heads."""

from __future__ import annotations

import pytest
import torch

from answer_fixtures import bare_member
from idiff_lib.answer.train import training
from idiff_lib.answer.model.backbones import StatsPool, create_backbone, feature_dim, freeze_stages
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.model.network import build_model
from idiff_lib.core.errors import ParameterError


def _cfg(**kw) -> MemberConfig:
    return bare_member(**{"name": "m", "backbone": "efficientnet_lite0", "img_size": 32, "resize": 32, **kw})


def test_stats_pooling_gives_mean_and_std_of_four_stages():
    backbone = create_backbone(_cfg(pooling="stats"))
    assert isinstance(backbone, StatsPool)
    channels = backbone.features.feature_info.channels()
    assert len(channels) == 4 and feature_dim(backbone) == 2 * sum(channels)
    x = torch.rand(3, 3, 32, 32)
    out = backbone(x)
    assert out.shape == (3, feature_dim(backbone)) and torch.isfinite(out).all()
    first = backbone.features(x)[0]
    assert torch.allclose(out[:, :channels[0]], first.mean((2, 3)), atol=1e-6)
    assert (out[:, channels[0]:2 * channels[0]] > 0).all(), "a std is positive"


@pytest.mark.parametrize("pooling", ["avg", "stats"])
def test_frozen_stages_stop_after_the_named_stage(pooling):
    model = build_model(_cfg(pooling=pooling, frozen_stages=2))
    names = [(n.split("backbone.", 1)[1].removeprefix("features."), p.requires_grad)
             for n, p in model.named_parameters() if n.startswith("backbone.")]
    frozen = [n for n, g in names if not g]
    assert frozen[0].startswith("conv_stem") and all(n.startswith(("conv_stem", "bn1", "blocks.0", "blocks.1")) for n in frozen)
    assert any(n.startswith("blocks.1") for n in frozen) and any(g for n, g in names if n.startswith("blocks.2"))
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("backbone."))


def test_too_many_frozen_stages_are_refused():
    with pytest.raises(ParameterError, match="frozen_stages=9.*at most 5"):
        freeze_stages(create_backbone(_cfg()), 9)
    with pytest.raises(ParameterError, match="pooling 'stat' is not one of"):
        _cfg(pooling="stat")
    with pytest.raises(ParameterError, match="head_lr_mult"):
        _cfg(head_lr_mult=0)


def test_heads_get_a_larger_step_only_when_asked():
    run = training._start(_cfg(frozen_stages=1, head_lr_mult=10.0, epochs=1), 8, None, torch.device("cpu"))
    backbone_group, head_group = run.optimizer.param_groups
    assert head_group["lr"] == pytest.approx(10 * backbone_group["lr"])
    n_trainable = sum(1 for p in run.model.parameters() if p.requires_grad)
    assert len(backbone_group["params"]) + len(head_group["params"]) == n_trainable
    plain = training._start(_cfg(epochs=1), 8, None, torch.device("cpu"))
    assert len(plain.optimizer.param_groups) == 1, "one group keeps older checkpoints resumable"
