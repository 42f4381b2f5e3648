"""The four views of a pair: global-left/right (from ``c0``) and local-left/right (from ``c1``).

A merged image holds Image A on the left and Image B on the right. It is split at a visible
separator band when one is present (a run of uniform columns near the middle), else at the
midline. Pairs given as two separate images (``images: [A, B]``) get global views by resizing
and local views by cropping both images at the same coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import Pair

VIEW_NAMES = ("global_left", "global_right", "local_left", "local_right")
VIEWS = ("global", "local")  # the two merged images of a pair: c0 (global) and c1 (detail)


@dataclass
class Views:
    """RGB uint8 arrays (H, W, 3). Left is Image A, right is Image B."""

    global_left: np.ndarray
    global_right: np.ndarray
    local_left: np.ndarray
    local_right: np.ndarray

    def swapped(self) -> "Views":
        """The same pair with A and B exchanged."""
        return Views(self.global_right, self.global_left, self.local_right, self.local_left)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in VIEW_NAMES}


def load_rgb(path: str | Path, pair: Pair | None = None) -> np.ndarray:
    """Read an image as RGB uint8; unreadable or truncated files raise a DataError."""
    try:
        with Image.open(path) as im:
            im.load()  # decodes fully: a truncated JPEG fails here, not later
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        problem = f"cannot decode image {path}: {exc}"
        fix = "re-export or re-download the image (it is truncated or not an image file)"
        if pair is not None:
            raise pair.error(problem, fix) from None
        raise DataError(path, problem, fix) from None


def find_separator(img: np.ndarray, search: float = 0.1, tol: float = 3.0) -> tuple[int, int] | None:
    """The [start, end) columns of a uniform vertical band near the middle, or None.

    A column belongs to a band when its pixels barely vary down the image (std below `tol`
    grey levels in every channel). Only columns within `search` x width of the midline count,
    and the band must be at least 2 px wide, so a single flat column of the photo is not taken.
    """
    h, w = img.shape[:2]
    lo, hi = int(w * (0.5 - search)), int(np.ceil(w * (0.5 + search)))
    band = img[:, lo:hi].astype(np.float32)
    flat = (band.std(axis=0) < tol).all(axis=-1) if band.ndim == 3 else band.std(axis=0) < tol
    runs, start = [], None
    for i, f in enumerate(list(flat) + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((lo + start, lo + i))
            start = None
    runs = [r for r in runs if r[1] - r[0] >= 2]
    if not runs:
        return None
    mid = w / 2
    return min(runs, key=lambda r: abs((r[0] + r[1]) / 2 - mid))


def split_merged(img: np.ndarray, pair: Pair | None = None, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a merged A|B image into equal-width left and right halves."""
    h, w = img.shape[:2]
    sep = find_separator(img)
    if sep is not None:
        start, end = sep
        width = min(start, w - end)
        if width >= 8:
            return img[:, start - width:start], img[:, end:end + width]
    if w % 2:
        problem = f"merged image {path or ''} has odd width {w}, so it has no midline and no separator band"
        fix = ("re-export the merged image with an even width (A and B the same size), "
               "add a uniform separator band, or give the pair as two images with \"layout\": \"separate\"")
        if pair is not None:
            raise pair.error(problem, fix)
        raise DataError(path, problem, fix)
    return img[:, : w // 2], img[:, w // 2:]


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (width, height) with a good downsampling filter."""
    if (img.shape[1], img.shape[0]) == size:
        return img
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def detail_box(a: np.ndarray, b: np.ndarray, frac: float = 0.5) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the most detailed square window, found on the mean of A and B.

    Using the mean of both sides keeps the choice the same when A and B are exchanged.
    """
    h, w = a.shape[:2]
    side = max(16, int(min(h, w) * frac))
    grey = (a.astype(np.float32).mean(-1) + b.astype(np.float32).mean(-1)) / 2
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    step = max(8, side // 4)
    best, best_xy = -1.0, (0, 0)
    for y in range(0, h - side + 1, step):
        for x in range(0, w - side + 1, step):
            e = float(energy[y:y + side - 1, x:x + side - 1].mean())
            if e > best:
                best, best_xy = e, (x, y)
    return best_xy[0], best_xy[1], side, side


def views_from_separate(a: np.ndarray, b: np.ndarray, global_long: int = 1024, local_frac: float = 0.5) -> Views:
    """Views for a pair given as two images: resized globals and aligned local crops."""
    if a.shape[:2] != b.shape[:2]:
        b = resize(b, (a.shape[1], a.shape[0]))
    h, w = a.shape[:2]
    scale = min(1.0, global_long / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    x, y, cw, ch = detail_box(a, b, local_frac)
    return Views(resize(a, size), resize(b, size), a[y:y + ch, x:x + cw], b[y:y + ch, x:x + cw])


def load_views(pair: Pair) -> Views:
    """The four views of a pair, with DataErrors that name the pair's file and line."""
    first = load_rgb(pair.image_path(0), pair)
    second = load_rgb(pair.image_path(1), pair)
    if pair.layout == "separate":
        return views_from_separate(first, second)
    gl, gr = split_merged(first, pair, pair.image_path(0))
    ll, lr = split_merged(second, pair, pair.image_path(1))
    return Views(gl, gr, ll, lr)


def merge_side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The inverse of `split_merged` (midline layout): A|B with equal heights and widths."""
    if left.shape != right.shape:
        raise ValueError(f"left and right must have the same shape, got {left.shape} and {right.shape}")
    return np.concatenate([left, right], axis=1)
