"""Person vs scene: from the ``p_``/``s_`` filename prefix when present, else a face detector.

Faces come from OpenCV's Haar frontal-face cascade (Viola & Jones, CVPR 2001), which ships with
``opencv-python-headless<5``. Later steps crop faces from the boxes returned here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

import cv2
import numpy as np

from idiff_lib.core.imaging import Box
from idiff_lib.data.pairs import Pair


@dataclass
class Content:
    """category: "person" or "scene"; source: "prefix" or "faces"; faces: boxes in the view."""

    category: str
    source: str
    faces: list[Box] = field(default_factory=list)


@lru_cache(maxsize=1)
def _cascade():
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(
            f"OpenCV could not load its Haar cascade {path}. Install opencv-python-headless<5 "
            "and opencv-python<5 (5.x no longer ships the cascades)."
        )
    return cascade


def detect_faces(rgb: np.ndarray, max_side: int = 640, min_frac: float = 0.06) -> list[Box]:
    """Frontal-face boxes in an RGB image, largest first, in the image's own pixels.

    Args:
        max_side: the image is downscaled to this long side first, for speed.
        min_frac: smallest face side as a fraction of the image's short side.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    scale = min(1.0, max_side / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    small = cv2.equalizeHist(small)
    min_side = max(12, int(min(small.shape) * min_frac))
    found = _cascade().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in (found if len(found) else [])]
    # equal areas by position: OpenCV's threads collect the candidates in no fixed order
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b))


def detect_content(pair: Pair | None = None, image: np.ndarray | None = None, use_prefix: bool = True) -> Content:
    """Category and face boxes of a pair (boxes are in `image`, usually the global-left view).

    The filename prefix decides the category when present and `use_prefix` is set; faces are
    detected whenever an image is given, since later steps crop them.
    """
    faces = detect_faces(image) if image is not None else []
    if use_prefix and pair is not None and pair.category in ("person", "scene"):
        return Content(pair.category, "prefix", faces)
    if image is None:
        raise ValueError("detect_content needs an image when the pair has no p_/s_ prefix")
    return Content("person" if faces else "scene", "faces", faces)


def agreement(prefix_labels: Iterable[str | None], detected: Iterable[str]) -> dict:
    """How often the face detector agrees with the ``p_``/``s_`` labels, where both exist."""
    rows = [(p, d) for p, d in zip(prefix_labels, detected) if p in ("person", "scene")]
    confusion = {f"{p}->{d}": 0 for p in ("person", "scene") for d in ("person", "scene")}
    for p, d in rows:
        confusion[f"{p}->{d}"] += 1
    n = len(rows)
    return {"n": n, "accuracy": (sum(p == d for p, d in rows) / n) if n else None, "confusion": confusion}
