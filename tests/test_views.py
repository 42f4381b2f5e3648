import json

import numpy as np
import pytest
from conftest import sft_line
from PIL import Image

from answer_fixtures import bare_member
from idiff_lib.cli import main
from idiff_lib.core.errors import DataError
from idiff_lib.core.imaging import MIN_SIDE
from idiff_lib.data.pairs import read_pairs
from idiff_lib.data.views import (
    find_separator,
    load_rgb,
    load_views,
    resize,
    split_merged,
    views_from_separate,
)


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


# Issue 27: flat frames and borders at the midline are not a separator ------------------------------

def _framed(img, value, width):
    """`img` inside a uniform frame `width` px wide all round."""
    return np.pad(img, ((width, width), (width, width), (0, 0)), constant_values=value)


def test_identical_framed_halves_split_at_the_midline(photos):
    half = _framed(resize(photos["astronaut"], (160, 160)), 200, 8)  # 176 px: the two inner frames are 16 px
    merged = np.concatenate([half, half], axis=1)
    assert find_separator(merged) == (168, 184)  # the frames meet in a flat band, centred and narrow
    left, right = split_merged(merged)  # before: cut 8 px off, left[:, 8:] == right[:, :-8]
    assert np.array_equal(left, half) and np.array_equal(right, half)


def test_inner_borders_of_two_colours_are_not_a_separator(photos):
    a, b = photos["astronaut"], photos["coffee"]
    white, black = np.full((a.shape[0], 6, 3), 255, np.uint8), np.zeros((b.shape[0], 6, 3), np.uint8)
    left_half, right_half = np.concatenate([a, white], axis=1), np.concatenate([black, b], axis=1)
    merged = np.concatenate([left_half, right_half], axis=1)
    assert find_separator(merged) == (128, 140)  # every column is flat, but the band is two colours
    left, right = split_merged(merged)
    assert np.array_equal(left, left_half) and np.array_equal(right, right_half)


def test_jpeg_separator_is_one_colour_by_luma(tmp_path, photos):
    """JPEG's 4:2:0 chroma bleeds the coffee's red into a black band's edge columns (their red means
    differ by 13 levels): still one colour by luma, so still cut there."""
    a, b = photos["coffee"], photos["chelsea"]
    merged = np.concatenate([a, np.zeros((a.shape[0], 6, 3), np.uint8), b], axis=1)
    Image.fromarray(merged).save(tmp_path / "m.jpg", quality=90, subsampling=2)
    img = load_rgb(tmp_path / "m.jpg")
    assert find_separator(img) == (128, 134)
    left, right = split_merged(img)
    assert left.shape == right.shape == a.shape
    assert np.abs(left.astype(int) - a).mean() < 6 and np.abs(right.astype(int) - b).mean() < 6  # JPEG error only


# Issue 27: an image too small to give views is refused where it is read -------------------------------

def _tiny_pair(folder, c0_size=(2, 1), c1_size=(2, 1)):
    """folder/t.jsonl: one labelled merged pair whose c0 and c1 are PNGs of the sizes given (width, height)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    refs = []
    for tag, size in (("c0", c0_size), ("c1", c1_size)):
        Image.new("RGB", size, (120, 90, 60)).save(folder / "images" / f"p_000_merged_{tag}.png")
        refs.append(f"images/p_000_merged_{tag}.png")
    (folder / "t.jsonl").write_text(json.dumps(sft_line(refs, "A")) + "\n")
    return folder / "t.jsonl"


def test_a_2x1_merged_image_is_a_data_error_naming_the_pair(tmp_path):
    (pair,) = read_pairs(_tiny_pair(tmp_path), require_images=True)
    with pytest.raises(DataError, match=r"(?s)t.jsonl, line 1: pair p_000: merged image .*p_000_merged_c0.png is 2 x 1 px"
                                        r".*halves \(A and B\) are 1 x 1 px.*fix: re-export"):
        load_views(pair)
    with pytest.raises(DataError, match=r"x.png: merged image x.png is 2 x 1 px"):
        split_merged(np.zeros((1, 2, 3), np.uint8), path="x.png")
    # what `idiff answer predict` reads first: the error names the pair, not a feature table's columns
    from idiff_lib.answer.model.inputs import load_items

    with pytest.raises(DataError, match=r"t.jsonl, line 1: pair p_000: merged image"):
        load_items([pair], bare_member(name="views", backbone="resnet10t"))


def test_data_check_refuses_a_2x1_merged_image_in_one_line(tmp_path, capsys):
    jsonl = _tiny_pair(tmp_path)
    assert main(["data", "check", str(jsonl)]) == 2
    captured = capsys.readouterr()
    bad = [line for line in captured.out.splitlines() if line.startswith("  bad:")]
    assert "0 good pair(s), 1 bad" in captured.out and len(bad) == 1
    assert "line 1: pair p_000: merged image" in bad[0] and "p_000_merged_c0.png is 2 x 1 px" in bad[0]
    assert captured.err.startswith("idiff: error:") and "Traceback" not in captured.err + captured.out


def test_data_check_holds_every_view_to_the_features_min_side(tmp_path, capsys):
    """A 40 x 20 detail image gives 20 px views: enough for the loader, too few for the quality features."""
    jsonl = _tiny_pair(tmp_path, c0_size=(128, 64), c1_size=(40, 20))
    (pair,) = read_pairs(jsonl, require_images=True)
    assert load_views(pair).local_left.shape == (20, 20, 3)
    assert main(["data", "check", str(jsonl), "--skip-bad"]) == 1
    out = capsys.readouterr().out
    assert f"p_000_merged_c1.png gives a local left view of 20 x 20 px, under the {MIN_SIDE} px" in out
