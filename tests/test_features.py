"""Hand-crafted features, the feature table, prompt cues and the feature-based Answer member."""

from __future__ import annotations

import json
import math
import warnings
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import sft_line, write_merged_pair
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.filters import unsharp_mask
from skimage.transform import resize

from idiff_lib.answer.experiments import ensemble
from idiff_lib.answer.train.feature_member import DEFAULT_GRID, FeatureMember
from idiff_lib.core import imaging
from idiff_lib.features import cue_text
from idiff_lib.features import cv
from idiff_lib.features import table as T  # alias: short name for the feature table module in many asserts
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import read_pairs


def _smooth_image(side: int = 256) -> np.ndarray:
    """A smooth grey image (no texture), so the only fine-scale signal is the noise we add."""
    y, x = np.mgrid[0:side, 0:side] / side
    return 60 + 120 * x + 40 * np.sin(3 * y)


def _camera(side: int = 256) -> np.ndarray:
    return (resize(data.camera(), (side, side), anti_aliasing=True) * 255).astype(np.float32)


# --------------------------------------------------------------------------- reference values
@pytest.mark.parametrize("sigma", [3.0, 8.0, 15.0])
def test_noise_std_recovers_known_gaussian_noise_within_10_percent(sigma):
    rng = np.random.default_rng(1)
    noisy = _smooth_image() + rng.normal(0, sigma, (256, 256))
    estimate = cv.noise_std(noisy.astype(np.float32))
    assert abs(estimate - sigma) / sigma < 0.10, (estimate, sigma)


def test_laplacian_variance_and_tenengrad_rise_monotonically_with_sharpening():
    base = gaussian_filter(_camera(), 1.5) / 255.0
    amounts = [0.0, 0.5, 1.0, 2.0, 4.0]
    imgs = [np.clip(unsharp_mask(base, radius=2, amount=a), 0, 1).astype(np.float32) * 255 for a in amounts]
    lap = [imaging.laplacian_variance(im) for im in imgs]
    ten = [cv.tenengrad(im) for im in imgs]
    assert all(b > a * 1.05 for a, b in pairwise(lap)), lap
    assert all(b > a for a, b in pairwise(ten)), ten


def test_colorfulness_reference_values():
    grey = np.full((64, 64, 3), 120, np.uint8)
    assert cv.colorfulness(grey) == pytest.approx(0.0, abs=1e-9)
    assert cv.colorfulness(np.repeat((_camera(64)).astype(np.uint8)[..., None], 3, 2)) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    # Hasler–Süsstrunk: rg = 255, yb = 127.5, sigma = 0 -> M = 0.3 * hypot(255, 127.5)
    assert cv.colorfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-6)


def test_entropy_matches_skimage_and_exposure_and_hf_ratio_behave():
    from skimage.measure import shannon_entropy

    cam = _camera().astype(np.uint8)
    assert cv.entropy(cam.astype(np.float32)) == pytest.approx(shannon_entropy(cam), abs=1e-6)
    half = np.zeros((64, 64), np.float32)
    half[:, 32:] = 255
    assert cv.exposure_ratio(half) == pytest.approx(1.0)
    assert cv.exposure_ratio(np.full((64, 64), 128, np.float32)) == 0.0
    sharp, blurred = _camera(), gaussian_filter(_camera(), 2)
    assert cv.hf_energy_ratio(sharp) > cv.hf_energy_ratio(blurred)
    assert cv.blur(blurred) > cv.blur(sharp)


def test_cv_features_downscales_to_the_working_size():
    big = np.repeat(_camera(1200).astype(np.uint8)[..., None], 3, 2)
    assert imaging.working_size(big, cv.WORK_SIDE).shape[:2] == (cv.WORK_SIDE, cv.WORK_SIDE)
    assert set(cv.cv_features(big)) == set(cv.CV_FEATURES)


# --------------------------------------------------------------------------- bad input
def test_grey_and_constant_images_give_finite_features():
    grey2d = _camera(64).astype(np.uint8)
    out = cv.cv_features(grey2d)
    assert all(math.isfinite(v) for v in out.values())
    assert out["colorfulness"] == 0.0
    const = cv.cv_features(np.full((48, 40, 3), 77, np.uint8))
    assert all(math.isfinite(v) for v in const.values())
    assert const["lap_var"] == 0 and const["noise_std"] == pytest.approx(0, abs=1e-9) and const["hf_ratio"] == 0
    assert const["blur_effect"] == 1.0 and const["entropy"] == 0.0


def test_tiny_or_odd_images_raise_clear_errors():
    with pytest.raises(ValueError, match="at least 32 px"):
        cv.cv_features(np.zeros((20, 200, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        cv.cv_features(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        cv.cv_features(np.zeros((64, 64, 2), np.uint8))


def _tiny_pair_folder(tmp_path: Path, photos) -> Path:
    """pairs.jsonl with one good pair and one whose detail views are 16 px wide."""
    lines = [sft_line(write_merged_pair(tmp_path, "s_good", photos["coffee"], photos["coffee"][:, ::-1]), "A")]
    small = photos["chelsea"][:24, :24]
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.fromarray(np.concatenate([photos["chelsea"], photos["chelsea"]], 1)).save(tmp_path / "images/s_tiny_merged_c0.jpg")
    Image.fromarray(np.concatenate([small, small], 1)).save(tmp_path / "images/s_tiny_merged_c1.jpg")
    lines.append(sft_line(["images/s_tiny_merged_c0.jpg", "images/s_tiny_merged_c1.jpg"], "B"))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return tmp_path


def test_bad_sample_is_reported_with_its_row_kept_and_flagged(tmp_path, photos):
    folder = _tiny_pair_folder(tmp_path, photos)
    pairs = read_pairs(folder / "pairs.jsonl")
    with pytest.raises(DataError, match=r"s_tiny.*local views"):
        cv.pair_cv_features(pairs[1])
    with pytest.warns(UserWarning, match="s_tiny"):
        table = T.build_feature_table(pairs, features=("cv",), cache_dir=None, progress=False)
    assert list(table.index) == ["s_good", "s_tiny"]
    assert table.loc["s_tiny", "meta.ok"] == 0 and table.loc["s_good", "meta.ok"] == 1
    assert "s_tiny" in table.attrs["problems"] and "line 2" in table.attrs["problems"]["s_tiny"]
    good = table.loc["s_good", [c for c in table.columns if c.startswith("cv.") and ".global." in c]]
    assert np.isfinite(good.to_numpy()).all()
    # NaN only where a flag says why: the bad row, and face/rest columns of a pair without a face
    nan_cols = table.columns[table.loc["s_good"].isna()]
    assert all((".global_face." in c or ".global_rest." in c) for c in nan_cols)
    assert table.loc["s_good", "meta.has_face"] == 0


def test_unknown_source_suggests_a_close_name(pair_folder):
    with pytest.raises(ParameterError, match="Did you mean"):
        T.build_feature_table(read_pairs(pair_folder / "pairs.jsonl"), features=("cvv",), cache_dir=None)


# --------------------------------------------------------------------------- the table
def _write_png_pair(folder: Path, pid: str, a: np.ndarray, b: np.ndarray) -> list[str]:
    """Lossless c0/c1 (a JPEG of A|B is not the mirror of a JPEG of B|A, so exact tests need PNG)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    h, w = a.shape[:2]
    names = []
    for tag, (left, right) in (("c0", (a, b)), ("c1", (a[h // 4:3 * h // 4, w // 4:3 * w // 4],
                                                       b[h // 4:3 * h // 4, w // 4:3 * w // 4]))):
        names.append(f"images/{pid}_merged_{tag}.png")
        Image.fromarray(np.concatenate([left, right], axis=1)).save(folder / names[-1])
    return names


def test_table_columns_faces_and_swap_antisymmetry(tmp_path):
    a = (resize(data.astronaut(), (256, 256), anti_aliasing=True) * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    b = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    lines = [sft_line(_write_png_pair(tmp_path, "p_ab", a, b), "A"),
             sft_line(_write_png_pair(tmp_path, "p_ba", b, a), "B")]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    table = T.build_feature_table(read_pairs(tmp_path / "pairs.jsonl"), features=("cv",), cache_dir=None,
                                  progress=False)
    for view in ("global", "local", "global_face", "global_rest"):
        for side in ("A", "B", "diff"):
            assert f"cv.noise_std.{view}.{side}" in table.columns
    assert table.loc["p_ab", "meta.has_face"] == 1 and table.loc["p_ab", "meta.person"] == 1
    diffs = [c for c in table.columns if c.endswith(".diff")]
    np.testing.assert_allclose(table.loc["p_ab", diffs].to_numpy(float), -table.loc["p_ba", diffs].to_numpy(float),
                               atol=1e-6)
    assert table.loc["p_ab", "cv.noise_std.global_face.B"] > table.loc["p_ab", "cv.noise_std.global_face.A"] + 3
    row = table.loc["p_ab"]
    assert row["cv.noise_std.global.diff"] == pytest.approx(row["cv.noise_std.global.A"] - row["cv.noise_std.global.B"])


def test_cache_hit_computes_nothing_twice_and_content_change_recomputes(pair_folder, monkeypatch, tmp_path):
    pairs = read_pairs(pair_folder / "pairs.jsonl")
    cache = tmp_path / "cache"
    first = T.build_feature_table(pairs, features=("cv",), cache_dir=cache, progress=False,
                                  out_path=tmp_path / "t.parquet")
    calls = []
    real = cv.pair_cv_features
    monkeypatch.setattr(T, "pair_cv_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = T.build_feature_table(pairs, features=("cv",), cache_dir=cache, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(first, again)
    # new pixels in one pair -> only that pair is computed again
    path = pairs[0].image_path(0)
    img = np.asarray(Image.open(path)).copy()
    img[:8] = 0
    Image.fromarray(img).save(path)
    T.build_feature_table(pairs, features=("cv",), cache_dir=cache, progress=False)
    assert len(calls) == 1
    loaded = T.load_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(loaded, first, check_like=False)
    assert json.loads((tmp_path / "t.problems.json").read_text()) == {}
    th = cue_text.calibrate_thresholds(first)
    T.save_table(first, tmp_path / "t.parquet", thresholds=th)
    assert T.load_table(tmp_path / "t.parquet").attrs["thresholds"] == th
    assert not list(tmp_path.glob(".t.parquet*.tmp"))  # the atomic write left no temporary file


# --------------------------------------------------------------------------- prompt cues
def _cue_table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = {}
    for name in ("noise_std", "lap_var"):
        for view in ("global", "global_face"):
            a = rng.uniform(2, 4, n)
            b = a * rng.uniform(0.9, 1.1, n)
            rows[f"cv.{name}.{view}.A"], rows[f"cv.{name}.{view}.B"] = a, b
            rows[f"cv.{name}.{view}.diff"] = a - b
    rows["iqa.piqe.global.A"], rows["iqa.piqe.global.B"] = rng.uniform(30, 40, n), rng.uniform(30, 40, n)
    rows["meta.ok"] = np.ones(n)
    return pd.DataFrame(rows, index=pd.Index([f"p_{i}" for i in range(n)], name="id"))


def test_render_features_words_only_meaningful_differences(tmp_path):
    train = _cue_table()
    th = cue_text.calibrate_thresholds(train, quantile=0.75)
    th2 = cue_text.load_thresholds(cue_text.save_thresholds(th, tmp_path / "thresholds.json"))
    assert th2 == th
    row = {"cv.noise_std.global_face.A": 2.1, "cv.noise_std.global_face.B": 4.7,
           "cv.lap_var.global.A": 3.0, "cv.lap_var.global.B": 3.0 * 1.001,
           "iqa.piqe.global.A": 20.0, "iqa.piqe.global.B": 60.0}
    lines = cue_text.render_features(row, style="cv", thresholds=th)
    assert lines == ["Face noise std: A 2.1 vs B 4.7 (B noisier)"]
    iqa = cue_text.render_features(row, style="iqa", thresholds=th)
    assert iqa == ["Global PIQE: A 20 vs B 60 (A better)"]  # PIQE: lower is better
    assert len(cue_text.render_features(row, style="all", thresholds=th)) == 2
    assert cue_text.render_features({**row, "meta.ok": 0.0}, style="cv", thresholds=th) == []
    with pytest.raises(ParameterError, match="Did you mean"):
        cue_text.render_features(row, style="cvv", thresholds=th)
    with pytest.raises(ParameterError, match="thresholds"):
        cue_text.render_features(row, style="cv")


def test_calibrated_thresholds_word_about_a_quarter_of_training_pairs():
    train = _cue_table(n=400, seed=1)
    th = cue_text.calibrate_thresholds(train, quantile=0.75)
    worded = np.mean([any(line.startswith("Global noise std") for line in
                          cue_text.render_features(train.loc[i], "cv", th, max_lines=20)) for i in train.index])
    assert 0.2 < worded < 0.3


# --------------------------------------------------------------------------- the Answer member
def _member_data(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(float)
    cols = [f"cv.f{i}.global.diff" for i in range(5)]
    return pd.DataFrame(x, columns=cols, index=pd.Index([f"p_{i}" for i in range(n)], name="id")), y


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_feature_member_is_exactly_antisymmetric_and_learns(kind, tmp_path):
    train, y = _member_data()
    test, yt = _member_data(seed=1)
    member = FeatureMember(kind=kind).fit(train, ["A" if v else "B" for v in y])
    p = member.predict_proba(test)
    np.testing.assert_allclose(member.predict_proba(-test), 1 - p, atol=1e-12)
    assert np.mean((p > 0.5) == (yt > 0.5)) > 0.8
    by_id = member.predict_by_id(test)
    assert list(by_id.index) == list(test.index)
    imp = member.permutation_importances(test, yt, n_repeats=3)
    assert imp.iloc[0]["feature"] == "cv.f0.global.diff" and imp.iloc[0]["importance"] > 0.1
    loaded = FeatureMember.load(member.save(tmp_path / "member.joblib"))
    np.testing.assert_array_equal(loaded.predict_proba(test), p)


def test_feature_member_errors_and_nan_handling():
    train, y = _member_data(60)
    member = FeatureMember().fit(train, y)
    with pytest.raises(DataError, match="lacks"):
        member.predict_proba(train.drop(columns=["cv.f0.global.diff"]))
    nan_row = train.iloc[:1].copy()
    nan_row[:] = np.nan
    assert member.predict_proba(nan_row)[0] == pytest.approx(0.5)
    with pytest.raises(ParameterError, match="kind"):
        FeatureMember(kind="forest")
    with pytest.raises(ParameterError, match="labels"):
        FeatureMember().fit(train, y[:10])


def test_ensemble_adapter_predicts_with_the_member(pair_folder):
    cls = FeatureMember
    pairs = read_pairs(pair_folder / "pairs.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = T.feature_table(pairs, cache_dir=None, progress=False)
    assert all(c.endswith(".diff") for c in table.columns) and len(table) == 3
    member = cls().fit(table, [1.0, 0.0, 1.0])
    adapter = ensemble.FeatureMemberAdapter(member, lambda ps: T.feature_table(ps, cache_dir=None, progress=False))
    assert adapter.predict(pairs, ["person", "person", "scene"], {}).shape == (3,)


def test_select_keeps_the_best_validation_setting():
    train, y = _member_data(120)
    val, yv = _member_data(60, seed=2)
    member, grid = FeatureMember.select(train, y, val, yv)
    assert len(grid) == len(DEFAULT_GRID) and grid["val_accuracy"].max() > 0.8
    best = grid.loc[grid["val_accuracy"].idxmax()]
    assert member.kind == best["kind"]
    # labels that disagree with the features: the selection still returns a fitted member
    flipped, _ = FeatureMember.select(train, y, val, 1 - yv)
    assert flipped.predict_proba(val).shape == (60,)


def test_demo_pairs_give_complete_rows():
    from idiff_lib.core import paths

    demo = paths.DEMO_DIR / "test_sft.jsonl"
    if not demo.exists():
        pytest.skip("data/demo is not built (idiff data build-demo)")
    pairs = [p for p in read_pairs(demo) if p.category == "person"][:3]
    table = T.build_feature_table(pairs, features=("cv",), cache_dir=None, progress=False)
    assert (table["meta.ok"] == 1).all() and table.attrs["problems"] == {}
    for pid in table.index:
        flags = table.loc[pid, ["meta.has_face", "meta.has_rest"]]
        regions = [v for v, flag in (("global_face", flags.iloc[0]), ("global_rest", flags.iloc[1])) if flag]
        cols = [c for c in table.columns if c.startswith("cv.") and c.split(".")[2] in ("global", "local", *regions)]
        assert np.isfinite(table.loc[pid, cols].to_numpy(float)).all()
