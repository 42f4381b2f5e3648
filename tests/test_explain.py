"""Grad-CAM of a member's difference logit (idiff_lib.answer.experiments.explain) on tiny untrained members."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from answer_fixtures import bare_member, make_pairs_file

from idiff_lib.answer.experiments import explain
from idiff_lib.answer.model.backbones import StatsPool
from idiff_lib.answer.experiments.ensemble import NetworkMember
from idiff_lib.answer.model.network import build_model
from idiff_lib.core.errors import ParameterError
from idiff_lib.data.pairs import read_pairs
from idiff_lib.report import answer_figures


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return read_pairs(make_pairs_file(tmp_path_factory.mktemp("cam"), n=2, side=96))


def _model(backbone: str = "resnet10t", size: int = 32, pooling: str = "avg", mode: str = "split"):
    torch.manual_seed(0)
    cfg = bare_member(name="t", backbone=backbone, img_size=size, resize=size + 8, local_resize=size + 8,
                      pooling=pooling, mode=mode, hidden=8, pretrained=False)
    return build_model(cfg)


@pytest.mark.parametrize("backbone,size,pooling", [("resnet10t", 32, "avg"), ("resnet10t", 64, "avg"),
                                                   ("efficientnet_lite0", 64, "stats")])
def test_grad_cam_has_the_views_shape_and_is_finite(pairs, backbone, size, pooling):
    model = _model(backbone, size, pooling)
    if pooling == "stats":
        assert isinstance(model.backbone, StatsPool)
    cam = explain.explain_pair(model, pairs[0])
    assert cam.views.shape == (4, size, size, 3) and cam.cams.shape == (4, size, size)
    assert np.isfinite(cam.cams).all() and cam.cams.min() >= 0 and cam.cams.max() <= 1 + 1e-6
    assert cam.cams.max() > 0.5  # not all zeros: each map is scaled to [0, 1] when it has any evidence
    assert cam.target == ("A" if cam.p_left > 0.5 else "B") and 0 < cam.p_left < 1


def test_target_layer_is_a_spatial_map_inside_the_backbone():
    for model in (_model("resnet10t", 32).eval(), _model("efficientnet_lite0", 64, "stats").eval()):
        layer = explain.cam_target_layer(model)
        assert any(layer is m for m in model.backbone.modules())
        seen = []
        h = layer.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out.shape))
        with torch.no_grad():
            model.backbone(torch.zeros(1, 3, model.cfg.img_size, model.cfg.img_size))
        h.remove()
        assert len(seen[-1]) == 4 and min(seen[-1][-2:]) >= 2


def test_the_two_answers_give_different_maps_and_bad_calls_raise(pairs):
    model = _model("resnet10t", 64)
    a, b = explain.explain_pair(model, pairs[1], "A"), explain.explain_pair(model, pairs[1], "B")
    assert a.target == "A" and b.target == "B" and not np.allclose(a.cams, b.cams)
    with pytest.raises(ParameterError, match="target"):
        explain.explain_pair(model, pairs[1], "left")
    with pytest.raises(ParameterError, match="split"):
        explain.explain_pair(_model(mode="merged"), pairs[1])
    with pytest.raises(ParameterError, match="no network member"):
        explain.first_network_member([object()])
    member = NetworkMember("t", {"": model})
    assert explain.first_network_member([object(), member]) is member


def test_cam_pair_indices_mix_right_and_wrong():
    p = np.array([0.9, 0.2, 0.6, 0.05, 0.55, 0.99])
    labels = np.array([1, 1, 1, 0, 0, 0], float)  # wrong: 1 (conf .3), 4 (.05), 5 (.49)
    assert explain.cam_pair_indices(p, labels, 4) == [5, 1, 3, 0]
    assert sorted(explain.cam_pair_indices(p, labels, 10)) == list(range(6))
    assert explain.cam_pair_indices(p[[0, 3]], labels[[0, 3]], 3) == [1, 0]  # only right answers, most confident first
    assert explain.cam_pair_indices(p, labels, 0) == []


def test_grad_cam_figure_rows(pairs):
    model = _model("resnet10t", 32)
    from dataclasses import replace

    cams = [explain.explain_pair(model, p) for p in pairs]
    assert [c.label for c in cams] == [p.answer for p in pairs]
    cams[0] = replace(cams[0], ensemble_p=0.7)
    fig = answer_figures.plot_grad_cams(cams)
    assert len(fig.axes) == 8 and fig.axes[0].get_title() == "global A"
    assert f"label {pairs[0].answer}" in fig.axes[0].get_ylabel() and "ensemble 0.70" in fig.axes[0].get_ylabel()
    assert "ensemble" not in fig.axes[4].get_ylabel()
    assert len(answer_figures.plot_grad_cams([]).axes) == 4


def test_cam_pairs_setting_is_validated():
    from idiff_lib.answer.answer_settings import AnalysisSettings

    AnalysisSettings(cam_pairs=0).validate()
    with pytest.raises(ParameterError, match="cam_pairs"):
        AnalysisSettings(cam_pairs=-1).validate()


def test_ordered_logit_matches_the_forward_pass_in_eval_mode():
    model = _model("resnet10t", 32).eval()
    views = torch.rand(3, 4, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(model.ordered_logit(views).numpy(), model(views).numpy(), atol=1e-4)


def test_cam_rows_put_the_worked_pair_first_once():
    p = np.array([0.9, 0.2, 0.6, 0.05, 0.55, 0.99])
    labels = np.array([1, 1, 1, 0, 0, 0], float)
    ids = ["a", "b", "c", "d", "e", "f"]
    assert explain.cam_rows(p, labels, 4, ids, "c") == [2, 5, 1, 3, 0]  # not among the four: one more row
    assert explain.cam_rows(p, labels, 4, ids, "d") == [3, 5, 1, 0]  # among them: moved to the front
    assert explain.cam_rows(p, labels, 4, ids, "zz") == [5, 1, 3, 0]  # not a test pair: nothing added
    assert explain.cam_rows(p, labels, 0, ids, "c") == []  # 0 pairs asked: none, the worked one included


def test_reliability_marks_the_worked_pair_at_its_confidence_on_the_right_edge():
    from types import SimpleNamespace

    from idiff_lib.answer.experiments import analysis

    run = SimpleNamespace(test_pairs=[SimpleNamespace(id="x"), SimpleNamespace(id="w")],
                          final_test=np.array([0.7, 0.2]), test_labels=np.array([1.0, 1.0]))
    assert analysis.worked_pair_point(run, "nope") is None
    mark = analysis.worked_pair_point(run, "w")
    assert mark == ("w", 0.2, 1.0)
    curves = {"ensemble": analysis.reliability(run.final_test, run.test_labels, 2)}
    fig = answer_figures.plot_reliability(curves, mark=mark)
    star = [line for line in fig.axes[0].get_lines() if line.get_marker() == "*"]
    assert len(star) == 1 and list(star[0].get_xdata()) == [0.8] and list(star[0].get_ydata()) == [0.0]  # B said, A true
    assert "worked pair w (wrong" in "".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert not [line for line in answer_figures.plot_reliability(curves).axes[0].get_lines() if line.get_marker() == "*"]
