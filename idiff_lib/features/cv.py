"""Multi-source quality features: per view and per region, one tidy row per pair.

Reference: iDiff (NTIRE 2026 RAIM challenge Track 1 winner) grounds its rationales in measured
quality cues: nine hand-crafted features (Laplacian variance, Tenengrad, noise std, high-frequency
energy ratio, Canny edge density, entropy, exposure ratio, Hasler–Süsstrunk colorfulness, mean
brightness) and no-reference IQA models. Here ``skimage.measure.blur_effect`` (Crété-Roffet et al.,
SPIE 2007) is added as a tenth hand-crafted feature, and the IQA models live in `iqa_features`.

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

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from scipy.stats import entropy as scipy_entropy
from skimage.measure import blur_effect
from skimage.restoration import estimate_sigma
from tqdm.auto import tqdm

from idiff_lib.features import pair_cues
from idiff_lib.core import storage
from idiff_lib.data.content import detect_faces
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.data.pairs import Pair
from idiff_lib.core.paths import CACHE_DIR
from idiff_lib.data.views import load_views

CV_FEATURES = (
    "lap_var", "tenengrad", "noise_std", "hf_ratio", "edge_density",
    "entropy", "exposure_ratio", "colorfulness", "brightness", "blur_effect",
)
VIEWS = ("global", "local")
REGIONS = ("global_face", "global_rest")
SOURCES = ("cv", "iqa", "pair")
TABLE_SOURCES = ("cv", "iqa")  # the prompt cues' table (notebook 03): the paper's features and IQA scores
# The Answer member reads the aligned pair-difference cues of `idiff_lib.features.pair_cues`: on the embedded
# benchmark they beat the nine per-image features (0.72 vs 0.54 on test with synthetic training
# pairs), and IQA columns would depend on which weights are installed.
MEMBER_SOURCES = ("pair",)
MIN_SIDE = 32  # px: below this the filters and the wavelet noise estimate have too few pixels
WORK_SIDE = 1024  # px: longer views are downscaled (INTER_AREA) to this long side before measuring
CANNY_THRESHOLDS = (50, 150)  # fixed grey-level hysteresis thresholds, the same for A and B
HF_CUTOFF = 0.25  # radius (fraction of Nyquist) above which FFT energy counts as high frequency
CLIP_LOW, CLIP_HIGH = 5, 250  # grey levels counted as clipped shadows / highlights
FACE_MARGIN = 0.1  # each face box is grown by this fraction of its side on every edge
FACE_DETECT_SIDE = 240  # px: Haar detection runs at this long side (2x faster than 320, same boxes on the demo faces)
FACE_MIN_FRAC = 0.1  # smallest face side / short image side: smaller faces give crops under MIN_SIDE at demo size
# cache namespace: bump the number when a feature definition changes, so cached values are recomputed
CV_VERSION = f"cv-1-w{WORK_SIDE}-f{FACE_DETECT_SIDE}"

# Display names and what a higher value means, for the prompt cues.
CUE_NAMES = {
    "lap_var": ("Laplacian variance", "sharper"),
    "tenengrad": ("Tenengrad", "sharper"),
    "noise_std": ("noise std", "noisier"),
    "hf_ratio": ("high-frequency energy", "more fine detail"),
    "edge_density": ("edge density", "more edges"),
    "entropy": ("entropy", "more tonal detail"),
    "exposure_ratio": ("clipped pixels", "more clipped"),
    "colorfulness": ("colorfulness", "more colourful"),
    "brightness": ("mean brightness", "brighter"),
    "blur_effect": ("blur", "blurrier"),
}
VIEW_NAMES = {"global": "Global", "local": "Detail", "global_face": "Face", "global_rest": "Background"}


# --------------------------------------------------------------------------- hand-crafted features
def to_grey(img: np.ndarray) -> np.ndarray:
    """Grey levels as float32 in [0, 255] (Rec. 601 luma via OpenCV) from RGB, RGBA or grey input."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return img.astype(np.float32)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """RGB uint8 from grey, one-channel, RGB or RGBA input."""
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


def working_size(img: np.ndarray, max_side: int = WORK_SIDE) -> np.ndarray:
    """Downscale with area averaging so the long side is at most `max_side` (no upscaling)."""
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian (OpenCV ``cv2.Laplacian``; Pech-Pacheco et al., ICPR 2000)."""
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3).var())


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
    rgb = working_size(rgb)
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
Box = tuple[int, int, int, int]


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


def pair_cv_features(pair: Pair, views: Any | None = None, faces: bool | None = None) -> dict[str, float]:
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
    for view in VIEWS + REGIONS:
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


def pair_cue_row(pair: Pair, views: Any) -> dict[str, float]:
    """`pair_cues.pair_cues` of one pair, with a bad view reported as a `DataError` naming the pair."""
    try:
        return pair_cues.pair_cues(views)
    except ValueError as exc:
        raise pair.error(f"pair cues: {exc}", "re-export the merged images with A and B the same size, "
                         f"each view >= {2 * pair_cues.TILE} px") from None


# --------------------------------------------------------------------------- the table
def pair_key(pair: Pair) -> str:
    """Content hash of a pair: sha256 of both image files and the layout/category that change the features."""
    digests = [storage.file_sha256(pair.image_path(i)) for i in range(2)]
    return storage.text_sha256("|".join(digests + [pair.layout, str(pair.category)]))


def _check_sources(features: Sequence[str]) -> tuple[str, ...]:
    if isinstance(features, str):
        features = (features,)
    for f in features:
        if f not in SOURCES:
            raise ParameterError(f"unknown feature source {f!r} (features=); choose from {SOURCES}.{suggest(f, SOURCES)}")
    return tuple(features)


@dataclass
class _Cache:
    """Per-pair JSON entries under ``cache_dir/<namespace>/<key[:2]>/<key>.json``."""

    root: Path | None

    def path(self, namespace: str, key: str) -> Path | None:
        return None if self.root is None else self.root / namespace / key[:2] / f"{key}.json"

    def get(self, namespace: str, key: str) -> dict | None:
        path = self.path(namespace, key)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # a cache entry is written atomically, but a user may have edited it
            return None

    def put(self, namespace: str, key: str, values: dict) -> None:
        path = self.path(namespace, key)
        if path is not None:
            storage.write_json(path, values)


def build_feature_table(
    pairs: Iterable[Pair],
    features: Sequence[str] = TABLE_SOURCES,
    cache_dir: str | Path | None = CACHE_DIR / "features",
    out_path: str | Path | None = None,
    iqa_metrics: Sequence[str] | None = None,
    weights_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per pair of quality features, cached by image content hash.

    Args:
        pairs: the pairs (their order is the row order).
        features: the sources, any of ``"cv"`` (hand-crafted), ``"iqa"`` (pyiqa models) and
            ``"pair"`` (the aligned pair-difference cues of `idiff_lib.features.pair_cues`).
        cache_dir: folder of per-pair cache entries (None: no cache), each written atomically as
            soon as the pair is measured: a rerun on the same image files computes nothing again,
            and an interrupted build resumes where it stopped.
        out_path: when given, the table is written there as Parquet, atomically.
        iqa_metrics: pyiqa metric names (default `iqa_features.DEFAULT_METRICS`); metrics whose
            weights are missing are left out with one warning each.
        weights_dir: where to look for pyiqa/CLIP weights (default: torch hub's cache).
        progress: show a tqdm bar.

    Returns:
        A DataFrame indexed by pair id; bad samples keep their row with ``meta.ok = 0`` and NaN
        features, and are listed in ``table.attrs["problems"]`` (and warned about).
    """
    from idiff_lib.features import iqa as iqa_features

    features = _check_sources(features)
    pairs = list(pairs)
    cache = _Cache(Path(cache_dir) if cache_dir is not None else None)
    scorer = iqa_features.IQAScorer(iqa_metrics, weights_dir=weights_dir) if "iqa" in features else None
    rows, problems = [], {}
    for pair in tqdm(pairs, desc="features", unit="pair", disable=not progress):
        row: dict[str, Any] = {"id": pair.id, "meta.ok": 1.0, "meta.person": float(pair.category == "person")}
        try:
            key = pair_key(pair)
            views = None
            if "cv" in features:
                values = cache.get(CV_VERSION, key)
                if values is None:
                    views = load_views(pair)
                    values = pair_cv_features(pair, views)
                    cache.put(CV_VERSION, key, values)
                row.update(values)
            if "pair" in features:
                values = cache.get(pair_cues.VERSION, key)
                if values is None:
                    views = views if views is not None else load_views(pair)
                    values = pair_cue_row(pair, views)
                    cache.put(pair_cues.VERSION, key, values)
                row.update(values)
            if scorer is not None:
                for metric in scorer.metrics:
                    namespace = f"iqa-{metric}-{iqa_features.IQA_VERSION}"
                    values = cache.get(namespace, key)
                    if values is None:
                        views = views if views is not None else load_views(pair)
                        values = scorer.pair_scores(pair, views, metric)
                        cache.put(namespace, key, values)
                    row.update(values)
        except DataError as err:
            problems[pair.id] = str(err)
            warnings.warn(f"feature table: bad sample reported, row kept with meta.ok=0: {err}", stacklevel=2)
            row = {"id": pair.id, "meta.ok": 0.0, "meta.person": row["meta.person"]}
        rows.append(row)
    table = pd.DataFrame(rows, columns=_column_order(rows)).set_index("id") if rows else pd.DataFrame(
        index=pd.Index([], name="id"))
    table = table.astype(float)
    table.attrs["problems"] = problems
    table.attrs["sources"] = list(features)
    if out_path is not None:
        save_table(table, out_path)
    return table


def _column_order(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {"id": None, "meta.ok": None, "meta.person": None}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


def feature_table(pairs: Sequence[Pair], features: Sequence[str] = MEMBER_SOURCES,
                  cache_dir: str | Path | None = CACHE_DIR / "features", progress: bool = True) -> pd.DataFrame:
    """The Answer member's input: the A − B difference columns of `build_feature_table`.

    The ensemble (`idiff_lib.ensemble.FeatureMemberAdapter`) calls this with the pairs only, so its
    permutation importances are over the difference columns the member uses.
    """
    table = build_feature_table(pairs, features=features, cache_dir=cache_dir, progress=progress)
    return member_columns(table)


def member_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The ``*.diff`` columns of a feature table, in a fixed order (a bad row's are NaN)."""
    cols = sorted(c for c in table.columns if c.endswith(".diff"))
    out = table[cols].copy()
    out.attrs = dict(table.attrs)
    return out


def save_table(table: pd.DataFrame, path: str | Path, thresholds: Mapping[str, Any] | None = None) -> Path:
    """Write the table as Parquet atomically, with its companions beside it.

    ``<name>.problems.json`` holds the bad-sample report; ``<name>.thresholds.json`` the cue
    thresholds (`calibrate_thresholds` on the training table), when given or in ``table.attrs``.
    """
    path = Path(path)
    clean = table.copy()
    clean.attrs = {}
    with storage.atomic_path(path) as tmp:
        clean.to_parquet(tmp, engine="pyarrow")
    storage.write_json(path.with_suffix(".problems.json"), table.attrs.get("problems", {}))
    thresholds = thresholds if thresholds is not None else table.attrs.get("thresholds")
    if thresholds is not None:
        save_thresholds(thresholds, path.with_suffix(".thresholds.json"))
    return path


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by `save_table`; its problems (and thresholds, if saved) go in ``attrs``."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "feature table not found", "build it with features.build_feature_table(..., out_path=)")
    table = pd.read_parquet(path)
    problems = path.with_suffix(".problems.json")
    table.attrs["problems"] = json.loads(problems.read_text(encoding="utf-8")) if problems.exists() else {}
    thresholds = path.with_suffix(".thresholds.json")
    if thresholds.exists():
        table.attrs["thresholds"] = load_thresholds(thresholds)
    return table


# --------------------------------------------------------------------------- prompt cues
def _split_column(col: str) -> tuple[str, str, str, str] | None:
    parts = col.split(".")
    if len(parts) != 4 or parts[0] not in TABLE_SOURCES:
        return None
    return parts[0], parts[1], parts[2], parts[3]


def relative_difference(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """|A − B| / (mean of |A| and |B| + `scale`): scale-free, and finite where both are 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.abs(a - b) / ((np.abs(a) + np.abs(b)) / 2 + scale)


LEVELS = tuple(float(x) for x in np.linspace(0, 1, 21))  # the training quantiles stored per feature


def calibrate_thresholds(table_train: pd.DataFrame, quantile: float = 0.75) -> dict[str, dict[str, Any]]:
    """Per ``source.feature.view``: the relative A/B difference above which a cue is worded.

    The threshold is the `quantile` of the relative difference over the training pairs, so about
    ``1 - quantile`` of training pairs get a cue for that feature and view. The quantiles at
    `LEVELS` are kept too, so `render_features` can rank cues of different features by how unusual
    their difference is. `scale` (5% of the feature's median absolute value) keeps near-zero
    features from producing large ratios.

    Raises:
        ParameterError: for a quantile outside (0, 1) or a table without A/B columns.
    """
    if not 0 < quantile < 1:
        raise ParameterError(f"quantile must be in (0, 1), got {quantile}")
    out: dict[str, dict[str, Any]] = {}
    ok = (table_train["meta.ok"] > 0) if "meta.ok" in table_train else pd.Series(True, index=table_train.index)
    for col in table_train.columns:
        parts = _split_column(col)
        if parts is None or parts[3] != "A" or f"{'.'.join(parts[:3])}.B" not in table_train:
            continue
        base = ".".join(parts[:3])
        a, b = table_train.loc[ok, f"{base}.A"], table_train.loc[ok, f"{base}.B"]
        both = pd.concat([a, b]).dropna().abs()
        if both.empty:
            continue
        scale = 0.05 * float(both.median()) + 1e-9
        rel = np.asarray(relative_difference(a, b, scale))
        rel = rel[np.isfinite(rel)]
        if len(rel):
            out[base] = {"threshold": float(np.quantile(rel, quantile)), "scale": scale,
                         "quantiles": [float(v) for v in np.quantile(rel, LEVELS)], "n": len(rel)}
    if not out:
        raise ParameterError("calibrate_thresholds: the table has no source.feature.view.A/B columns with values")
    return out


def save_thresholds(thresholds: Mapping[str, Any], path: str | Path) -> Path:
    """Write thresholds as JSON (conventionally beside the Parquet table)."""
    return storage.write_json(path, dict(thresholds))


def load_thresholds(path: str | Path) -> dict[str, dict[str, float]]:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "thresholds file not found", "run features.calibrate_thresholds on the training table")
    return json.loads(path.read_text(encoding="utf-8"))


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """A and B with the fewest significant digits (2 to 4) that still tell them apart."""
    for digits in (2, 3, 4):
        fa, fb = (_fmt(v, digits) for v in (a, b))
        if fa != fb:
            break
    return fa, fb


def _fmt(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 10 ** digits:
        return f"{value:.0f}"
    if mag >= 0.01:
        decimals = max(0, digits - 1 - math.floor(math.log10(mag)))
        return f"{value:.{decimals}f}"
    return f"{value:.{digits - 1}e}"


def _iqa_direction(metric: str) -> bool:
    """True when a higher score of the pyiqa metric is better."""
    from idiff_lib.features import iqa as iqa_features

    return not iqa_features.lower_better(metric)


def render_features(
    row: Mapping[str, Any] | pd.Series,
    style: str = "cv",
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    max_lines: int = 8,
    per_feature: int = 2,
) -> list[str]:
    """Compact cue lines for the Thinking-model prompt, most unusual difference first.

    Example: ``Face noise std: A 2.1 vs B 4.7 (B noisier)``. A cue is worded only where the
    relative A/B difference exceeds its calibrated threshold (`calibrate_thresholds`); cues are
    ranked by where that difference falls among the training pairs' differences.

    Args:
        row: one row of the feature table (a Series or a dict of ``source.feature.view.side``).
        style: ``"cv"`` (hand-crafted cues), ``"iqa"`` (IQA-model cues) or ``"all"``.
        thresholds: from `calibrate_thresholds`; required, so no cue is worded uncalibrated.
        max_lines: keep at most this many cues.
        per_feature: keep at most this many views/regions of one feature (the strongest).

    Raises:
        ParameterError: for an unknown style or missing thresholds.
    """
    styles = {"cv": ("cv",), "iqa": ("iqa",), "all": ("cv", "iqa")}
    if style not in styles:
        raise ParameterError(f"unknown style {style!r}; choose from {tuple(styles)}.{suggest(style, styles)}")
    if thresholds is None:
        raise ParameterError("render_features needs thresholds= (from calibrate_thresholds on the training table)")
    if float(row.get("meta.ok", 1.0)) == 0:
        return []
    cues = []
    for base, th in thresholds.items():
        source, name, view = base.split(".")
        if source not in styles[style]:
            continue
        a, b = row.get(f"{base}.A"), row.get(f"{base}.B")
        if a is None or b is None or not (math.isfinite(float(a)) and math.isfinite(float(b))):
            continue
        a, b = float(a), float(b)
        rel = float(relative_difference(a, b, th["scale"]))
        if rel <= th["threshold"] or a == b:
            continue
        higher = "A" if a > b else "B"
        if source == "cv":
            label, more = CUE_NAMES.get(name, (name.replace("_", " "), "higher"))
            verdict = f"{higher} {more}"
        else:
            label = name.upper() if len(name) <= 6 else name
            better = higher if _iqa_direction(name) else ("B" if higher == "A" else "A")
            verdict = f"{better} better"
        rank = float(np.interp(rel, th.get("quantiles", [th["threshold"]]), LEVELS if "quantiles" in th else [1.0]))
        fa, fb = _fmt_pair(a, b)
        cues.append((rank, rel / max(th["threshold"], 1e-12), name,
                     f"{VIEW_NAMES.get(view, view)} {label}: A {fa} vs B {fb} ({verdict})"))
    cues.sort(key=lambda c: (-c[0], -c[1]))
    lines, used = [], {}
    for _, _, name, text in cues:
        if used.get(name, 0) >= per_feature:
            continue
        used[name] = used.get(name, 0) + 1
        lines.append(text)
    return lines[:max_lines]


# --------------------------------------------------------------------------- the Answer member
def as_labels(labels: Iterable[Any]) -> np.ndarray:
    """1.0 where Image A is better, 0.0 where B is: accepts "A"/"B" or numbers (> 0.5 = A)."""
    out = []
    for i, v in enumerate(labels):
        if isinstance(v, str):
            if v not in ("A", "B"):
                raise ParameterError(f"label {i} is {v!r}; expected 'A' or 'B'")
            out.append(1.0 if v == "A" else 0.0)
        else:
            out.append(1.0 if float(v) > 0.5 else 0.0)
    return np.asarray(out)


DEFAULT_GRID = ({"kind": "logistic", "C": 0.01}, {"kind": "logistic", "C": 0.1}, {"kind": "logistic", "C": 1.0},
                {"kind": "gbm"})


class FeatureMember:
    """Feature-based Answer member: a scikit-learn classifier on the A − B feature differences.

    Antisymmetric by construction: it is trained on both orders (x, y) and (−x, 1 − y), and at
    predict time returns (p(x) + 1 − p(−x)) / 2, so exchanging A and B gives exactly 1 − p.
    Missing differences (no face in a scene, a flagged bad sample) are 0, i.e. no evidence.

    Args:
        kind: ``"logistic"`` (standardised logistic regression), ``"gbm"`` (exact gradient
            boosting, for a few hundred pairs) or ``"hgb"`` (histogram gradient boosting, for the
            thousands of synthetic training pairs of `pretext.synthetic_cue_table`).
        C: inverse regularisation strength of the logistic regression.
        seed: random state of the gradient boosting.
    """

    KINDS = ("logistic", "gbm", "hgb")

    def __init__(self, kind: str = "logistic", C: float = 0.1, seed: int = 0):
        if kind not in self.KINDS:
            raise ParameterError(f"unknown FeatureMember kind {kind!r}; choose from {self.KINDS}.{suggest(kind, self.KINDS)}")
        self.kind, self.C, self.seed = kind, C, seed
        self.columns_: list[str] | None = None
        self.model_: Any = None

    def _estimator(self):
        from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.kind == "logistic":
            # no centring and no intercept: the decision function stays odd in x
            return make_pipeline(StandardScaler(with_mean=False),
                                 LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000))
        if self.kind == "hgb":
            # 15 leaves, 300 rounds: on 4,000-12,000 synthetic pairs larger trees fit the synthetic
            # photos more closely without gaining on val (0.70-0.74 either way)
            return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                                  l2_regularization=1.0, early_stopping=False, random_state=self.seed)
        # the exact (single-threaded) booster: at a few hundred pairs it beats the OpenMP histogram one on 2 busy cores
        return GradientBoostingClassifier(n_estimators=150, learning_rate=0.05, max_depth=2, subsample=0.8,
                                          random_state=self.seed)

    def _matrix(self, table: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(table, pd.DataFrame):
            if self.columns_ is None:
                cols = sorted(c for c in table.columns if c.endswith(".diff"))
            else:
                cols = self.columns_
                missing = [c for c in cols if c not in table.columns]
                if missing:
                    raise DataError(None, f"feature table lacks {len(missing)} column(s) the member was trained on, "
                                    f"e.g. {missing[:3]}",
                                    "build the table with the same features= sources as at training time")
            x = table[cols].to_numpy(dtype=float)
        else:
            x = np.asarray(table, dtype=float)
            if self.columns_ is not None and x.shape[1] != len(self.columns_):
                raise ParameterError(f"expected {len(self.columns_)} columns, got {x.shape[1]}")
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def fit(self, table: pd.DataFrame, labels: Iterable[Any]) -> FeatureMember:
        """Fit on the difference columns of `table` and labels ("A"/"B" or 1 = A better)."""
        self.columns_ = None
        x = self._matrix(table)
        if isinstance(table, pd.DataFrame):
            self.columns_ = sorted(c for c in table.columns if c.endswith(".diff"))
        y = as_labels(labels)
        if len(y) != len(x):
            raise ParameterError(f"{len(x)} table rows but {len(y)} labels")
        if not x.shape[1]:
            raise ParameterError("the table has no '.diff' columns to learn from")
        self.model_ = self._estimator().fit(np.vstack([x, -x]), np.concatenate([y, 1 - y]))
        return self

    def predict_proba(self, table: pd.DataFrame | np.ndarray) -> np.ndarray:
        """p_left (probability that Image A is better) per row, exactly antisymmetric."""
        if self.model_ is None:
            raise ParameterError("FeatureMember.predict_proba called before fit")
        x = self._matrix(table)
        if not len(x):
            return np.zeros(0)
        classes = list(self.model_.classes_)
        pos = classes.index(1.0)
        p = self.model_.predict_proba(x)[:, pos]
        q = self.model_.predict_proba(-x)[:, pos]
        return (p + 1 - q) / 2

    def predict_by_id(self, table: pd.DataFrame) -> pd.Series:
        """p_left per pair id (the table's index)."""
        return pd.Series(self.predict_proba(table), index=table.index, name="p_left")

    def permutation_importances(self, table: pd.DataFrame, labels: Iterable[Any], n_repeats: int = 5,
                                seed: int = 0) -> pd.DataFrame:
        """Accuracy drop when each difference column is shuffled (``sklearn.inspection.permutation_importance``)."""
        from sklearn.inspection import permutation_importance

        frame = table[self.columns_]
        y = as_labels(labels)

        def score(est: FeatureMember, X: Any, yy: np.ndarray) -> float:
            X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self.columns_)
            return float(np.mean((est.predict_proba(X) > 0.5) == (yy > 0.5)))

        res = permutation_importance(self, frame, y, scoring=score, n_repeats=n_repeats, random_state=seed)
        return (pd.DataFrame({"feature": self.columns_, "importance": res.importances_mean, "std": res.importances_std})
                .sort_values("importance", ascending=False).reset_index(drop=True))

    @classmethod
    def select(cls, train: pd.DataFrame, y_train: Iterable[Any], val: pd.DataFrame, y_val: Iterable[Any],
               grid: Sequence[Mapping[str, Any]] = DEFAULT_GRID) -> tuple[FeatureMember, pd.DataFrame]:
        """Fit each setting of `grid` on train and keep the best by validation accuracy (first on ties).

        Returns:
            The chosen member (fitted on train only) and a table of every setting's validation accuracy.
        """
        y_train, y_val = as_labels(y_train), as_labels(y_val)
        rows, best, best_acc = [], None, -1.0
        for settings in grid:
            member = cls(**settings).fit(train, y_train)
            acc = float(np.mean((member.predict_proba(val) > 0.5) == (y_val > 0.5)))
            rows.append({**settings, "val_accuracy": acc})
            if acc > best_acc:
                best, best_acc = member, acc
        return best, pd.DataFrame(rows)

    def save(self, path: str | Path) -> Path:
        """joblib dump, written atomically."""
        import joblib

        with storage.atomic_path(path) as tmp:
            joblib.dump(self, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureMember:
        import joblib

        path = Path(path)
        if not path.exists():
            raise DataError(path, "feature member not found", "fit one and call FeatureMember.save(path)")
        member = joblib.load(path)
        if not isinstance(member, cls):
            raise DataError(path, f"holds a {type(member).__name__}, not a FeatureMember", "point at a saved FeatureMember")
        return member
