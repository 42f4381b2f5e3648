"""The real source photos of the demo set: files shipped inside installed Python packages.

The challenge images are not public and nothing can be downloaded here, so the demo pairs are
made from real photographs that pip-installed packages carry in their wheels (checked: all of
them are in the wheel, none is fetched at run time). `CATALOGUE` names each one with its package,
path, source and licence, and fixes the split it belongs to, so no photo is shared between
train, val and test. Portraits are scarce: each one is used at several crops and scales.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

import numpy as np
from PIL import Image

from idiff_lib.core.imaging import Box
from idiff_lib.core.errors import DataError, ParameterError, suggest


@dataclass(frozen=True)
class PhotoSpec:
    """One source photo.

    Attributes:
        name: short id, used in pair metadata.
        category: "person" or "scene".
        split: "train", "val" or "test": the only split this photo's pairs go to.
        dist: the pip distribution that ships the file.
        path: the file's path inside that distribution (as in its RECORD).
        source: who took it / where it comes from.
        licence: its licence as the shipping package states it.
        faces: face boxes (x, y, w, h) when OpenCV's default Haar detector misses or
            over-finds faces on this photo (checked by hand), else None (detect).
        subject: the scene region name its busiest area gets in rationales
            ("Building", "Vegetation", or "" for none).
    """

    name: str
    category: str
    split: str
    dist: str
    path: str
    source: str
    licence: str
    faces: tuple[Box, ...] | None = None
    subject: str = ""


_KODAK = ("Kodak Lossless True Color Image Suite (kodim{n}), as the TID2013 reference image "
          "I{n}, shipped in the pyiqa wheel (ResultsCalibra/ref_dir)")
_KODAK_LICENCE = "released by Eastman Kodak for unrestricted use"
_PYIQA_TEST = "pyiqa's test assets (tests/test_efficiency_img_dir), a frame of a public IQA/VQA data set"
_PYIQA_TEST_LICENCE = "not stated by pyiqa (MIT code); research use, as the source data set allows"
_ULTRA_LICENCE = "shipped in the ultralytics wheel (AGPL-3.0); the photograph's own licence is not stated"

CATALOGUE: tuple[PhotoSpec, ...] = (
    # --- persons
    PhotoSpec("astronaut", "person", "train", "scikit-image", "skimage/data/astronaut.png",
              "NASA, Eileen Collins (skimage.data.astronaut)", "public domain (NASA)"),
    PhotoSpec("zidane", "person", "train", "ultralytics", "ultralytics/assets/zidane.jpg",
              "Ultralytics sample image (two men at a football match)", _ULTRA_LICENCE,
              faces=((917, 109, 152, 152), (44, 328, 195, 195))),
    PhotoSpec("kodim04", "person", "val", "pyiqa", "ResultsCalibra/ref_dir/I04.bmp",
              _KODAK.format(n="04"), _KODAK_LICENCE),
    PhotoSpec("grace_hopper", "person", "test", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
              "US Navy, Rear Admiral Grace Hopper (matplotlib sample data)", "public domain (US Navy)"),
    PhotoSpec("bus", "person", "test", "ultralytics", "ultralytics/assets/bus.jpg",
              "Ultralytics sample image (people in front of a bus)", _ULTRA_LICENCE,
              faces=((116, 417, 49, 49), (262, 422, 57, 57))),
    # --- scenes
    PhotoSpec("chelsea", "scene", "train", "scikit-image", "skimage/data/chelsea.png",
              "Stefan van der Walt (skimage.data.chelsea)", "CC0"),
    PhotoSpec("coffee", "scene", "train", "scikit-image", "skimage/data/coffee.png",
              "Rachel Michetti, Pikolo Espresso Bar (skimage.data.coffee)", "CC0"),
    PhotoSpec("kodim03", "scene", "train", "pyiqa", "ResultsCalibra/ref_dir/I03.bmp",
              _KODAK.format(n="03"), _KODAK_LICENCE),
    PhotoSpec("kodim08", "scene", "train", "pyiqa", "ResultsCalibra/ref_dir/I08.bmp",
              _KODAK.format(n="08"), _KODAK_LICENCE, subject="Building"),
    PhotoSpec("china", "scene", "train", "scikit-learn", "sklearn/datasets/images/china.jpg",
              "danielbuechele on Flickr (sklearn load_sample_images)", "CC BY 2.0", subject="Building"),
    PhotoSpec("garden", "scene", "train", "pyiqa", "tests/test_efficiency_img_dir/frame_4wrwr48cdk6rbcjl.jpg",
              _PYIQA_TEST, _PYIQA_TEST_LICENCE, subject="Vegetation"),
    PhotoSpec("rocket", "scene", "val", "scikit-image", "skimage/data/rocket.jpg",
              "SpaceX (skimage.data.rocket)", "public domain (SpaceX)"),
    PhotoSpec("kodim06", "scene", "val", "pyiqa", "ResultsCalibra/ref_dir/I06.bmp",
              _KODAK.format(n="06"), _KODAK_LICENCE),
    PhotoSpec("flower", "scene", "val", "scikit-learn", "sklearn/datasets/images/flower.jpg",
              "vultilion on Flickr (sklearn load_sample_images)", "CC BY 2.0", subject="Vegetation"),
    PhotoSpec("sunset", "scene", "val", "pyiqa", "tests/test_efficiency_img_dir/frame_7gzdcz9sif0ekg31.jpg",
              _PYIQA_TEST, _PYIQA_TEST_LICENCE),
    PhotoSpec("motorcycle", "scene", "test", "scikit-image", "skimage/data/motorcycle_left.png",
              "Middlebury 2014 stereo benchmark (skimage.data.stereo_motorcycle)",
              "Middlebury stereo data, free for research use with citation (Scharstein et al., GCPR 2014)"),
    PhotoSpec("kodim19", "scene", "test", "pyiqa", "ResultsCalibra/ref_dir/I19.bmp",
              _KODAK.format(n="19"), _KODAK_LICENCE, subject="Building"),
    PhotoSpec("snow_road", "scene", "test", "pyiqa", "tests/test_efficiency_img_dir/frame_9ogwhvvy7gfj6jzh.jpg",
              _PYIQA_TEST, _PYIQA_TEST_LICENCE),
    PhotoSpec("night_street", "scene", "test", "pyiqa", "tests/test_efficiency_img_dir/SPAQ_10241.jpg",
              "SPAQ smartphone photo quality data set (Fang et al., CVPR 2020), via pyiqa's tests",
              _PYIQA_TEST_LICENCE, subject="Vegetation"),
)
PHOTOS: dict[str, PhotoSpec] = {p.name: p for p in CATALOGUE}


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


def photo_path(spec: PhotoSpec):
    """The file of `spec` inside its installed distribution, or a DataError naming what to install."""
    try:
        dist = metadata.distribution(spec.dist)
    except metadata.PackageNotFoundError:
        raise DataError(spec.path, f"photo {spec.name!r} comes from the package {spec.dist!r}, which is not installed",
                        f"pip install {spec.dist}" + (" --no-deps  (only its sample image is used)"
                                                      if spec.dist == "ultralytics" else "")) from None
    path = dist.locate_file(spec.path)
    if not path.exists():
        raise DataError(path, f"photo {spec.name!r} is not in the installed {spec.dist} {dist.version}",
                        f"reinstall {spec.dist} (a version whose wheel ships {spec.path})")
    return path


def check_name(name: str) -> PhotoSpec:
    if name not in PHOTOS:
        raise ParameterError(f"unknown photo {name!r}.{suggest(name, PHOTOS)}")
    return PHOTOS[name]


@lru_cache(maxsize=32)
def load_photo(name: str) -> Photo:
    """Load a catalogue photo as RGB uint8 with its face boxes (hand-checked or detected)."""
    spec = check_name(name)
    path = photo_path(spec)
    raw = path.read_bytes()
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    rgb.setflags(write=False)
    if spec.faces is not None:
        faces = [tuple(b) for b in spec.faces]
    elif spec.category == "person":
        from idiff_lib.data.content import detect_faces

        faces = detect_faces(rgb)
        if not faces:
            raise DataError(path, f"no face found in the person photo {name!r}",
                            "give its face boxes in photos.CATALOGUE (faces=...)")
    else:
        faces = []
    return Photo(spec, rgb, faces, hashlib.sha256(raw).hexdigest())


def catalogue(split: str | None = None, category: str | None = None) -> list[PhotoSpec]:
    """Catalogue entries, optionally of one split and/or category."""
    return [p for p in CATALOGUE
            if (split is None or p.split == split) and (category is None or p.category == category)]


def available() -> dict[str, str]:
    """name -> "ok" or the reason the photo cannot be loaded here."""
    out = {}
    for spec in CATALOGUE:
        try:
            photo_path(spec)
            out[spec.name] = "ok"
        except DataError as err:
            out[spec.name] = str(err)
    return out
