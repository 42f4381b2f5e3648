import json

import numpy as np
import pytest
from PIL import Image

from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import read_pairs
from idiff_lib.data.views import find_separator, load_views, split_merged, views_from_separate


def test_four_views_from_merged_files(pair_folder):
    pairs = read_pairs(pair_folder / "pairs.jsonl", require_images=True)
    views = load_views(pairs[0])
    assert views.global_left.shape == views.global_right.shape == (128, 128, 3)
    assert views.local_left.shape == views.local_right.shape == (64, 64, 3)
    swapped = views.swapped()
    assert swapped.global_left is views.global_right and swapped.local_right is views.local_left


def test_midline_split_is_exact(photos):
    a, b = photos["astronaut"], photos["coffee"]
    left, right = split_merged(np.concatenate([a, b], axis=1))
    assert np.array_equal(left, a) and np.array_equal(right, b)


def test_separator_band_is_detected_and_removed(photos):
    a, b = photos["astronaut"], photos["coffee"]
    band = np.full((a.shape[0], 6, 3), 255, np.uint8)
    merged = np.concatenate([a, band, b], axis=1)  # 262 px: no midline split would be right
    assert find_separator(merged) == (128, 134)
    left, right = split_merged(merged)
    assert np.array_equal(left, a) and np.array_equal(right, b)


def test_odd_width_without_separator_is_a_data_error(tmp_path, photos):
    merged = np.concatenate([photos["astronaut"], photos["coffee"][:, :-1]], axis=1)
    for tag in ("c0", "c1"):
        Image.fromarray(merged).save(tmp_path / f"p_1_merged_{tag}.png")
    (tmp_path / "t.jsonl").write_text(json.dumps({"images": ["p_1_merged_c0.png", "p_1_merged_c1.png"]}) + "\n")
    (pair,) = read_pairs(tmp_path / "t.jsonl")
    with pytest.raises(DataError, match=r"t.jsonl, line 1: pair p_1: merged image .* odd width 255"):
        load_views(pair)


def test_truncated_jpeg_is_a_data_error(pair_folder):
    (pair,) = read_pairs(pair_folder / "pairs.jsonl", limit=1)
    path = pair.image_path(0)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(DataError, match=r"(?s)line 1: pair p_000: cannot decode image .*fix: re-export"):
        load_views(pair)


def test_not_an_image_is_a_data_error(pair_folder):
    (pair,) = read_pairs(pair_folder / "pairs.jsonl", limit=1)
    pair.image_path(1).write_text("hello")
    with pytest.raises(DataError, match="cannot decode image"):
        load_views(pair)


def test_separate_images_give_aligned_views(photos):
    a = photos["astronaut"]
    b = np.clip(a.astype(int) + 20, 0, 255).astype(np.uint8)
    views = views_from_separate(a, b, global_long=64)
    assert views.global_left.shape == (64, 64, 3)
    assert views.local_left.shape == views.local_right.shape
    # same coordinates on both sides: the brightness offset is all that differs
    diff = views.local_right.astype(int) - views.local_left.astype(int)
    assert np.median(diff) == 20
    # the crop choice does not depend on which side is A
    swapped = views_from_separate(b, a, global_long=64)
    assert np.array_equal(swapped.local_left, views.local_right)


def test_separate_layout_pair_loads(tmp_path, photos):
    for tag, img in (("A", photos["astronaut"]), ("B", photos["chelsea"])):
        Image.fromarray(img).save(tmp_path / f"shot_{tag}.png")
    (tmp_path / "t.jsonl").write_text(json.dumps({"images": ["shot_A.png", "shot_B.png"]}) + "\n")
    (pair,) = read_pairs(tmp_path / "t.jsonl", require_images=True)
    views = load_views(pair)
    assert views.global_left.shape == views.global_right.shape
