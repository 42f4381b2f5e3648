"""Image helpers shared by the benchmark builder and the quality features: defined once, here.

Images are numpy arrays, RGB uint8 (H, W, 3) unless said otherwise; boxes are `Box` tuples.
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in the pixels of the image given
MIN_SIDE = 32  # px: below this the filters and the wavelet noise estimate have too few pixels
# px: the smallest view a pair may give at all (the smallest detail crop `views.detail_box` makes);
# the view loader refuses smaller ones. `idiff data check` holds every view to MIN_SIDE, which the
# quality features need; the networks and the thinking models resize their views and read smaller ones.
MIN_VIEW_SIDE = 16


def to_grey(img: np.ndarray) -> np.ndarray:
    """Grey levels as float32 in [0, 255] (Rec. 601 luma via OpenCV) from RGB, RGBA or grey input."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return img.astype(np.float32)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """RGB uint8 from grey, one-channel, RGB or RGBA input.

    Raises:
        ValueError: for an image that is not uint8 or of an unsupported shape.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] >= 3:
        return img[..., :3]
    raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {img.shape}")


def working_size(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale with area averaging so the long side is at most `max_side` (no upscaling)."""
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def laplacian_variance(grey: np.ndarray, ksize: int = 3) -> float:
    """Variance of the Laplacian of a grey float32 image (``cv2.Laplacian``; Pech-Pacheco et al., ICPR 2000).

    Args:
        grey: grey levels as float32 (`to_grey`).
        ksize: the Laplacian aperture: 3 (the quality features' 3x3 kernel) or 1 (the 4-neighbour
            kernel of the demo set's single-cue baseline); each caller keeps its own numbers.
    """
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=ksize).var())
