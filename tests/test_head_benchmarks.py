"""benchmarks/answer_heldout.py and benchmarks/head_predict_speed.py on a tiny cache-first run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from answer_fixtures import make_pairs_file
from idiff_lib.answer.experiments import head_ladder
from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.answer.train.splits import load_splits

ROOT = Path(__file__).resolve().parents[1]


def _heldout_module():
    spec = importlib.util.spec_from_file_location("answer_heldout", ROOT / "benchmarks" / "answer_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heldout_degradations_grow_with_severity():
    heldout = _heldout_module()
    img = np.full((64, 64, 3), 128, np.uint8)
    img[:, 32:] = 200  # one edge, for the blur and sharpening kinds
    for kind in heldout.KINDS:
        weak = heldout.degrade(img, kind, 0.1, np.random.default_rng(1))
        strong = heldout.degrade(img, kind, 0.9, np.random.default_rng(1))
        assert weak.shape == img.shape and weak.dtype == np.uint8
        d_weak = np.abs(weak.astype(float) - img).mean()
        d_strong = np.abs(strong.astype(float) - img).mean()
        assert d_strong >= d_weak, kind


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for i, name in enumerate(("train", "val", "test")):
        make_pairs_file(folder, n=8, side=64, seed=i, name=f"{name}_sft.jsonl")
    out = tmp_path_factory.mktemp("step02")
    settings = AnswerSettings.from_params(dict(backbones=["resnet10t"], pretrained=False, feature_member=False,
                                               ensembler="mean", scratch_rows=[]))
    head_ladder.train_heads(settings, load_splits(folder), out, folder, cache_root=tmp_path_factory.mktemp("c"))
    return folder, out


def _run(script: str, args: list[str], tmp_path: Path) -> dict:
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IDIFF_PROGRESS": "off", "IDIFF_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--threads", "1", "--out", str(out)],
                   check=True, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    return json.loads(out.read_text())


def test_heldout_benchmark_scores_the_saved_run_on_new_photos(tiny_run, tmp_path):
    _, run = tiny_run
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    res = _run("answer_heldout.py", ["--run", str(run), "--photos", str(photos), "--pairs-per-photo", "3"], tmp_path)
    assert res["pairs"] == 6 and res["photos"] == ["p0.png", "p1.png"]
    assert 0 <= res["ensemble"]["acc"] <= 1 and res["ensemble"]["n"] == 6
    assert set(res["members"]) and sum(v["n"] for v in res["ensemble_by_kind"].values()) == 6


def test_head_predict_speed_times_cold_and_warm(tiny_run, tmp_path):
    data, run = tiny_run
    res = _run("head_predict_speed.py", ["--run", str(run), "--data", str(data / "test_sft.jsonl"), "--pairs", "4"],
               tmp_path)
    assert res["pairs"] == 4 and res["same_predictions_cold_warm"] is True
    assert res["cold_pairs_per_s"] > 0 and res["warm_pairs_per_s"] > 0 and res["warm_model_pairs_per_s"] > 0
