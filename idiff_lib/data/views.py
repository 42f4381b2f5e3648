"""The four views of a pair: global-left/right (from ``c0``) and local-left/right (from ``c1``).

A merged image holds Image A on the left and Image B on the right. It is split at a visible
separator band when one is present (a centred run of columns of one uniform colour, which the
halves do not continue as their own frames), else at the midline. Pairs given as two separate
images (``images: [A, B]``) get global views by resizing and local views by cropping both images
at the same coordinates.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.core.imaging import MIN_SIDE, MIN_VIEW_SIDE, to_grey
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

    def swapped(self) -> Views:
        """The same pair with A and B exchanged."""
        return Views(self.global_right, self.global_left, self.local_right, self.local_left)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in VIEW_NAMES}


# The largest image `load_rgb` decodes, in pixels: 100 megapixels (e.g. 12000 x 8333), far above
# the challenge's 1536 px views, and below Pillow's own decompression-bomb refusal (2 x 89.5 MP).
# An RGB image this size takes 300 MB decoded; a larger one is refused with a DataError naming the
# file, the line and the size. The environment variable IDIFF_MAX_IMAGE_PIXELS overrides it.
MAX_IMAGE_PIXELS = 100_000_000


def max_image_pixels() -> int:
    """`MAX_IMAGE_PIXELS`, or the integer in the environment variable ``IDIFF_MAX_IMAGE_PIXELS``."""
    value = os.environ.get("IDIFF_MAX_IMAGE_PIXELS", "").strip()
    if not value:
        return MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise ParameterError(f"IDIFF_MAX_IMAGE_PIXELS must be a positive integer, got {value!r}") from None
    if limit < 1:
        raise ParameterError(f"IDIFF_MAX_IMAGE_PIXELS must be a positive integer, got {value!r}")
    return limit


def _to_rgb8(im: Image.Image) -> np.ndarray | None:
    """RGB uint8 from a decoded PIL image; 16-bit grey is scaled to 8 bits (None: unsupported mode)."""
    if im.mode.startswith("I;16") or im.mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            return None  # a 32-bit integer image: no known range to scale from
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        return None
    return np.asarray(im.convert("RGB"))


def load_rgb(path: str | Path, pair: Pair | None = None) -> np.ndarray:
    """Read an image upright as RGB uint8; unreadable, truncated or too large files raise a DataError.

    The EXIF orientation is applied (`PIL.ImageOps.exif_transpose`), as viewers do: a merged image
    stored rotated, with the tag saying so, is split across the axis it is seen with. 16-bit images
    are scaled to 8 bits (Pillow reads 16-bit RGB as 8-bit RGB itself; 16-bit grey is scaled here);
    32-bit integer or float images are refused.
    """

    def fail(problem: str, fix: str) -> DataError:
        return pair.error(problem, fix) if pair is not None else DataError(path, problem, fix)

    limit = max_image_pixels()
    too_large = (f"resize the image (the largest accepted is {limit:,} pixels), or raise the limit with the "
                 "environment variable IDIFF_MAX_IMAGE_PIXELS")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is checked below
            with Image.open(path) as im:
                w, h = im.size
                if w * h > limit:
                    raise fail(f"image {path} is {w} x {h} = {w * h:,} pixels, over the limit of {limit:,}",
                               too_large)
                im.load()  # decodes fully: a truncated JPEG fails here, not later
                ImageOps.exif_transpose(im, in_place=True)  # no orientation tag: nothing is done
                rgb = _to_rgb8(im)
                mode = im.mode
    except Image.DecompressionBombError as exc:
        raise fail(f"image {path} is too large: {exc}", too_large) from None
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise fail(f"cannot decode image {path}: {exc}",
                   "re-export or re-download the image (it is truncated or not an image file)") from None
    if rgb is None:
        raise fail(f"image {path} has pixel mode {mode!r} (32-bit integer or float), which has no 8-bit scale",
                   "save it as an 8- or 16-bit PNG or as JPEG")
    return rgb


def find_separator(img: np.ndarray, search: float = 0.1, tol: float = 3.0) -> tuple[int, int] | None:
    """The [start, end) columns of a uniform vertical band near the middle, or None.

    A column belongs to a band when its pixels barely vary down the image (std below `tol`
    grey levels in every channel). Only columns within `search` x width of the midline count,
    and the band must be at least 2 px wide, so a single flat column of the photo is not taken.
    """
    w = img.shape[1]
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


# A separator band is at most this fraction of the merged width: a wider flat band is the halves' own
# flat borders (a studio backdrop), which must stay in the halves.
MAX_SEPARATOR_FRACTION = 0.05
# Luma levels: colours closer than this are one colour. JPEG's subsampled chroma bleeds from the photos
# into a flat band's edge columns and moves their luma by up to 4 levels (quality 30 to 100, measured on
# drawn separators of several colours), while their red, green or blue can move by 50.
COLOUR_TOL = 8.0


def _is_separator(img: np.ndarray, band: tuple[int, int], tol: float = 3.0) -> bool:
    """True for a band of `find_separator` that can be a drawn separator, else the image is split at
    its midline. A separator is

    - centred (the halves on either side have equal widths, at least 8 px) and narrow
      (`MAX_SEPARATOR_FRACTION`);
    - of one colour: its columns' mean lumas lie within `COLOUR_TOL` of each other. Two flat
      borders of different colours side by side (white | black) are not one band;
    - distinct from the halves: when an outer edge column of the merged image is flat (luma std
      below `tol`) in the band's colour, the band is the halves' own frames meeting at the
      midline, not a separator.

    Colours are compared by luma, which JPEG keeps at full resolution; its subsampled chroma
    bleeds across a band's or frame's edge.
    """
    w = img.shape[1]
    start, end = band
    if not (start == w - end and start >= 8 and end - start <= max(2, MAX_SEPARATOR_FRACTION * w)):
        return False
    luma = to_grey(img[:, start:end]).mean(axis=0)  # each column's luma
    if np.ptp(luma) >= COLOUR_TOL:
        return False
    for column in (0, w - 1):
        edge = to_grey(img[:, column:column + 1])
        if edge.std() < tol and abs(float(edge.mean()) - float(luma.mean())) < COLOUR_TOL:
            return False
    return True


# The fix for a view under the least size: the least the features measure, which data check asks for.
_SMALL_VIEW_FIX = (f"re-export the images at full size: each view (each half of a merged image) at least "
                   f"{MIN_SIDE} x {MIN_SIDE} px, the least the quality features measure (the challenge's views "
                   "are 1536 px)")


def split_merged(img: np.ndarray, pair: Pair | None = None, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a merged A|B image into equal-width left and right halves.

    The cut is at a separator band when `find_separator` finds one that `_is_separator` accepts (the
    band is dropped), else at the midline. An odd width without such a band, or halves under
    `MIN_VIEW_SIDE` px on a side, is a DataError (naming `pair`'s file and line when given).
    """

    def fail(problem: str, fix: str) -> DataError:
        return pair.error(problem, fix) if pair is not None else DataError(path, problem, fix)

    h, w = img.shape[:2]
    sep = find_separator(img)
    if sep is not None and _is_separator(img, sep):
        left, right = img[:, :sep[0]], img[:, sep[1]:]
    else:
        left, right = img[:, : w // 2], img[:, w // 2:]
    if min(left.shape[:2]) < MIN_VIEW_SIDE:
        raise fail(f"merged image {path or ''} is {w} x {h} px, so its halves (A and B) are {left.shape[1]} x {h} px, "
                   f"under the {MIN_VIEW_SIDE} px a view needs on each side", _SMALL_VIEW_FIX)
    if left.shape[1] != right.shape[1]:
        raise fail(f"merged image {path or ''} has odd width {w}, so it has no midline and no separator band",
                   "re-export the merged image with an even width (A and B the same size), "
                   "add a uniform separator band, or give the pair as two images with \"layout\": \"separate\"")
    return left, right


def check_view_sizes(pair: Pair, views: Views, min_side: int = MIN_SIDE) -> None:
    """Raise the pair's DataError, naming the image, when a view is under `min_side` px on a side.

    `load_views` holds views to `MIN_VIEW_SIDE`; ``idiff data check`` holds them to `MIN_SIDE`, the
    least the quality features of the Answer Model measure.
    """
    sources = {"merged": ((0, "global_left"), (0, "global_right"), (1, "local_left"), (1, "local_right")),
               "separate": ((0, "global_left"), (1, "global_right"), (0, "local_left"), (1, "local_right"))}
    for index, name in sources[pair.layout]:
        h, w = getattr(views, name).shape[:2]
        if min(h, w) < min_side:
            raise pair.error(f"image {pair.image_path(index)} gives a {name.replace('_', ' ')} view of {w} x {h} px, "
                             f"under the {min_side} px a view needs on each side", _SMALL_VIEW_FIX)


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


# Separate-layout images whose aspect ratios differ by more than this fraction are refused.
ASPECT_TOLERANCE = 0.01


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
    """The four views of a pair, with DataErrors that name the pair's file and line.

    A view under `MIN_VIEW_SIDE` px on a side (e.g. from a 2 x 1 merged image) is a DataError here,
    so every command that reads the pair names it, not a later step.
    """
    first = load_rgb(pair.image_path(0), pair)
    second = load_rgb(pair.image_path(1), pair)
    if pair.layout == "separate":
        (ha, wa), (hb, wb) = first.shape[:2], second.shape[:2]
        if abs(wa * hb - wb * ha) > ASPECT_TOLERANCE * wa * hb:
            raise pair.error(f"separate-layout images differ in aspect ratio: A is {wa} x {ha}, B is {wb} x {hb}",
                             "give A and B the same framing and aspect ratio (B is resized to A's size, "
                             "never stretched)")
        views = views_from_separate(first, second)
    else:
        views = Views(*split_merged(first, pair, pair.image_path(0)), *split_merged(second, pair, pair.image_path(1)))
    check_view_sizes(pair, views, MIN_VIEW_SIDE)
    return views


def merge_side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The inverse of `split_merged` (midline layout): A|B with equal heights and widths."""
    if left.shape != right.shape:
        raise ValueError(f"left and right must have the same shape, got {left.shape} and {right.shape}")
    return np.concatenate([left, right], axis=1)
