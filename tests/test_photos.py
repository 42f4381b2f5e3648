"""The committed photo library: every photo loads offline with its faces, splits never share a photo or a person."""

from __future__ import annotations

import pytest

from idiff_lib.demo_data import library, photos
from idiff_lib.core.errors import DataError, ParameterError


def test_library_is_split_disjoint_by_photo_group_and_person_and_covers_both_categories():
    names = [p.name for p in photos.CATALOGUE]
    assert len(names) == len(set(names)) == len(photos.PHOTOS)
    for split in ("train", "val", "test"):
        assert photos.catalogue(split, "person") and photos.catalogue(split, "scene")
    for key in ("group", "people"):
        where: dict[str, set[str]] = {}
        for spec in photos.CATALOGUE:
            for value in ([spec.group] if key == "group" else spec.people):
                where.setdefault(value, set()).add(spec.split)
        assert all(len(s) == 1 for s in where.values()), key
    for spec in photos.CATALOGUE:
        assert spec.credit and spec.licence and spec.split in ("train", "val", "test")


def test_committed_splits_are_the_assignment_rule():
    rows = library.read_manifest(photos.library_dir())
    assert library.assign_splits(rows) == {r["name"]: r["split"] for r in rows}


def test_every_committed_photo_is_present_and_unchanged():
    assert not library.check_files(library.read_manifest(photos.library_dir()), photos.library_dir())


@pytest.mark.parametrize("name", sorted(p.name for p in photos.CATALOGUE))
def test_every_photo_loads_with_faces_for_persons(name):
    photo = photos.load_photo(name)
    assert photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3 and min(photo.rgb.shape[:2]) >= 256
    assert max(photo.rgb.shape[:2]) <= library.LONG_SIDE
    assert len(photo.sha256) == 64
    if photo.category == "person":
        assert photo.faces
        h, w = photo.rgb.shape[:2]
        for x, y, bw, bh in photo.faces:
            assert 0 <= x < w and 0 <= y < h and x + bw <= w and y + bh <= h


def test_unknown_photo_is_clear():
    with pytest.raises(ParameterError, match="Did you mean"):
        photos.load_photo("astronot")


def test_a_changed_photo_file_is_refused(tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos.library_dir(), folder)
    spec = photos.catalogue()[0]
    (folder / spec.file).write_bytes(b"not the photo")
    monkeypatch.setattr(photos, "library_dir", lambda: folder)
    photos.load_photo.cache_clear()
    try:
        with pytest.raises(DataError, match=f"photo {spec.name!r} differs"):
            photos.load_photo(spec.name)
    finally:
        photos.load_photo.cache_clear()
