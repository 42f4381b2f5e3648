"""Aligned pair-difference cues (idiff_lib.features.pair_cues) and the synthetic cue table behind the feature member."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage import data

from idiff_lib.data import degrade
from idiff_lib.answer.train.feature_member import FeatureMember
from idiff_lib.features import cv
from idiff_lib.features.table import feature_table
from idiff_lib.answer.train import synthetic
from idiff_lib.answer.train.splits import load_splits
from idiff_lib.features import pair_cues
from idiff_lib.core.errors import DataError
from idiff_lib.core.paths import DEMO_DIR
from idiff_lib.data.views import Views, load_views


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:160, 180:372])


def cue(a: np.ndarray, b: np.ndarray, name: str) -> float:
    return float(pair_cues.view_cues(a, b)[pair_cues.NAMES.index(name)])


def test_names_match_values(photo):
    assert len(pair_cues.view_cues(photo, photo)) == len(pair_cues.NAMES) == len(set(pair_cues.NAMES))
    assert len(pair_cues.columns()) == 2 * len(pair_cues.NAMES) and all(c.endswith(".diff") for c in pair_cues.columns())


def test_swap_negates_every_cue_exactly(photo):
    rng = np.random.default_rng(0)
    noisy = degrade.apply(photo, "luma_noise", 0.8, None, rng)
    soft = degrade.apply(photo, "denoise_smear", 0.8, None, rng)
    ab, ba = pair_cues.view_cues(noisy, soft), pair_cues.view_cues(soft, noisy)
    assert np.array_equal(ab, -ba)
    assert np.all(pair_cues.view_cues(photo, photo) == 0)


@pytest.mark.parametrize("kind, name, sign", [
    ("luma_noise", "y0_unshared_flat_bright", 1),  # noise: fine detail that the clean side lacks
    ("chroma_noise", "cr1_energy_flat", 1),  # chroma blotches in flat areas
    ("oversharpen", "y1_gain_edges", 1),  # halos: the shared detail amplified at edges
    ("defocus", "y0_gain_textured", -1),  # blur: the shared fine detail lost
    ("denoise_smear", "y0_energy_textured", -1),  # smearing: texture energy lost
])
def test_each_defect_moves_its_cue(photo, kind, name, sign):
    degraded = degrade.apply(photo, kind, 0.9, None, np.random.default_rng(1))
    assert sign * cue(degraded, photo, name) > 0.02


def test_exposure_and_white_balance_shift_the_means(photo):
    brighter = degrade.exposure(photo, 0.9, np.random.default_rng(2))
    assert abs(cue(brighter, photo, "y_mean_shift")) > 0.01
    cast = degrade.white_balance(photo, 0.9, np.random.default_rng(3))
    assert max(abs(cue(cast, photo, "cr_mean_shift")), abs(cue(cast, photo, "cb_mean_shift"))) > 0.005


def test_bad_views_raise_clear_errors(photo):
    with pytest.raises(ValueError, match="differ in size"):
        pair_cues.view_cues(photo, photo[:-1])
    with pytest.raises(ValueError, match="too small"):
        pair_cues.view_cues(photo[:20, :20], photo[:20, :20])


def test_feature_table_pair_source_is_odd_under_swap(tmp_path):
    pairs = list(load_splits(DEMO_DIR, max_pairs=3)["val"].pairs)
    table = feature_table(pairs, cache_dir=None, progress=False)
    assert list(table.columns) == sorted(pair_cues.columns())
    views = [load_views(p) for p in pairs]
    swapped = [pair_cues.pair_cues(Views(v.global_right, v.global_left, v.local_right, v.local_left)) for v in views]
    assert np.array_equal(table.to_numpy(), -pd.DataFrame(swapped)[table.columns].to_numpy())


def test_pair_cue_row_names_the_pair(photo):
    pair = load_splits(DEMO_DIR, max_pairs=1)["test"].pairs[0]
    small = Views(photo[:20, :20], photo[:20, :20], photo, photo)
    with pytest.raises(DataError, match=pair.id):
        cv.pair_cue_row(pair, small)


def test_hgb_member_is_antisymmetric():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=200) > 0).astype(float)
    member = FeatureMember(kind="hgb").fit(pd.DataFrame(x, columns=[f"f{i}.diff" for i in range(6)]), y)
    p, q = member.predict_proba(x), member.predict_proba(-x)
    assert np.allclose(p, 1 - q, atol=1e-12) and np.mean((p > 0.5) == (y > 0.5)) > 0.8


def test_synthetic_cue_table_resumes_and_repeats(tmp_path):
    train = load_splits(DEMO_DIR, max_pairs=4)["train"]
    source = synthetic.SyntheticSource(train, DEMO_DIR)
    first = synthetic.synthetic_cue_table(source, 5, tmp_path, seed=3, chunk=2, workers=2, progress=False)
    assert len(first) == 5 and set(first["label"]) <= {0.0, 1.0}
    assert set(pair_cues.columns()) <= set(first.columns) and first.index.is_unique
    chunks = sorted(tmp_path.glob("chunk_*.parquet"))
    assert len(chunks) == 3
    chunks[1].unlink()  # an interrupted build: one chunk missing
    again = synthetic.synthetic_cue_table(source, 5, tmp_path, seed=3, chunk=2, workers=1, progress=False)
    pd.testing.assert_frame_equal(first, again)
