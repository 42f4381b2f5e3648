"""The source-photo catalogue: every photo loads offline, splits never share a photo."""

from __future__ import annotations

import pytest

from idiff_lib.benchmark import photos
from idiff_lib.core.errors import DataError, ParameterError


def test_catalogue_is_split_disjoint_and_covers_both_categories():
    names = [p.name for p in photos.CATALOGUE]
    assert len(names) == len(set(names))
    for split in ("train", "val", "test"):
        assert photos.catalogue(split, "person") and photos.catalogue(split, "scene")
    for spec in photos.CATALOGUE:
        assert spec.source and spec.licence and spec.split in ("train", "val", "test")


@pytest.mark.parametrize("name", [p.name for p in photos.CATALOGUE])
def test_every_photo_loads_with_faces_for_persons(name):
    photo = photos.load_photo(name)
    assert photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3 and min(photo.rgb.shape[:2]) >= 256
    assert len(photo.sha256) == 64
    if photo.category == "person":
        assert photo.faces
        h, w = photo.rgb.shape[:2]
        for x, y, bw, bh in photo.faces:
            assert 0 <= x < w and 0 <= y < h and x + bw <= w and y + bh <= h


def test_unknown_photo_and_missing_package_are_clear():
    with pytest.raises(ParameterError, match="Did you mean"):
        photos.load_photo("astronot")
    spec = photos.PhotoSpec("x", "scene", "train", "no-such-package-xyz", "a.png", "s", "l")
    with pytest.raises(DataError, match="pip install no-such-package-xyz"):
        photos.photo_path(spec)
