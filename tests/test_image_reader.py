"""The image reader applies the EXIF orientation (issue 27): a merged image stored rotated, with the
tag saying so, is read as it is seen, and split across the right axis."""

import io
import json

import numpy as np
from conftest import sft_line
from PIL import ExifTags, Image

from idiff_lib.answer.train.training_photos import decode_image
from idiff_lib.data.pairs import read_pairs
from idiff_lib.data.views import load_rgb, load_views, split_merged


def _save_rotated(upright: np.ndarray, target, **save) -> None:
    """Store `upright` turned a quarter counter-clockwise, tagged EXIF Orientation 6 ("turn 90 degrees
    clockwise to view"), as a phone or camera does."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(target, exif=exif, **save)


def test_rotated_png_is_read_upright_and_split_at_its_midline(tmp_path, photos):
    a, b = photos["astronaut"], photos["coffee"]
    upright = np.concatenate([a, b], axis=1)  # 128 x 256
    _save_rotated(upright, tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (128, 256) and im.getexif()[ExifTags.Base.Orientation] == 6  # stored rotated
    img = load_rgb(tmp_path / "m.png")
    assert np.array_equal(img, upright)  # before: the stored 256 x 128 array, split top half | bottom half
    left, right = split_merged(img)
    assert np.array_equal(left, a) and np.array_equal(right, b)


def test_rotated_jpeg_with_an_odd_stored_width_loads(tmp_path, photos):
    """Stored 127 px wide (the upright height): before, the pair failed with a misleading 'odd width'."""
    (tmp_path / "images").mkdir()
    a, b = photos["astronaut"][:127], photos["coffee"][:127]
    refs = []
    for tag, (left, right) in (("c0", (a, b)), ("c1", (a[32:95, 32:96], b[32:95, 32:96]))):
        _save_rotated(np.concatenate([left, right], axis=1), tmp_path / "images" / f"p_000_merged_{tag}.jpg",
                      quality=95)
        refs.append(f"images/p_000_merged_{tag}.jpg")
    (tmp_path / "t.jsonl").write_text(json.dumps(sft_line(refs, "A")) + "\n")
    (pair,) = read_pairs(tmp_path / "t.jsonl", require_images=True)
    views = load_views(pair)
    assert views.global_left.shape == views.global_right.shape == (127, 128, 3)
    assert views.local_left.shape == (63, 64, 3)
    assert np.abs(views.global_left.astype(int) - a).mean() < 3  # JPEG, so close rather than equal
    assert np.abs(views.global_right.astype(int) - b).mean() < 3


def test_training_photo_decoder_applies_the_orientation(photos):
    upright = photos["chelsea"][:, :96]
    buf = io.BytesIO()
    _save_rotated(upright, buf, format="PNG")
    assert np.array_equal(decode_image(buf.getvalue()), upright)
