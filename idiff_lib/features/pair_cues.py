"""Aligned pair-difference cues: what one rendition has that the other lacks, tile by tile.

The two sides of a pair are renditions of the same shot, aligned to the pixel. Their difference
is therefore the difference of their defects, and each defect leaves its own mark on it:

- added noise: band energy that the other side does not share (the residual after projecting one
  side's band-pass detail onto the other's), strongest in flat tiles, varying with tone;
- sharpening halos: more band energy along the shared detail (a gain above 1), at edges;
- smearing, defocus and compression: less band energy along the shared detail (a gain below 1),
  smearing mostly in textured tiles, defocus everywhere;
- chroma blotches: chroma band energy in flat tiles; exposure and white balance: mean shifts.

Every view is cut into 16 px tiles, measured in four luminance bands (difference of Gaussians,
sigma 0.7 to 5.6 px) and three chroma bands, and summarised per tile class (flat dark / mid /
bright, textured, edges, from the pair's mean image, so both sides share the classes). A defect
on one region only (a face, the background) moves only some tiles, so tail shares are kept as
well as means.

Every cue is an exactly odd function of the pair: exchanging A and B negates it bit for bit
(logs are subtracted, never divided; no quantile interpolation). So the `features.FeatureMember`
contract, "a swap maps x to -x", holds, and its answer flips exactly.

Cost: about 28 ms per pair (a 320x256 global and a 208 px detail view) on one core.
"""

from __future__ import annotations

import cv2
import numpy as np

from idiff_lib.data.views import VIEWS, Views

VERSION = "pair-1"  # bump when a cue changes: cached values are then recomputed
TILE = 16
LUMA_SIGMAS = (0.7, 1.4, 2.8, 5.6)
CHROMA_SIGMAS = (1.0, 3.0, 8.0)
TAILS = (0.5, 1.5)  # log-energy ratios counted as "clearly more on one side"
CLASSES = ("flat_dark", "flat_mid", "flat_bright", "textured", "edges")


def _names() -> list[str]:
    names = []
    for k in range(len(LUMA_SIGMAS)):
        for cls in CLASSES:
            names += [f"y{k}_energy_{cls}", f"y{k}_unshared_{cls}", f"y{k}_gain_{cls}"]
        for stat in ("energy", "unshared"):
            for t in TAILS:
                names += [f"y{k}_{stat}_share_{t}", f"y{k}_{stat}_excess_{t}"]
    for ch in ("cr", "cb"):
        for k in range(len(CHROMA_SIGMAS)):
            names += [f"{ch}{k}_energy_flat", f"{ch}{k}_energy_mean", f"{ch}{k}_share_{TAILS[0]}", f"{ch}{k}_excess_{TAILS[0]}"]
        names += [f"{ch}_mean_shift", f"{ch}_log_std"]
    return names + ["y_mean_shift", "y_log_std", "highlight_clip", "shadow_clip", "midtone_distance"]


NAMES: tuple[str, ...] = tuple(_names())

_CLASS_WORDS = {"flat_dark": "flat dark", "flat_mid": "flat mid-tone", "flat_bright": "flat bright",
                "textured": "textured", "edges": "edge"}
_STAT_WORDS = {
    "energy": "band energy (log ratio A/B)",
    "unshared": "energy one side holds beyond the other (log ratio A/B: noise, grain)",
    "gain": "gain along the shared detail (> 0: A amplifies it, halos; < 0: A loses it, blur or smearing)",
}
_GLOBAL_WORDS = {
    "y_mean_shift": "mean brightness A − B (exposure)",
    "y_log_std": "log contrast (luminance std) A − B",
    "highlight_clip": "share of clipped highlights (Y > 0.97) A − B",
    "shadow_clip": "share of crushed shadows (Y < 0.03) A − B",
    "midtone_distance": "distance of mean brightness from mid-grey A − B (> 0: A further off)",
}


def _meaning(name: str) -> str:
    """One line saying what the cue `name` (one of `NAMES`) measures; positive values lean to A."""
    if name in _GLOBAL_WORDS:
        return _GLOBAL_WORDS[name]
    head, _, rest = name.partition("_")
    if head[0] == "y":
        band = f"luma band {head[1:]} (sigma {LUMA_SIGMAS[int(head[1:])]} px)"
        stat, _, where = rest.partition("_")
        if where in _CLASS_WORDS:
            return f"{band}: {_STAT_WORDS[stat]} in {_CLASS_WORDS[where]} tiles"
        kind, t = where.rsplit("_", 1)
        what = "share of tiles clearly higher on A minus on B" if kind == "share" else "mean excess, A minus B"
        return f"{band}: {what}, {stat} log ratio beyond {t}"
    channel = {"cr": "red-difference chroma", "cb": "blue-difference chroma"}[head[:2]]
    if head in ("cr", "cb"):
        return f"{channel}: {'mean shift A − B (white balance)' if rest == 'mean_shift' else 'log std A − B'}"
    band = f"{channel} band {head[2:]} (sigma {CHROMA_SIGMAS[int(head[2:])]} px)"
    if rest.startswith("energy"):
        return f"{band}: energy log ratio A/B, {'flat tiles (blotches)' if rest.endswith('flat') else 'all tiles'}"
    kind, t = rest.rsplit("_", 1)
    what = "share of tiles clearly higher on A minus on B" if kind == "share" else "mean excess, A minus B"
    return f"{band}: {what}, energy log ratio beyond {t}"


# Cue name -> one line of meaning, for the figures and tables that show cue importances.
GLOSSARY: dict[str, str] = {name: _meaning(name) for name in NAMES}


def _ycc(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255.0
    return x[..., 0], x[..., 1], x[..., 2]


def _bands(y: np.ndarray, sigmas: tuple[float, ...]) -> list[np.ndarray]:
    out, prev = [], y
    for s in sigmas:
        low = cv2.GaussianBlur(y, (0, 0), s)
        out.append(prev - low)
        prev = low
    return out


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    return cv2.blur(x, (k, k))[k // 2::k, k // 2::k].ravel()


def _mean_in(v: np.ndarray, mask: np.ndarray) -> float:
    return float(v[mask].mean()) if mask.any() else 0.0


def _tails(r: np.ndarray, thresholds: tuple[float, ...] = TAILS) -> list[float]:
    """Per threshold: share of tiles clearly higher on A minus on B, and the mean excess beyond it."""
    out = []
    for t in thresholds:
        out += [float(np.mean(r > t) - np.mean(r < -t)),
                float(np.mean(np.maximum(r - t, 0)) - np.mean(np.maximum(-r - t, 0)))]
    return out


def view_cues(a: np.ndarray, b: np.ndarray, tile: int = TILE) -> np.ndarray:
    """The cues of one view pair (equal-size RGB uint8 images, A and B), in `NAMES` order."""
    if a.shape != b.shape:
        raise ValueError(f"A and B differ in size: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}")
    if min(a.shape[:2]) < 2 * tile:
        raise ValueError(f"a view of {a.shape[1]}x{a.shape[0]} px is too small (need {2 * tile} px per side)")
    ya, cra, cba = _ycc(a)
    yb, crb, cbb = _ycc(b)
    mean = 0.5 * (ya + yb)  # symmetric in A and B: both sides get the same tile classes
    gx, gy = cv2.Sobel(mean, cv2.CV_32F, 1, 0), cv2.Sobel(mean, cv2.CV_32F, 0, 1)
    structure, tone = _pool(np.sqrt(gx * gx + gy * gy), tile), _pool(mean, tile)
    q30, q90 = np.quantile(structure, [0.3, 0.9])
    flat = structure <= q30
    classes = [flat & (tone < 0.35), flat & (tone >= 0.35) & (tone < 0.7), flat & (tone >= 0.7),
               (structure > q30) & (structure < q90), structure >= q90]
    f: list[float] = []
    for ha, hb in zip(_bands(ya, LUMA_SIGMAS), _bands(yb, LUMA_SIGMAS)):
        ea, eb, c = _pool(ha * ha, tile), _pool(hb * hb, tile), _pool(ha * hb, tile)
        energy = np.log(ea + 1e-8) - np.log(eb + 1e-8)
        # what each side holds beyond its projection on the other: noise, grain, blotches
        ua, ub = np.maximum(ea - c * c / (eb + 1e-9), 0), np.maximum(eb - c * c / (ea + 1e-9), 0)
        unshared = np.log(ua + 1e-8) - np.log(ub + 1e-8)
        gain = c / (eb + 1e-9) - c / (ea + 1e-9)  # > 0: A amplifies the shared detail (halos), < 0: loses it
        for cls in classes:
            f += [_mean_in(energy, cls), _mean_in(unshared, cls), _mean_in(gain, cls)]
        f += _tails(energy) + _tails(unshared)
    for ca, cb in ((cra, crb), (cba, cbb)):
        for ha, hb in zip(_bands(ca, CHROMA_SIGMAS), _bands(cb, CHROMA_SIGMAS)):
            r = np.log(_pool(ha * ha, tile) + 1e-9) - np.log(_pool(hb * hb, tile) + 1e-9)
            f += [_mean_in(r, flat), float(r.mean())] + _tails(r, TAILS[:1])
        f += [float(ca.mean() - cb.mean()), float(np.log(ca.std() + 1e-4) - np.log(cb.std() + 1e-4))]
    f += [float(ya.mean() - yb.mean()), float(np.log(ya.std() + 1e-4) - np.log(yb.std() + 1e-4)),
          float((ya > 0.97).mean() - (yb > 0.97).mean()), float((ya < 0.03).mean() - (yb < 0.03).mean()),
          float(abs(ya.mean() - 0.45) - abs(yb.mean() - 0.45))]
    return np.asarray(f, dtype=np.float64)


def columns() -> list[str]:
    """Feature-table column names: ``pair.<cue>.<view>.diff`` (the ``.diff`` columns the member reads)."""
    return [f"pair.{name}.{view}.diff" for view in VIEWS for name in NAMES]


def pair_cues(views: Views) -> dict[str, float]:
    """All cues of a pair's `Views` (global and local), keyed by `columns()`.

    Raises:
        ValueError: a view pair of unequal sizes or under 32 px.
    """
    out: dict[str, float] = {}
    for view, (a, b) in (("global", (views.global_left, views.global_right)),
                         ("local", (views.local_left, views.local_right))):
        for name, value in zip(NAMES, view_cues(a, b)):
            out[f"pair.{name}.{view}.diff"] = float(value)
    return out
