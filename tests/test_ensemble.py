"""Ensemblers, specialist routing, the run folder round trip and the analysis helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from answer_fixtures import make_pairs_file
from idiff_lib.answer import model as am
from idiff_lib.answer import ensemble
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import make_pair, read_pairs

torch.set_num_threads(2)


def _probs(seed=0, n=200):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(float)
    sign = np.where(y > 0.5, 1.0, -1.0)
    good = 1 / (1 + np.exp(-(2.0 * sign + rng.normal(0, 1, n))))  # ~0.95 accurate
    fair = 1 / (1 + np.exp(-(0.6 * sign + rng.normal(0, 1, n))))  # ~0.7 accurate
    noise = rng.random(n)  # chance
    return np.column_stack([good, fair, noise]), y


@pytest.mark.parametrize("name", list(ensemble.ENSEMBLERS))
def test_ensemblers_are_swap_consistent(name):
    P, y = _probs()
    ens = ensemble.make_ensembler(name).fit(P, y)
    p = ens.predict(P)
    assert p.shape == (len(y),) and ((p >= 0) & (p <= 1)).all()
    assert np.allclose(ens.predict(1 - P), 1 - p, atol=1e-12)


def test_equal_weight_is_the_mean():
    P, y = _probs()
    assert np.allclose(ensemble.make_ensembler("mean").predict(P), P.mean(axis=1))


def test_weighted_and_stacking_favour_the_accurate_member():
    P, y = _probs(0)
    weighted = ensemble.make_ensembler("weighted").fit(P, y)
    assert weighted.weights[0] > weighted.weights[1] > weighted.weights[2]
    assert weighted.weights[2] < 0.1
    stacked = ensemble.make_ensembler("stacking").fit(P, y)
    assert stacked.coef[0] > abs(stacked.coef[2])
    P_test, y_test = _probs(1)
    scores = ensemble.compare_ensemblers(P, y, P_test, y_test)
    assert scores["stacking"] >= ensemble.accuracy(P_test[:, 1], y_test)
    assert scores["weighted"] > scores["mean"] - 0.02


def test_ensembler_state_round_trip():
    P, y = _probs()
    for name in ("weighted", "stacking"):
        fitted = ensemble.make_ensembler(name).fit(P, y)
        restored = ensemble.make_ensembler(name).load_state(fitted.state())
        assert np.array_equal(fitted.predict(P), restored.predict(P))


def test_unfitted_and_unknown_ensemblers_raise():
    with pytest.raises(ParameterError, match="Did you mean"):
        ensemble.make_ensembler("stacked")
    with pytest.raises(ParameterError, match="fitted"):
        ensemble.make_ensembler("weighted").predict(np.ones((2, 2)) / 2)


def test_bootstrap_and_accuracy_table():
    correct = np.array([1] * 80 + [0] * 20)
    lo, hi = ensemble.bootstrap_ci(correct)
    assert lo < 0.8 < hi and hi - lo < 0.2
    p = np.array([0.9, 0.2, 0.7, 0.4])
    y = np.array([1, 0, 0, 0])
    table = ensemble.accuracy_table(p, y, ["person", "person", "scene", "scene"])
    assert table["person"]["acc"] == 1.0 and table["scene"]["acc"] == 0.5 and table["overall"]["acc"] == 0.75
    assert table["overall"]["n"] == 4


def test_reliability_and_ece():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)  # calibrated by construction
    rows, ece = ensemble.reliability(p, y)
    assert ece < 0.02 and sum(r["n"] for r in rows) == 20000
    overconfident = np.where(p > 0.5, 0.999, 0.001)
    assert ensemble.reliability(overconfident, y)[1] > 0.15


def test_agreement_and_all_wrong():
    P, y = _probs()
    corr, agree = ensemble.agreement_matrix(P, ["a", "b", "c"])
    assert corr.shape == agree.shape == (3, 3) and np.allclose(np.diag(agree), 1)
    assert corr[0, 1] > corr[0, 2]
    wrong = ensemble.all_wrong(P, y)
    assert all(((P[i] > 0.5) != (y[i] > 0.5)).all() for i in wrong)


def test_category_routing_by_prefix_then_faces(tmp_path):
    pairs = read_pairs(make_pairs_file(tmp_path, n=2, side=256))
    assert [ensemble.pair_category(p) for p in pairs] == ["person", "scene"]
    anonymous = make_pair(pairs[0].image_refs, base_dir=tmp_path)
    anonymous.category = None
    assert ensemble.pair_category(anonymous) == "person"  # the astronaut's face is found
    scene = make_pair(pairs[1].image_refs, base_dir=tmp_path)
    scene.category = None
    assert ensemble.pair_category(scene) == "scene"


class _Const(torch.nn.Module):
    """A stand-in network whose p_left is a constant, to check the routing."""

    def __init__(self, value):
        super().__init__()
        self.cfg = am.MemberConfig(name="c", backbone="resnet10t", img_size=32, resize=32, local_resize=32)
        self.value = value
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.full((x.shape[0],), float(np.log(self.value / (1 - self.value))))


def test_specialists_are_routed_by_category(tmp_path):
    pairs = read_pairs(make_pairs_file(tmp_path, n=4, side=64))
    member = ensemble.NetworkMember("m", {"": _Const(0.5), "person": _Const(0.9), "scene": _Const(0.2)})
    cats = [ensemble.pair_category(p) for p in pairs]
    p = member.predict(pairs, cats, {})
    assert np.allclose(p, [0.9 if c == "person" else 0.2 for c in cats])
    generalist_only = ensemble.NetworkMember("g", {"": _Const(0.7), "person": _Const(0.9)})
    p = generalist_only.predict(pairs, cats, {})
    assert np.allclose(p, [0.9 if c == "person" else 0.7 for c in cats])


class _FakeFeatureMember:
    def predict_proba(self, table):
        return np.array([0.8 if pid.startswith("p_") else 0.3 for pid in table])


def test_run_round_trip_with_a_feature_member(tmp_path):
    pf = make_pairs_file(tmp_path / "d", n=4, side=64)
    pairs = read_pairs(pf)
    items = am.load_items(pairs, am.MemberConfig(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40))
    cfg = am.MemberConfig(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40, epochs=1,
                          batch_size=4, hidden=8)
    am.train_member(cfg, items, (), tmp_path / "run" / "members" / "m", progress=False)
    net = ensemble.network_member("m", {"": tmp_path / "run" / "members" / "m"})
    feat = ensemble.FeatureMemberAdapter(_FakeFeatureMember(), _ids)
    ens = ensemble.Ensemble([net, feat], ensemble.make_ensembler("mean"))
    rows = ensemble.predict_rows(ens, pairs)
    ensemble.save_run(tmp_path / "run", [net, feat], ens.ensembler)
    loaded = ensemble.load_run(tmp_path / "run")
    assert loaded.names == ["m", "features"]
    again = ensemble.predict_rows(loaded, pairs)
    assert [r["p_left"] for r in rows] == [r["p_left"] for r in again]
    assert all(r["members"]["features"] in (0.8, 0.3) for r in again)
    assert all(r["label"] in ("A", "B") for r in again)


def _ids(pairs):
    return [p.id for p in pairs]


def test_bad_pairs_are_reported_not_dropped(tmp_path):
    pf = make_pairs_file(tmp_path / "d", n=3, side=64)
    pairs = read_pairs(pf)
    (tmp_path / "d" / pairs[1].image_refs[0]).write_bytes(b"not an image")
    member = ensemble.NetworkMember("m", {"": _Const(0.6)})
    ens = ensemble.Ensemble([member], ensemble.make_ensembler("mean"))
    with pytest.raises(DataError, match="line 2"):
        ensemble.predict_rows(ens, pairs)
    rows = ensemble.predict_rows(ens, pairs, skip_bad=True)
    assert [r["id"] for r in rows] == [p.id for p in pairs]
    assert [r.get("error") is not None for r in rows] == [False, True, False]


def test_load_run_without_ensemble_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="notebook 02"):
        ensemble.load_run(tmp_path)
