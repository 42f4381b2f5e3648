"""Multi-source quality features: per view and per region, one tidy row per pair.

Reference: iDiff (NTIRE 2026 RAIM challenge Track 1 winner) grounds its rationales in measured
quality cues: nine hand-crafted features (Laplacian variance, Tenengrad, noise std, high-frequency
energy ratio, Canny edge density, entropy, exposure ratio, Hasler–Süsstrunk colorfulness, mean
brightness) and no-reference IQA models. Here ``skimage.measure.blur_effect`` (Crété-Roffet et al.,
SPIE 2007) is added as a tenth hand-crafted feature, and the IQA models live in `idiff_lib.features.iqa`.
The cached table of all sources is built in `idiff_lib.features.table`; the prompt cue lines in
`idiff_lib.features.cue_text`.

The Answer Model's feature member reads the ``pair`` source instead: the aligned pair-difference
cues of `idiff_lib.features.pair_cues` (``pair.<cue>.<view>.diff`` columns, cached like the others).

Columns are named ``source.feature.view.side``: source ``cv`` (hand-crafted) or ``iqa``; view
``global`` / ``local`` (the two merged views) and, for person pairs, ``global_face`` (the largest
Haar face box) and ``global_rest`` (the largest face-free strip beside it); side ``A`` (left),
``B`` (right) or ``diff`` (A − B). ``meta.*`` columns flag what a row holds: ``meta.ok`` (0 for
a bad sample, whose feature columns are NaN), ``meta.person``, ``meta.has_face`` and
``meta.has_rest`` (0 means the face or rest columns are NaN on purpose: no face found, or no
face-free strip of at least 32 px). The table is indexed by pair id.

Face boxes are detected once per pair on the pixel mean of the global A and B views, so the
same box is used for both sides and exchanging A and B gives exactly the negated differences.
They are not mapped onto the local views: the detail crops' position in the photo is not stored
in RAIM-PIQA, so any mapping would be a guess.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.stats import entropy as scipy_entropy  # alias: this module's own cue is `entropy`
from skimage.measure import blur_effect
from skimage.restoration import estimate_sigma

from idiff_lib.core.imaging import MIN_SIDE, Box, laplacian_variance, to_grey, to_rgb, working_size
from idiff_lib.data.content import detect_faces
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import VIEWS, Views, load_views
from idiff_lib.features import pair_cues

CV_FEATURES = (
    "lap_var", "tenengrad", "noise_std", "hf_ratio", "edge_density",
    "entropy", "exposure_ratio", "colorfulness", "brightness", "blur_effect",
)
# Regions of the global view measured in person pairs besides the two whole views.
REGION_VIEWS = ("global_face", "global_rest")
WORK_SIDE = 1024  # px: longer views are downscaled (INTER_AREA) to this long side before measuring
CANNY_THRESHOLDS = (50, 150)  # fixed grey-level hysteresis thresholds, the same for A and B
HF_CUTOFF = 0.25  # radius (fraction of Nyquist) above which FFT energy counts as high frequency
CLIP_LOW, CLIP_HIGH = 5, 250  # grey levels counted as clipped shadows / highlights
FACE_MARGIN = 0.1  # each face box is grown by this fraction of its side on every edge
FACE_DETECT_SIDE = 240  # px: Haar detection runs at this long side (2x faster than 320, same boxes on the demo faces)
FACE_MIN_FRAC = 0.1  # smallest face side / short image side: smaller faces give crops under MIN_SIDE at demo size
# cache namespace: bump the number when a feature definition changes, so cached values are recomputed
CV_VERSION = f"cv-1-w{WORK_SIDE}-f{FACE_DETECT_SIDE}"


# --------------------------------------------------------------------------- hand-crafted features
def tenengrad(grey: np.ndarray) -> float:
    """Mean squared Sobel gradient magnitude (OpenCV ``cv2.Sobel``; Krotkov 1988).

    OpenCV gives the gradients; the mean of gx² + gy² is written here (no library offers it).
    """
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(gx * gx + gy * gy))


def noise_std(grey: np.ndarray) -> float:
    """Gaussian noise std in grey levels (``skimage.restoration.estimate_sigma``, Donoho's wavelet MAD)."""
    return float(estimate_sigma(grey, channel_axis=None))


def hf_energy_ratio(grey: np.ndarray, cutoff: float = HF_CUTOFF) -> float:
    """Share of the non-DC spectral energy above `cutoff` x Nyquist (numpy FFT).

    Hand-written: no library offers this ratio. The mean is removed first, so the DC term does not
    count; a constant image has no energy and gets 0.
    """
    g = grey - grey.mean()
    power = np.abs(np.fft.rfft2(g)) ** 2
    fy = np.fft.fftfreq(g.shape[0])[:, None]
    fx = np.fft.rfftfreq(g.shape[1])[None, :]
    radius = np.sqrt(fx ** 2 + fy ** 2) / 0.5  # 1.0 = Nyquist
    total = float(power.sum())
    if total <= 0:
        return 0.0
    return float(power[radius > cutoff].sum() / total)


def edge_density(grey: np.ndarray, thresholds: tuple[int, int] = CANNY_THRESHOLDS) -> float:
    """Fraction of pixels on Canny edges (OpenCV ``cv2.Canny`` with fixed thresholds)."""
    edges = cv2.Canny(np.clip(grey, 0, 255).astype(np.uint8), *thresholds)
    return float(np.count_nonzero(edges) / edges.size)


def entropy(grey: np.ndarray) -> float:
    """Shannon entropy of the 8-bit grey-level histogram in bits (``cv2.calcHist`` + ``scipy.stats.entropy``).

    Equal to ``skimage.measure.shannon_entropy`` on the uint8 image, about 5x faster.
    """
    hist = cv2.calcHist([np.clip(grey, 0, 255).astype(np.uint8)], [0], None, [256], [0, 256]).ravel()
    return float(scipy_entropy(hist, base=2))


def exposure_ratio(grey: np.ndarray, low: int = CLIP_LOW, high: int = CLIP_HIGH) -> float:
    """Fraction of clipped pixels: grey <= `low` (shadows) or >= `high` (highlights). Hand-written (one line)."""
    return float(np.mean((grey <= low) | (grey >= high)))


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (SPIE 2003) colourfulness M = σ_rgyb + 0.3 μ_rgyb.

    Hand-written: no maintained library implements it. 0 for any grey image.
    """
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    sigma = math.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mu = math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(sigma + 0.3 * mu)


def blur(grey: np.ndarray) -> float:
    """``skimage.measure.blur_effect`` (0 sharp .. 1 blurred); a constant image (0/0 there) is 1, fully blurred."""
    value = float(blur_effect(grey, h_size=11))
    return value if math.isfinite(value) else 1.0


def cv_features(img: np.ndarray) -> dict[str, float]:
    """The ten hand-crafted features of one image (RGB or grey uint8), at the working size.

    Raises:
        ValueError: for an image under `MIN_SIDE` px on a side or of an unsupported shape/dtype.
    """
    rgb = to_rgb(img)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image is {w}x{h} px; the features need at least {MIN_SIDE} px on each side")
    rgb = working_size(rgb, WORK_SIDE)
    grey = to_grey(rgb)
    out = {
        "lap_var": laplacian_variance(grey),
        "tenengrad": tenengrad(grey),
        "noise_std": noise_std(grey),
        "hf_ratio": hf_energy_ratio(grey),
        "edge_density": edge_density(grey),
        "entropy": entropy(grey),
        "exposure_ratio": exposure_ratio(grey),
        "colorfulness": colorfulness(rgb),
        "brightness": float(grey.mean()),
        "blur_effect": blur(grey),
    }
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"non-finite feature(s) {bad}")
    return out


# --------------------------------------------------------------------------- regions
def face_box(global_a: np.ndarray, global_b: np.ndarray) -> Box | None:
    """The largest Haar face box on the mean of the two global views, grown by `FACE_MARGIN`, or None.

    Boxes smaller than `MIN_SIDE` px after growing are ignored.
    """
    mean = ((to_rgb(global_a).astype(np.uint16) + to_rgb(global_b)) // 2).astype(np.uint8)
    boxes = detect_faces(mean, max_side=FACE_DETECT_SIDE, min_frac=FACE_MIN_FRAC)
    if not boxes:
        return None
    x, y, w, h = boxes[0]
    H, W = mean.shape[:2]
    mx, my = int(w * FACE_MARGIN), int(h * FACE_MARGIN)
    x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(W, x + w + mx), min(H, y + h + my)
    if min(x1 - x0, y1 - y0) < MIN_SIDE:
        return None
    return x0, y0, x1 - x0, y1 - y0


def rest_box(shape: tuple[int, ...], box: Box) -> Box | None:
    """The largest of the four strips (left, right, above, below) that do not touch the face box."""
    H, W = shape[:2]
    x, y, w, h = box
    strips = [(0, 0, x, H), (x + w, 0, W - x - w, H), (0, 0, W, y), (0, y + h, W, H - y - h)]
    strips = [s for s in strips if min(s[2], s[3]) >= MIN_SIDE]
    return max(strips, key=lambda s: s[2] * s[3]) if strips else None


def _crop(img: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return img[y:y + h, x:x + w]


def pair_cv_features(pair: Pair, views: Views | None = None, faces: bool | None = None) -> dict[str, float]:
    """``cv.*`` columns of one pair (A, B and diff for every view and region), plus ``meta.has_face/has_rest``.

    Args:
        views: the pair's `Views` (loaded when None).
        faces: measure face/rest regions; None = for person pairs and pairs without a p_/s_ prefix.

    Raises:
        DataError: naming the pair's file and line, for a view the features cannot be measured on.
    """
    views = views if views is not None else load_views(pair)
    faces = pair.category != "scene" if faces is None else faces
    images = {"global": (views.global_left, views.global_right), "local": (views.local_left, views.local_right)}
    for view, (a, b) in images.items():
        if a.shape[:2] != b.shape[:2] or min(a.shape[:2]) < MIN_SIDE:
            raise pair.error(f"{view} views of A and B are {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]} px; "
                             f"the features need equal sizes of at least {MIN_SIDE} px",
                             "re-export the merged images with A and B the same size, each view >= 32 px")
    box = face_box(*images["global"]) if faces else None
    if box is not None:
        rest = rest_box(views.global_left.shape, box)
        images["global_face"] = tuple(_crop(v, box) for v in images["global"])
        if rest is not None:
            images["global_rest"] = tuple(_crop(v, rest) for v in images["global"])
    row: dict[str, float] = {"meta.has_face": float(box is not None), "meta.has_rest": float("global_rest" in images)}
    for view in VIEWS + REGION_VIEWS:
        if view not in images:
            for name in CV_FEATURES:
                for side in ("A", "B", "diff"):
                    row[f"cv.{name}.{view}.{side}"] = float("nan")
            continue
        per_side = {}
        for side, img in zip(("A", "B"), images[view]):
            try:
                per_side[side] = cv_features(img)
            except ValueError as exc:
                raise pair.error(f"{view} view of image {side}: {exc}",
                                 "check the merged images (both views at least "
                                 f"{MIN_SIDE} px, RGB or grey uint8)") from None
        for name in CV_FEATURES:
            a, b = per_side["A"][name], per_side["B"][name]
            row[f"cv.{name}.{view}.A"], row[f"cv.{name}.{view}.B"], row[f"cv.{name}.{view}.diff"] = a, b, a - b
    return row


def pair_cue_row(pair: Pair, views: Views) -> dict[str, float]:
    """`pair_cues.pair_cues` of one pair, with a bad view reported as a `DataError` naming the pair."""
    try:
        return pair_cues.pair_cues(views)
    except ValueError as exc:
        raise pair.error(f"pair cues: {exc}", "re-export the merged images with A and B the same size, "
                         f"each view >= {2 * pair_cues.TILE} px") from None
