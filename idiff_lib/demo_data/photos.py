"""The real source photos of the demo set, read from the photo library (``data/photos``).

The challenge images are not public and nothing is downloaded at run time, so the demo pairs are
made from real photographs that Python wheels and Debian packages ship, downscaled into the
repository's photo library (`idiff_lib.demo_data.library`). Its manifest names each photo's
package, path, licence and split; no photo (and no person) is shared between train, val and test.
`CATALOGUE` and `PHOTOS` are read from the manifest on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from idiff_lib.core import paths, storage
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.core.imaging import Box
from idiff_lib.demo_data import library


@dataclass(frozen=True)
class PhotoSpec:
    """One library photo (a manifest row).

    Attributes:
        name: short id, used in pair metadata.
        category: "person" or "scene".
        split: "train", "val" or "test": the only split this photo's pairs go to.
        file: the JPEG's name inside the library folder.
        sha256: the JPEG's SHA-256.
        group: photos of one group (crops of one original, one person) share a split.
        people: ids of the people whose faces are framed (persons only).
        package: the pip or Debian package that ships the original.
        version: that package's version.
        path: the original's path inside the package.
        credit: who took it / where it comes from.
        licence: its licence, as the shipping package states it.
        faces: face boxes (x, y, w, h) in the JPEG's pixels (persons; checked by eye).
        subject: the scene region name its busiest area gets in rationales
            ("Building", "Vegetation", or "" for none).
    """

    name: str
    category: str
    split: str
    file: str
    sha256: str
    group: str
    people: tuple[str, ...]
    package: str
    version: str
    path: str
    credit: str
    licence: str
    faces: tuple[Box, ...] = ()
    subject: str = ""

    @classmethod
    def from_row(cls, row: dict) -> PhotoSpec:
        return cls(row["name"], row["category"], row["split"], row["file"], row["sha256"], row["group"],
                   tuple(row["people"]), row["package"], row["version"], row["path"], row["credit"],
                   row["licence"], tuple(tuple(int(v) for v in b) for b in row["faces"]), row["subject"])


@dataclass
class Photo:
    """A loaded photo: RGB uint8 pixels, face boxes in those pixels, and its catalogue entry."""

    spec: PhotoSpec
    rgb: np.ndarray
    faces: list[Box]
    sha256: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def category(self) -> str:
        return self.spec.category


def library_dir() -> Path:
    return paths.PHOTOS_DIR


@lru_cache(maxsize=4)
def _specs(folder: Path) -> tuple[PhotoSpec, ...]:
    return tuple(PhotoSpec.from_row(r) for r in library.read_manifest(folder))


def __getattr__(name: str):
    """`CATALOGUE` (the library's photos, in manifest order) and `PHOTOS` (name -> spec), read on first use."""
    if name == "CATALOGUE":
        return _specs(library_dir())
    if name == "PHOTOS":
        return {p.name: p for p in _specs(library_dir())}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_name(name: str) -> PhotoSpec:
    specs = {p.name: p for p in _specs(library_dir())}
    if name not in specs:
        raise ParameterError(f"unknown photo {name!r}.{suggest(name, specs)}")
    return specs[name]


def photo_path(spec: PhotoSpec) -> Path:
    """The photo's JPEG in the library, checked against the manifest's SHA-256."""
    path = library_dir() / spec.file
    if not path.is_file():
        raise DataError(path, f"photo {spec.name!r} is missing from the photo library",
                        "restore data/photos from git, or re-extract with `idiff data collect-photos --write`")
    if storage.file_sha256(path) != spec.sha256:
        raise DataError(path, f"photo {spec.name!r} differs from the library manifest (SHA-256)",
                        "restore data/photos from git, or re-extract with `idiff data collect-photos --write`")
    return path


def verify_library() -> list[dict]:
    """Every library photo present and unchanged, else one DataError naming each bad one (see `library`)."""
    return library.verified_rows(library_dir())


@lru_cache(maxsize=32)
def load_photo(name: str) -> Photo:
    """Load a library photo as RGB uint8 with its face boxes."""
    spec = check_name(name)
    path = photo_path(spec)
    with Image.open(path) as im:
        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # upright, as `library.process_photo` makes them
    rgb.setflags(write=False)
    return Photo(spec, rgb, [tuple(b) for b in spec.faces], spec.sha256)


def catalogue(split: str | None = None, category: str | None = None) -> list[PhotoSpec]:
    """Library photos, optionally of one split and/or category, sorted by name."""
    return sorted((p for p in _specs(library_dir())
                   if (split is None or p.split == split) and (category is None or p.category == category)),
                  key=lambda p: p.name)


def available() -> dict[str, str]:
    """name -> "ok" or the reason the photo cannot be loaded here."""
    out = {}
    for spec in _specs(library_dir()):
        try:
            photo_path(spec)
            out[spec.name] = "ok"
        except DataError as err:
            out[spec.name] = str(err)
    return out
