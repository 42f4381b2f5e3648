"""The cache-first Answer Model: the feature cache, antisymmetric heads, the head ladder, its saved run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from answer_fixtures import make_pairs_file
from idiff_lib.answer.model import feature_cache, heads
from idiff_lib.answer.experiments import explain, head_ladder, run_store
from idiff_lib.answer.train import aspects, head_member
from idiff_lib.answer.experiments.ensemble import predict_rows
from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.answer.train.splits import load_splits
from idiff_lib.core import paths
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import read_pairs

ROOT = Path(__file__).resolve().parents[1]

KINDS = ("luma_noise", "defocus")
TINY = dict(backbones=["resnet10t"], pretrained=False, feature_member=False, ensembler="mean", scratch_rows=[])


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own feature cache folder (the default one of `feature_cache`)."""
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")
    return tmp_path / "cache"


def _write_meta(folder, split: str, n: int) -> None:
    """A ``meta/<split>.jsonl`` like the benchmark's: the noisy side carries luma noise."""
    rows = []
    for line in (folder / f"{split}_sft.jsonl").read_text().splitlines():
        rec = json.loads(line)
        pid = rec["images"][0].split("/")[-1].split("_merged_")[0]
        answer = rec["messages"][-1]["content"].split("<answer>")[1][0]
        noisy, clean = ("defects_b", "defects_a") if answer == "A" else ("defects_a", "defects_b")
        rows.append({"id": pid, "photo": pid, "category": "person" if pid.startswith("p") else "scene",
                     "answer": answer, noisy: [{"kind": "luma_noise", "severity": 0.6, "region": "global"}],
                     clean: [], "shared": [],
                     "comparisons": [{"region": "Global", "attribute": "Noise", "verdict": answer, "strength": 0.5,
                                      "cause": "luma_noise"}]})
    (folder / "meta").mkdir(exist_ok=True)
    (folder / "meta" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for i, name in enumerate(("train", "val", "test")):
        n = 16 if name == "train" else 8
        make_pairs_file(folder, n=n, side=64, seed=i, name=f"{name}_sft.jsonl")
        _write_meta(folder, name, n)
    return folder


def test_a_view_is_computed_once_and_read_back_by_its_pixels(cache_dir):
    fb = feature_cache.FrozenBackbone("resnet10t", pretrained=False, seed=1)
    img = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    first = feature_cache.FeatureCache(fb, cache_dir)
    a = first.view(img)
    assert a.shape == (fb.dim,) and first.computed == 1
    second = feature_cache.FeatureCache(fb, cache_dir)  # a new run: from disk, nothing computed
    assert np.array_equal(second.view(img), a) and second.computed == 0
    other = img.copy()
    other[0, 0] ^= 1  # one pixel changed: another key
    assert second.view(other).shape == a.shape and second.computed == 1


def test_other_weights_or_stages_use_another_folder(cache_dir):
    a = feature_cache.FrozenBackbone("resnet10t", pretrained=False, seed=1)
    b = feature_cache.FrozenBackbone("resnet10t", pretrained=False, seed=2)
    c = feature_cache.FrozenBackbone("resnet10t", pretrained=False, seed=1, short_side=32)
    assert a.digest != b.digest and len({a.tag, b.tag, c.tag}) == 3
    assert feature_cache.FrozenBackbone("resnet10t", pretrained=False, seed=1).digest == a.digest


def test_a_truncated_or_foreign_entry_is_recomputed_not_used(cache_dir):
    fb = feature_cache.FrozenBackbone("resnet10t", pretrained=False, seed=1)
    img = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    fc = feature_cache.FeatureCache(fb, cache_dir)
    good = fc.view(img)
    path = fc._path(feature_cache.view_key(img))
    path.write_bytes(path.read_bytes()[:100])  # truncated
    fresh = feature_cache.FeatureCache(fb, cache_dir)
    assert np.allclose(fresh.view(img), good) and fresh.recomputed == 1 and fresh.computed == 1
    # an entry whose features were altered fails its digest
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["features"] = data["features"] + 1
    np.savez(path.with_suffix(".tmp.npz"), **data)
    os.replace(path.with_suffix(".tmp.npz"), path)
    again = feature_cache.FeatureCache(fb, cache_dir)
    assert np.allclose(again.view(img), good) and again.recomputed == 1


def test_a_read_only_cache_warns_once_and_computes_in_memory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    fb = feature_cache.FrozenBackbone("resnet10t", pretrained=False)
    fc = feature_cache.FeatureCache(fb, ro)
    if os.access(ro, os.W_OK):  # root ignores the mode bits: make the folder a file instead
        fc.folder = tmp_path / "a_file"
        fc.folder.write_text("")
    rng = np.random.default_rng(2)
    with pytest.warns(UserWarning, match="cannot be written"):
        fc.view(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    fc.view(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))  # no second warning (pytest would fail on error)
    assert fc.read_only and fc.computed == 2


def test_heads_are_antisymmetric_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = (x[:, 0] + 0.3 * rng.normal(size=40) > 0).astype(float)
    head = heads.fit_head(x[:30], y[:30], x[30:], y[30:])
    assert np.allclose(head.predict(-x), 1 - head.predict(x), atol=1e-12)
    assert head.C in heads.PAIR_C_GRID and len(head.path) == len(heads.PAIR_C_GRID)
    sev = {"train": np.c_[x[:30, 0], -x[:30, 1]], "val": np.c_[x[30:, 0], -x[30:, 1]]}
    d = heads.fit_defect_heads({"train": x[:30], "val": x[30:]}, sev, ["a", "b"])
    assert np.allclose(d.evidence(-x), -d.evidence(x)) and d.val_accuracy["a"] > 0.8


def test_a_pair_head_needs_both_answers():
    with pytest.raises(ParameterError, match="both answers"):
        heads.fit_head(np.ones((4, 2)), np.ones(4), np.ones((2, 2)), np.ones(2))


@pytest.fixture(scope="module")
def run_dir(data, tmp_path_factory):
    """A trained head ladder on the tiny data (its features cached in the module's own folder)."""
    out = tmp_path_factory.mktemp("step02")
    cache = tmp_path_factory.mktemp("cache")
    old = paths.CACHE_DIR
    paths.CACHE_DIR = cache
    try:
        settings = AnswerSettings.from_params(TINY)
        result = head_ladder.train_heads(settings, load_splits(data), out, data, cache_root=None)
    finally:
        paths.CACHE_DIR = old
    return out, result, cache


def test_the_head_ladder_has_every_rung_and_swaps_exactly(run_dir):
    _, result, _ = run_dir
    assert list(result.ladder.row) == ["merged", "split", "local", "specialists", "ensemble", "evidence"]
    assert set(result.ladder.kind) == {"rung"} and result.swap_flip_rate == 1.0
    assert all(0.0 <= v <= 1.0 for v in result.ladder.overall_acc)
    assert len(result.final_test) == len(result.test_probs)
    assert all(h and {"C", "val_loss"} <= set(h[0]) for h in result.histories.values())


def test_the_saved_run_predicts_what_the_ladder_computed(run_dir, data, monkeypatch):
    out, result, cache = run_dir
    monkeypatch.setattr(paths, "CACHE_DIR", cache)
    spec = json.loads((out / "ensemble.json").read_text())
    assert {m["kind"] for m in spec["members"]} == {"head"}
    ens = run_store.load_answer_run(out)
    test = load_splits(data)["test"]
    rows = predict_rows(ens, test.pairs)
    assert np.allclose([r["p_left"] for r in rows], result.final_test, atol=1e-9)


def test_a_damaged_head_file_is_refused_naming_it(run_dir, tmp_path):
    out, _, _ = run_dir
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    spec = json.loads((copy / "ensemble.json").read_text())
    target = copy / spec["members"][0]["weights"]
    target.write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="safetensors"):
        run_store.load_answer_run(copy)
    spec["members"][0]["input"] = "globall"
    (copy / "ensemble.json").write_text(json.dumps(spec))
    shutil.copy(out / spec["members"][0]["weights"], target)
    with pytest.raises(DataError, match="Did you mean"):
        run_store.load_answer_run(copy)


def test_the_aspect_heads_load_and_predict_every_pair(run_dir, data, monkeypatch):
    out, _, cache = run_dir
    monkeypatch.setattr(paths, "CACHE_DIR", cache)
    model = aspects.load(out)
    info = json.loads((out / aspects.ASPECTS_FILE).read_text())
    assert model.aspects.heads and "Global Noise" in info["aspects"] and "luma_noise" in info["kinds"]
    pairs = load_splits(data)["test"].pairs
    rows = model.predict(pairs)
    assert [r["id"] for r in rows] == [p.id for p in pairs]
    assert all(0 <= r["aspects"]["Global Noise"] <= 1 and "luma_noise" in r["defects"] for r in rows)
    assert info["presence"] == info["aspects"]
    assert all(0 <= r["presence"]["Global Noise"] <= 1 for r in rows)
    with pytest.raises(DataError, match="no aspect heads"):
        aspects.load(out / "members")


def test_presence_heads_are_symmetric_and_learn_which_pairs_differ():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = (np.abs(x[:, 0]) > 0.7).astype(float)  # the pair differs on the aspect when feature 0 differs a lot
    fitted = heads.fit_presence_heads(x[:300], {"Noise": y[:300], "Always": np.ones(300)}, x[300:],
                                      {"Noise": y[300:], "Always": np.ones(100)})
    head = fitted["Noise"]
    assert np.allclose(head.predict(x), head.predict(-x)) and ((head.predict(x) >= 0) & (head.predict(x) <= 1)).all()
    assert np.mean((head.predict(x[300:]) > 0.5) == (y[300:] > 0.5)) > 0.8
    assert np.allclose(fitted["Always"].predict(x), 1.0)  # nothing to learn: its rate
    comparisons = [[{"region": "Global", "attribute": "Noise", "verdict": "A"}], [], [{"region": "Face",
                                                                                       "attribute": "Noise",
                                                                                       "verdict": "similar"}]]
    held = heads.presence_labels(comparisons, ["Global Noise", "Face Noise"])
    assert held["Global Noise"].tolist() == [1, 0, 0] and held["Face Noise"].tolist() == [0, 0, 1]


def test_grad_cam_explains_a_head_member(run_dir, data, monkeypatch):
    out, _, cache = run_dir
    monkeypatch.setattr(paths, "CACHE_DIR", cache)
    ens = run_store.load_answer_run(out)
    member = explain.first_network_member(ens.members)
    assert isinstance(member, head_member.HeadMember)
    pair = load_splits(data)["test"].pairs[0]
    cam = explain.explain_head_pair(member, pair, {})
    assert cam.cams.shape == cam.views.shape[:3] and cam.target in ("A", "B") and 0 <= cam.p_left <= 1


def test_cli_predict_writes_the_aspects(run_dir, data, tmp_path):
    out, _, cache = run_dir
    pred = tmp_path / "preds.jsonl"
    env = {**os.environ, "IDIFF_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "idiff_lib.cli", "answer", "predict", "--run", str(out),
                           "--data", str(data / "test_sft.jsonl"), "--out", str(pred), "--aspects"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert len(rows) == len(read_pairs(data / "test_sft.jsonl"))
    assert all("Global Noise" in r["aspects"] and r["answer"] in ("A", "B") for r in rows)


def test_settings_refuse_an_unknown_method():
    with pytest.raises(ParameterError, match="Did you mean"):
        AnswerSettings.from_params({"method": "head"})


def test_the_evidence_choice_benchmark_scores_every_setting_on_val(run_dir, data, monkeypatch, tmp_path):
    out, _, cache = run_dir
    monkeypatch.setattr(paths, "CACHE_DIR", cache)
    spec = importlib.util.spec_from_file_location("evidence_choice", ROOT / "benchmarks" / "evidence_choice.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--run", str(out), "--data", str(data), "--out", str(tmp_path / "choice.json")]) == 0
    result = json.loads((tmp_path / "choice.json").read_text())
    assert result["split"] == "val" and result["pairs"] == 8
    assert len(result["rows"]) == len(bench.LINES) * len(bench.WEIGHTS) * len(bench.MIN_PRESENCE)
    assert all(0 <= r["bleu4"] <= 1 and (r["meta_coverage"] is None or 0 <= r["meta_coverage"] <= 1)
               for r in result["rows"])
    assert bench.main(["--run", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "x.json")]) == 2  # no heads
