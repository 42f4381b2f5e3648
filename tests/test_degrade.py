"""Degradations: each defect does what its name says, masks localise it, the quality model orders pairs."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from idiff_lib.data import degrade
from idiff_lib.core import ontology
from idiff_lib.data.content import detect_faces
from idiff_lib.demo_data.build import baseline_sharpness
from idiff_lib.core.errors import ParameterError


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:320, 96:416])


@pytest.fixture(scope="module")
def portrait_faces(portrait) -> list:
    full = detect_faces(data.astronaut())
    assert full, "the Haar detector should find the astronaut's face"
    x, y, w, h = full[0]
    return [(x - 96, y, w, h)]  # in the crop's pixels


@pytest.mark.parametrize("name", list(degrade.DEFECTS))
def test_every_defect_changes_the_image_subtly_and_keeps_its_type(portrait, name):
    out = degrade.apply(portrait, name, 1.0, rng=0)
    assert out.shape == portrait.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(np.float32) - portrait).mean()
    assert 0.3 < diff < 25, f"{name} at severity 1 moved pixels by {diff:.2f} grey levels on average"
    assert np.array_equal(degrade.apply(portrait, name, 0.0, rng=0), portrait)


@pytest.mark.parametrize("name", list(degrade.DEFECTS))
def test_severity_orders_the_strength(portrait, name):
    weak = np.abs(degrade.apply(portrait, name, 0.2, rng=1).astype(np.float32) - portrait).mean()
    strong = np.abs(degrade.apply(portrait, name, 1.0, rng=1).astype(np.float32) - portrait).mean()
    assert strong > weak


def test_luma_noise_is_strongest_in_the_mid_to_dark_tones():
    ramp = np.repeat(np.linspace(0, 255, 256, dtype=np.float32)[None, :], 128, 0)
    img = np.repeat(ramp[..., None], 3, -1).astype(np.uint8)
    noise = degrade.apply(img, "luma_noise", 1.0, rng=0).astype(np.float32) - img
    dark_mid, bright = noise[:, 50:100].std(), noise[:, 215:250].std()
    assert dark_mid > 1.5 * bright


def test_chroma_noise_moves_colour_more_than_brightness(portrait):
    import cv2

    out = degrade.apply(portrait, "chroma_noise", 1.0, rng=0)
    a = cv2.cvtColor(portrait, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    b = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    assert np.abs(b[..., 1:] - a[..., 1:]).mean() > 2 * np.abs(b[..., 0] - a[..., 0]).mean()


def test_sharpening_raises_and_smoothing_lowers_laplacian_variance(portrait, portrait_faces):
    base = baseline_sharpness(portrait)
    assert baseline_sharpness(degrade.apply(portrait, "oversharpen", 0.6, rng=0)) > 1.3 * base
    assert baseline_sharpness(degrade.apply(portrait, "defocus", 0.6, rng=0)) < 0.8 * base
    # Denoise smearing keeps strong edges and removes fine texture: measure it on fur.
    fur = data.chelsea()
    smeared = degrade.apply(fur, "denoise_smear", 0.6, rng=0)
    assert baseline_sharpness(smeared) < 0.8 * baseline_sharpness(fur)


def test_a_mask_confines_the_defect(portrait):
    mask = np.zeros(portrait.shape[:2], np.float32)
    mask[:, :100] = 1.0
    out = degrade.apply(portrait, "luma_noise", 1.0, mask, rng=0)
    assert np.abs(out[:, :100].astype(int) - portrait[:, :100]).mean() > 1.0
    assert np.array_equal(out[:, 120:], portrait[:, 120:])


def test_bad_arguments_raise_clear_errors(portrait):
    with pytest.raises(ParameterError, match="Did you mean"):
        degrade.apply(portrait, "oversharpening", 0.5)
    with pytest.raises(ParameterError, match="severity"):
        degrade.apply(portrait, "jpeg", 1.5)
    with pytest.raises(ParameterError, match="mask shape"):
        degrade.apply(portrait, "jpeg", 0.5, np.ones((3, 3), np.float32))
    with pytest.raises(ParameterError, match="RGB uint8"):
        degrade.apply(portrait.astype(np.float32), "jpeg", 0.5)


def test_portrait_masks_follow_the_face(portrait, portrait_faces):
    masks = degrade.region_masks(portrait, portrait_faces, "person")
    assert set(ontology.PERSON_MASK_REGIONS) <= set(masks)
    x, y, w, h = portrait_faces[0]
    cx, cy = x + w // 2, y + int(h * 0.55)
    assert masks["face"][cy, cx] > 0.9 and masks["background"][cy, cx] < 0.1
    assert masks["face"][5, 5] < 0.1 and masks["background"][5, 5] > 0.9
    assert masks["clothing"][-1, cx] > 0.9 and masks["face"][-1, cx] < 0.1
    assert masks["hair"][max(0, y - 5), cx] > 0.5
    for m in masks.values():
        assert m.shape == portrait.shape[:2] and m.min() >= 0 and m.max() <= 1


def test_scene_masks_separate_flat_and_busy_areas():
    img = data.coffee()
    masks = degrade.region_masks(img, (), "scene")
    assert set(ontology.SCENE_MASK_REGIONS) <= set(masks)
    overlap = (masks["background"] > 0.5) & (masks["detail"] > 0.5)
    assert overlap.mean() < 0.05


def test_quality_model_counts_faces_more_than_hair_and_global_most():
    def cost(region):
        return degrade.penalty([degrade.Defect("denoise_smear", 0.5, region)], "person")

    assert cost("global") > cost("face") > cost("hair") > cost("background")
    with pytest.raises(ParameterError, match="not a scene region"):
        degrade.penalty([degrade.Defect("jpeg", 0.5, "face")], "scene")


def test_sample_pair_is_deterministic_and_labels_the_lower_penalty(portrait, portrait_faces):
    first = degrade.sample_pair(portrait, 7, faces=portrait_faces, category="person")
    again = degrade.sample_pair(portrait, 7, faces=portrait_faces, category="person")
    assert np.array_equal(first.a, again.a) and np.array_equal(first.b, again.b)
    assert first.margin >= 0.08
    expected = "A" if first.penalty_a < first.penalty_b else "B"
    assert first.answer == expected
    meta = first.to_meta()
    assert meta["answer"] == first.answer and meta["defects_a"] and meta["defects_b"]


def test_want_answer_puts_the_winner_on_the_wanted_side(portrait, portrait_faces):
    for seed in range(4):
        for want in ("A", "B"):
            s = degrade.sample_pair(portrait, seed, faces=portrait_faces, category="person", want_answer=want)
            assert s.answer == want
            assert (s.penalty_a < s.penalty_b) == (want == "A")


def test_tradeoffs_occur_and_shared_defects_are_identical(portrait, portrait_faces):
    rng = np.random.default_rng(0)
    regions = list(degrade.REGION_WEIGHTS["person"])
    draws = [degrade.sample_defects("person", regions, rng) for _ in range(200)]
    crisp_vs_soft = 0
    for da, db, _ in draws:
        kinds_a, kinds_b = {d.kind for d in da}, {d.kind for d in db}
        if kinds_a & {"oversharpen", "luma_noise", "chroma_noise"} and kinds_b & {"defocus", "denoise_smear", "jpeg"}:
            crisp_vs_soft += 1
    assert crisp_vs_soft > 30
    assert any(shared for _, _, shared in draws)
    masks = degrade.region_masks(portrait, portrait_faces, "person")
    shared = [degrade.Defect("luma_noise", 0.8, "global")]
    a = degrade.render(portrait, [], masks, 1, shared, shared_seed=5)
    b = degrade.render(portrait, [], masks, 2, shared, shared_seed=5)
    assert np.array_equal(a, b)


def test_attribute_scores_book_the_main_attribute_in_full():
    d = degrade.Defect("luma_noise", 1.0, "face")
    scores = degrade.attribute_scores([d], "person")
    full = degrade.defect_penalty(d, "person")
    assert scores[("face", "Noise")] == pytest.approx(full)
    assert scores[("face", "Texture")] == pytest.approx(full / 2)
