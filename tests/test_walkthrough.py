"""One pair through a member (notebook 02's teaching section): shapes, the exact swap, p = sigmoid(logit), the figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from answer_fixtures import bare_member
from idiff_lib.answer.model import network  # noqa: E402
from idiff_lib.answer.experiments import walkthrough
from idiff_lib.answer.model.member_config import MemberConfig  # noqa: E402
from idiff_lib.core.errors import ParameterError  # noqa: E402
from idiff_lib.scoring.worked_pair import resolve_worked_pair  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def tiny(**kw) -> MemberConfig:
    return bare_member(**{**dict(name="t", backbone="resnet10t", img_size=32, resize=40, local_resize=40, hidden=8), **kw})


@pytest.fixture(scope="module")
def pair():
    return resolve_worked_pair(DEMO)


@pytest.fixture(scope="module")
def walk(pair):
    torch.manual_seed(0)
    model = network.build_model(tiny())
    for p in model.parameters():  # a head far from zero, so the logits are not all ~0
        p.data.add_(torch.randn_like(p) * 0.05)
    return walkthrough.walk_pair(model, pair)


def test_shapes_follow_the_network(walk, pair):
    d = walk.features.shape[1]
    assert walk.pair_id == pair.id
    assert walk.crops.shape == (4, 32, 32, 3) and walk.crops.dtype == np.uint8
    assert walk.features.shape == (4, d) and d == network.PairwiseModel(tiny()).global_head.mlp[0].in_features // 4
    for name in walkthrough.STREAMS:
        s = walk.streams[name]
        assert s.head_input.shape == (4 * d,)
        f_l, f_r = s.head_input[:d], s.head_input[d:2 * d]
        assert np.allclose(s.head_input[2 * d:3 * d], f_l - f_r) and np.allclose(s.head_input[3 * d:], np.abs(f_l - f_r))
        assert s.logit == pytest.approx(s.g_lr - s.g_rl, abs=1e-5)
    assert np.array_equal(walk.streams["global"].head_input[:d], walk.features[0])
    assert np.array_equal(walk.streams["local"].head_input[d:2 * d], walk.features[3])


def test_logit_sums_the_streams_swap_negates_and_p_is_its_sigmoid(walk):
    assert abs(walk.logit) > 1e-4
    assert walk.logit == pytest.approx(walk.streams["global"].logit + walk.streams["local"].logit, abs=1e-5)
    assert walk.swapped_logit == -walk.logit
    assert walk.p == pytest.approx(1 / (1 + np.exp(-walk.logit)), abs=1e-6)
    table = walk.summary()
    assert table["value"].iloc[-1] == walk.swapped_logit and len(table) == 2 + 4 * 2 + 3


def test_merged_member_is_refused(pair):
    with pytest.raises(ParameterError, match="split"):
        walkthrough.walk_pair(network.build_model(tiny(mode="merged")), pair)


def test_figure_draws_crops_features_and_logits(walk):
    from idiff_lib.report import answer_figures

    fig = answer_figures.plot_walkthrough(walk, dims=16)
    assert len(fig.axes) == 4 + 2 + 1
    assert [len(ax.lines) for ax in fig.axes[4:6]] == [3, 3]
    assert len(fig.axes[4].lines[0].get_xdata()) == 16
    assert "sigmoid" in fig.axes[6].get_title()


def test_untrained_member_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = walkthrough.untrained_member(tiny(seed=5)), walkthrough.untrained_member(tiny(seed=5))
    assert torch.equal(torch.get_rng_state(), before)
    assert not a.training
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = walkthrough.untrained_member(tiny(seed=6))
    assert not torch.equal(a.global_head.mlp[0].weight, c.global_head.mlp[0].weight)
