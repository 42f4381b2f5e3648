"""The training split's source photos, the raw material of the pretext task and the synthetic pairs.

Only training photos are used (never a val or test photo). Images pass through the same JPEG
round trip as the data folder's views (`encode_image` / `decode_image`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from idiff_lib.answer.train.splits import Split
from idiff_lib.core import storage
from idiff_lib.data import degrade
from idiff_lib.data.content import detect_faces
from idiff_lib.data.views import load_views
from idiff_lib.demo_data import photos


@dataclass
class TrainingPhoto:
    """A training photo with what the degradation code needs, computed once."""

    id: str
    rgb: np.ndarray
    category: str
    faces: list
    masks: dict[str, np.ndarray]


def catalogue_sources(data_dir: str | Path | None) -> dict[str, str]:
    """pair id -> source photo name, from ``<data_dir>/meta/train.jsonl`` when the folder has one."""
    meta = Path(data_dir) / "meta" / "train.jsonl" if data_dir else None
    sources: dict[str, str] = {}
    if meta is None or not meta.exists():
        return sources
    for row in storage.read_jsonl_rows(meta):
        src = next((row[k] for k in ("photo", "source", "source_photo") if row.get(k)), None)
        if isinstance(src, dict):
            src = src.get("name") or src.get("id") or src.get("photo")
        if row.get("id") and src:
            sources[str(row["id"])] = str(src)
    return sources


def training_photos(train_split: Split, data_dir: str | Path | None = None, limit: int = 0) -> list[TrainingPhoto]:
    """The training split's source photos (never a val or test photo).

    When the data folder's ``meta/train.jsonl`` names photos of the library (`idiff_lib.demo_data.photos`, as the
    embedded benchmark does), those pristine photos are loaded. Otherwise (a user's own data) the
    better rendition's global view of each training pair stands in for the photo: it is the least
    degraded image of that shot the training data holds.
    """
    sources = catalogue_sources(data_dir)
    out, seen = [], set()
    for pair, cat in zip(train_split.pairs, train_split.categories):
        key = sources.get(pair.id, pair.id)
        if key in seen:
            continue
        seen.add(key)
        if key in photos.PHOTOS:
            photo = photos.load_photo(key)
            rgb, cat, faces = np.ascontiguousarray(photo.rgb), photo.category, list(photo.faces)
        else:
            views = load_views(pair)
            rgb = views.global_left if pair.answer == "A" else views.global_right
            faces = detect_faces(rgb) if cat == "person" else []
        out.append(TrainingPhoto(str(key), rgb, cat, faces, degrade.region_masks(rgb, faces, cat)))
        if limit and len(out) >= limit:
            break
    return out


def encode_image(img: np.ndarray, quality: int) -> bytes:
    """JPEG bytes at `quality` (4:2:0, as data sets store their views), or PNG when `quality` is 0."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG" if not quality else "JPEG", quality=quality or 95, subsampling=2)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """RGB pixels of encoded image bytes, upright (the EXIF orientation applied, as `views.load_rgb` does)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
