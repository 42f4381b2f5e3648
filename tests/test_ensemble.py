"""Ensemblers, specialist routing, the run folder round trip and the analysis helpers."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from answer_fixtures import bare_member, make_pairs_file
from idiff_lib.answer.model import inputs
from idiff_lib.answer.experiments import analysis, ensemble, ensemblers, run_store
from idiff_lib.answer.train import training
from idiff_lib.answer.train.feature_member import FeatureMember
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import make_pair, read_pairs



def _probs(seed=0, n=200):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(float)
    sign = np.where(y > 0.5, 1.0, -1.0)
    good = 1 / (1 + np.exp(-(2.0 * sign + rng.normal(0, 1, n))))  # ~0.95 accurate
    fair = 1 / (1 + np.exp(-(0.6 * sign + rng.normal(0, 1, n))))  # ~0.7 accurate
    noise = rng.random(n)  # chance
    return np.column_stack([good, fair, noise]), y


@pytest.mark.parametrize("name", list(ensemblers.ENSEMBLERS))
def test_ensemblers_are_swap_consistent(name):
    P, y = _probs()
    ens = ensemblers.make_ensembler(name).fit(P, y)
    p = ens.predict(P)
    assert p.shape == (len(y),) and ((p >= 0) & (p <= 1)).all()
    assert np.allclose(ens.predict(1 - P), 1 - p, atol=1e-12)


def test_equal_weight_is_the_mean():
    P, y = _probs()
    assert np.allclose(ensemblers.make_ensembler("mean").predict(P), P.mean(axis=1))


def test_weighted_and_stacking_favour_the_accurate_member():
    P, y = _probs(0)
    weighted = ensemblers.make_ensembler("weighted").fit(P, y)
    assert weighted.weights[0] > weighted.weights[1] > weighted.weights[2]
    assert weighted.weights[2] < 0.1
    stacked = ensemblers.make_ensembler("stacking").fit(P, y)
    assert stacked.coef[0] > abs(stacked.coef[2])
    P_test, y_test = _probs(1)
    scores = analysis.compare_ensemblers(P, y, P_test, y_test)
    assert scores["stacking"] >= analysis.accuracy(P_test[:, 1], y_test)
    assert scores["weighted"] > scores["mean"] - 0.02


def test_ensembler_state_round_trip():
    P, y = _probs()
    for name in ("weighted", "stacking"):
        fitted = ensemblers.make_ensembler(name).fit(P, y)
        restored = ensemblers.make_ensembler(name).load_state(fitted.state())
        assert np.array_equal(fitted.predict(P), restored.predict(P))


def test_unfitted_and_unknown_ensemblers_raise():
    with pytest.raises(ParameterError, match="Did you mean"):
        ensemblers.make_ensembler("stacked")
    with pytest.raises(ParameterError, match="fitted"):
        ensemblers.make_ensembler("weighted").predict(np.ones((2, 2)) / 2)


def test_bootstrap_and_accuracy_table():
    correct = np.array([1] * 80 + [0] * 20)
    lo, hi = analysis.bootstrap_ci(correct)
    assert lo < 0.8 < hi and hi - lo < 0.2
    p = np.array([0.9, 0.2, 0.7, 0.4])
    y = np.array([1, 0, 0, 0])
    table = analysis.accuracy_table(p, y, ["person", "person", "scene", "scene"])
    assert table["person"]["acc"] == 1.0 and table["scene"]["acc"] == 0.5 and table["overall"]["acc"] == 0.75
    assert table["overall"]["n"] == 4


def test_reliability_and_ece():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)  # calibrated by construction
    rows, ece = analysis.reliability(p, y)
    assert ece < 0.02 and sum(r["n"] for r in rows) == 20000
    overconfident = np.where(p > 0.5, 0.999, 0.001)
    assert analysis.reliability(overconfident, y)[1] > 0.15


def test_agreement_and_all_wrong():
    P, y = _probs()
    corr, agree = analysis.agreement_matrix(P, ["a", "b", "c"])
    assert corr.shape == agree.shape == (3, 3) and np.allclose(np.diag(agree), 1)
    assert corr[0, 1] > corr[0, 2]
    wrong = analysis.all_wrong(P, y)
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
        self.cfg = bare_member(name="c", backbone="resnet10t", img_size=32, resize=32, local_resize=32)
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


def _id_table(pairs):
    """A one-column feature table: +1 for a person pair, -1 for a scene pair."""
    return pd.DataFrame({"person.diff": [1.0 if p.id.startswith("p_") else -1.0 for p in pairs]},
                        index=[p.id for p in pairs])


def _trained_run(tmp_path, monkeypatch):
    """A run folder with one network member and one feature member, and its pairs."""
    monkeypatch.setattr(run_store, "feature_table_builder", lambda name: {"ids": _id_table}[name])
    pf = make_pairs_file(tmp_path / "d", n=4, side=64)
    pairs = read_pairs(pf)
    items = inputs.load_items(pairs, bare_member(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40))
    cfg = bare_member(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40, epochs=1,
                      batch_size=4, hidden=8)
    training.train_member(cfg, items, (), tmp_path / "run" / "members" / "m", progress=False)
    net = ensemble.network_member("m", {"": tmp_path / "run" / "members" / "m"})
    table = _id_table(pairs)
    member = FeatureMember(kind="hgb", seed=0).fit(table, [p.answer for p in pairs])
    feat = ensemble.FeatureMemberAdapter(member, _id_table, table_name="ids")
    ens = ensemble.Ensemble([net, feat], ensemblers.make_ensembler("mean"))
    run_store.save_answer_run(tmp_path / "run", [net, feat], ens.ensembler)
    return ens, pairs


def test_run_round_trip_with_a_feature_member(tmp_path, monkeypatch):
    ens, pairs = _trained_run(tmp_path, monkeypatch)
    rows = ensemble.predict_rows(ens, pairs)
    loaded = run_store.load_answer_run(tmp_path / "run")
    assert loaded.names == ["m", "features"]
    again = ensemble.predict_rows(loaded, pairs)
    assert [r["p_left"] for r in rows] == [r["p_left"] for r in again]
    assert [r["members"] for r in rows] == [r["members"] for r in again]
    assert all(r["label"] in ("A", "B") for r in again)
    spec = json.loads((tmp_path / "run" / "ensemble.json").read_text())
    assert [m["kind"] for m in spec["members"]] == ["network", "feature_member"]
    assert spec["members"][1]["class"] == "FeatureMember" and spec["members"][1]["weights"].endswith(".skops")
    assert spec["members"][0]["models"][""]["settings"]["backbone"] == "resnet10t"


def test_an_old_pickled_run_is_refused_without_unpickling(tmp_path, monkeypatch):
    _trained_run(tmp_path, monkeypatch)
    run = tmp_path / "run"
    (run / "members" / "features.pkl").write_bytes(pickle.dumps(_RunsCode(str(tmp_path / "ran"))))
    old = {"members": [{"name": "m", "kind": "network", "dirs": {"": "members/m"}},
                       {"name": "features", "kind": "pickle", "path": "members/features.pkl"}],
           "ensembler": {"name": "mean", "state": {}}}
    (run / "ensemble.json").write_text(json.dumps(old))
    with pytest.raises(DataError, match=r"ensemble\.json.*older version.*features\.pkl(.|\n)*idiff run --only 02_train_answer_model"):
        run_store.load_answer_run(run)
    old["members"] = old["members"][:1]  # no serialised member, but a spec of the old layout
    (run / "ensemble.json").write_text(json.dumps(old))
    with pytest.raises(DataError, match=r"ensemble\.json.*older version.*'format'"):
        run_store.load_answer_run(run)
    old["format"] = run_store.RUN_FORMAT  # the new version number on an old member entry
    (run / "ensemble.json").write_text(json.dumps(old))
    with pytest.raises(DataError, match="member 'm' lacks backbone, models"):
        run_store.load_answer_run(run)
    assert not (tmp_path / "ran").exists()


def test_a_crafted_feature_member_file_is_refused(tmp_path, monkeypatch):
    _trained_run(tmp_path, monkeypatch)
    target = tmp_path / "run" / "members" / "features.skops"
    target.write_bytes(pickle.dumps(_RunsCode(str(tmp_path / "ran"))))
    with pytest.raises(DataError, match=r"features\.skops.*cannot be read"):
        run_store.load_answer_run(tmp_path / "run")
    assert not (tmp_path / "ran").exists()


def test_a_truncated_network_weights_file_is_named(tmp_path, monkeypatch):
    _trained_run(tmp_path, monkeypatch)
    best = tmp_path / "run" / "members" / "m" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"best\.pt.*cannot be read(.|\n)*02_train_answer_model"):
        run_store.load_answer_run(tmp_path / "run")


class _RunsCode:
    """Unpickling this object would create a file: a stand-in for a crafted member."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_bad_pairs_are_reported_not_dropped(tmp_path):
    pf = make_pairs_file(tmp_path / "d", n=3, side=64)
    pairs = read_pairs(pf)
    (tmp_path / "d" / pairs[1].image_refs[0]).write_bytes(b"not an image")
    member = ensemble.NetworkMember("m", {"": _Const(0.6)})
    ens = ensemble.Ensemble([member], ensemblers.make_ensembler("mean"))
    with pytest.raises(DataError, match="line 2"):
        ensemble.predict_rows(ens, pairs)
    rows = ensemble.predict_rows(ens, pairs, skip_bad=True)
    assert [r["id"] for r in rows] == [p.id for p in pairs]
    assert [r.get("error") is not None for r in rows] == [False, True, False]


def test_load_run_without_ensemble_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="notebook 02"):
        run_store.load_answer_run(tmp_path)


def test_ensembler_table_gives_each_accuracy_with_a_photo_interval(tmp_path):
    """Notebook 04's comparison: the same accuracies as compare_ensemblers, an interval over photos around each."""
    from types import SimpleNamespace

    P, y = _probs(0)
    P_test, y_test = _probs(1)
    names = [f"m{i}" for i in range(P.shape[1])]
    pairs = [SimpleNamespace(id=f"p{i}") for i in range(len(y_test))]
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "test.jsonl").write_text(  # four photos: pairs cut from one photo resample together
        "\n".join(json.dumps({"id": p.id, "photo": f"photo{i % 4}"}) for i, p in enumerate(pairs)) + "\n")
    run = SimpleNamespace(names=names, val_probs=pd.DataFrame(P, columns=names), val_labels=y,
                          test_probs=pd.DataFrame(P_test, columns=names), test_labels=y_test, test_pairs=pairs)
    table = analysis.ensembler_table(run, tmp_path)
    scores = analysis.compare_ensemblers(P, y, P_test, y_test)
    ens = table[table["kind"] == "ensemble"].set_index("name")
    assert ens["acc"].to_dict() == pytest.approx(scores)
    members = table[table["kind"] == "member"].set_index("name")["acc"]
    assert members.to_dict() == pytest.approx({n: analysis.accuracy(P_test[:, i], y_test) for i, n in enumerate(names)})
    assert ((table["lo"] <= table["acc"]) & (table["acc"] <= table["hi"])).all() and (table["n"] == len(y_test)).all()
    photos = [f"photo{i % 4}" for i in range(len(y_test))]
    over_photos = analysis.bootstrap_ci((P_test[:, 0] > 0.5) == (y_test > 0.5), clusters=photos)
    assert tuple(table.loc[table["name"] == "m0", ["lo", "hi"]].iloc[0]) == pytest.approx(over_photos)
