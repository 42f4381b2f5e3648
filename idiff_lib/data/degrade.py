"""Subtle, professional-grade image degradations, global or regional, and the pair quality model.

The NTIRE 2026 RAIM challenge (Track 1) compares two renditions of one professional shot whose
differences are small: noise left in the mid-to-dark tones, chroma blotches, over-sharpening
halos, denoise smearing ("waxy" skin, "oil-painting" texture), slight defocus, compression
artifacts and small exposure / white-balance shifts. This module makes such renditions from a
clean photo, so the workbench has pairs whose answer and reasons are known:

- `DEFECTS`: the registry of defect kinds, each ``fn(img, severity, rng) -> img`` on RGB uint8,
  with severity in [0, 1] (0 = untouched, 1 = the strongest level still meant to look subtle);
- `apply(img, defect, severity, mask, rng)`: one defect, blended through a soft region mask;
- `region_masks(img, faces)`: soft masks of face, skin, hair, clothing, background (portraits,
  from Haar face boxes, see `idiff_lib.content.detect_faces`) or background, edges and detail
  (scenes);
- `penalty(defects, category)`: the documented quality model, a weighted sum of
  defect weight x severity^GAMMA x region weight (faces count more in portraits);
- `sample_pair(photo, rng)`: two degraded renditions with a known winner and margin.

The filters come from OpenCV (bilateral filter, JPEG codec, Gaussian and disk blurs) and
NumPy; the luminance-dependent noise model is the usual signal-dependent (Poisson-Gaussian)
sensor noise shape, re-weighted to peak in the mid-to-dark tones where raw converters leave it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.core.imaging import Box
from idiff_lib.data.content import detect_faces

DefectFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

# Severity is mapped through this power before weighting: doubling a subtle defect more than
# doubles how much an expert minds it.
GAMMA = 1.3


# ---------------------------------------------------------------------------------------------
# Colour helpers
# ---------------------------------------------------------------------------------------------
def _to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def luminance(img: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1] of an RGB uint8 image."""
    f = _to_float(img)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _scale(img: np.ndarray) -> float:
    """Filter sizes scale with the image so a 256 px crop and a 1024 px photo look alike."""
    return max(0.5, min(img.shape[:2]) / 512.0)


# ---------------------------------------------------------------------------------------------
# The defects. Each takes RGB uint8 and severity in [0, 1] and returns RGB uint8.
# ---------------------------------------------------------------------------------------------
def luma_noise(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Luminance-dependent grain, strongest in the mid-to-dark tones, slightly clumped.

    sigma(L) = s * (0.35 + exp(-((L - 0.28) / 0.22)^2)) with s up to 0.032: at most about 11
    grey levels at the mid-to-dark peak and 3 in the highlights, so bright areas stay fairly
    clean while shadows and mid-tones get the noise.
    """
    f = _to_float(img)
    lum = luminance(img)
    sigma = 0.032 * severity * (0.35 + np.exp(-(((lum - 0.28) / 0.22) ** 2)))
    grain = rng.standard_normal(lum.shape).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.5 * _scale(img))  # demosaicing correlates neighbours
    grain /= grain.std() + 1e-6
    return _to_uint8(f + (sigma * grain)[..., None])


def chroma_noise(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency colour blotches in the chroma channels, stronger in the darker tones."""
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    lum = ycc[..., 0] / 255.0
    weight = 0.4 + np.exp(-(((lum - 0.3) / 0.25) ** 2))
    for c in (1, 2):
        blotch = rng.standard_normal(lum.shape).astype(np.float32)
        blotch = cv2.GaussianBlur(blotch, (0, 0), 1.6 * _scale(img))
        blotch /= blotch.std() + 1e-6
        ycc[..., c] += 5.5 * severity * weight * blotch
    return cv2.cvtColor(np.clip(np.rint(ycc), 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def oversharpen(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Unsharp masking with a wide radius and a strong amount: crisp at first glance, with
    black-and-white halos along edges and brittle, crunchy fine texture."""
    radius = (0.9 + 1.1 * severity) * _scale(img) * rng.uniform(0.85, 1.15)
    amount = 0.3 + 1.1 * severity
    f = _to_float(img)
    blurred = cv2.GaussianBlur(f, (0, 0), radius)
    return _to_uint8(f + amount * (f - blurred))


def denoise_smear(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Edge-preserving over-smoothing, as an aggressive denoiser leaves it: smeared fine texture,
    "waxy" skin and "oil-painting" patches while strong edges survive (iterated bilateral)."""
    sc = _scale(img)
    out = img
    passes = 1 + int(severity > 0.4)
    sigma_color = (12 + 28 * severity) * rng.uniform(0.85, 1.15)
    sigma_space = (2.0 + 2.0 * severity) * sc
    d = int(2 * round(1.5 * sigma_space) + 1)
    for _ in range(passes):
        out = cv2.bilateralFilter(out, d, sigma_color, sigma_space)
    # Blend a little of the original back at low severity, so the loss starts partial.
    keep = 0.05 + 0.35 * (1 - severity)
    return _to_uint8(keep * _to_float(img) + (1 - keep) * _to_float(out))


def _disk(radius: float) -> np.ndarray:
    r = max(radius, 0.5)
    n = int(np.ceil(r)) * 2 + 1
    yy, xx = np.mgrid[:n, :n] - n // 2
    # Anti-aliased disk: coverage falls off over one pixel at the rim.
    kernel = np.clip(r + 0.5 - np.sqrt(xx ** 2 + yy ** 2), 0, 1).astype(np.float32)
    return kernel / kernel.sum()


def defocus(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Slight lens defocus: a disk point-spread function of radius 0.4 to 1.4 px (at 512 px)."""
    radius = (0.4 + 1.0 * severity) * _scale(img) * rng.uniform(0.9, 1.1)
    return cv2.filter2D(img, -1, _disk(radius), borderType=cv2.BORDER_REFLECT)


def jpeg(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Compression artifacts: an OpenCV JPEG round trip at quality 90 down to 40, 4:2:0 chroma."""
    quality = int(round(90 - 50 * severity + rng.uniform(-2, 2)))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def exposure(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A small exposure error of up to +-0.45 EV (in linear light), sign chosen at random."""
    ev = 0.45 * severity * rng.choice([-1.0, 1.0])
    return _to_uint8(_linear_to_srgb(_srgb_to_linear(_to_float(img)) * 2.0 ** ev))


def white_balance(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A small colour cast: red and blue gains moved apart by up to 12% (warm or cool), in linear light."""
    shift = 0.12 * severity * rng.choice([-1.0, 1.0])
    tint = rng.uniform(-0.3, 0.3) * shift
    gains = np.array([1 + shift, 1 + tint, 1 - shift], dtype=np.float32)
    return _to_uint8(_linear_to_srgb(_srgb_to_linear(_to_float(img)) * gains))


@dataclass(frozen=True)
class DefectKind:
    """A registered defect.

    Attributes:
        name: registry key.
        fn: ``fn(img, severity, rng) -> img``.
        weight: how much one unit of severity costs in the quality model.
        attributes: the rationale attributes it shows up in (Sharpness, Texture, Noise,
            Artifacts, Realism), the first being the main one.
        sharper: True when it raises apparent sharpness (so a "sharper" cue is misled by it).
        description: a short phrase for the datasheet.
    """

    name: str
    fn: DefectFn
    weight: float
    attributes: tuple[str, ...]
    sharper: bool
    description: str


DEFECTS: dict[str, DefectKind] = {
    k.name: k for k in (
        DefectKind("luma_noise", luma_noise, 1.0, ("Noise", "Texture"), True,
                   "luminance noise peaking in mid-to-dark tones, sigma up to ~11 grey levels (~3 in highlights)"),
        DefectKind("chroma_noise", chroma_noise, 0.8, ("Noise", "Realism"), False,
                   "low-frequency chroma blotches, Cr/Cb sigma up to ~7.7 levels in dark tones"),
        DefectKind("oversharpen", oversharpen, 0.9, ("Artifacts", "Realism"), True,
                   "unsharp mask radius 0.9-2.0 px, amount 0.3-1.4: halos"),
        DefectKind("denoise_smear", denoise_smear, 1.0, ("Texture", "Realism"), False,
                   "1-2 bilateral passes, sigma_color 12-40, sigma_space 2-4 px, 60-95% blend: smeared / waxy texture"),
        DefectKind("defocus", defocus, 1.1, ("Sharpness", "Texture"), False,
                   "disk PSF radius 0.4-1.4 px"),
        DefectKind("jpeg", jpeg, 0.8, ("Artifacts", "Texture"), False,
                   "JPEG round trip, quality 90 down to 40"),
        DefectKind("exposure", exposure, 0.5, ("Realism",), False, "exposure shift up to +-0.45 EV"),
        DefectKind("white_balance", white_balance, 0.5, ("Realism",), False,
                   "white-balance cast up to +-12% red/blue gain"),
    )
}

# Quality-model region weights: how much of the viewer's judgement a region carries. A global
# defect touches everything, so it costs most; the face is the first thing an expert inspects in
# a portrait, so a face defect costs nearly as much as a global one.
REGION_WEIGHTS: dict[str, dict[str, float]] = {
    "person": {"global": 1.0, "face": 0.85, "skin": 0.75, "hair": 0.45, "clothing": 0.4, "background": 0.3},
    "scene": {"global": 1.0, "detail": 0.6, "edges": 0.5, "background": 0.4},
}


def check_defect(name: str) -> DefectKind:
    """The registered defect `name`, or a ParameterError that suggests close names."""
    if name not in DEFECTS:
        raise ParameterError(f"unknown defect {name!r}; known: {', '.join(DEFECTS)}.{suggest(name, DEFECTS)}")
    return DEFECTS[name]


def apply(img: np.ndarray, defect: str, severity: float, mask: np.ndarray | None = None,
          rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Apply one defect to an RGB uint8 image, globally or through a soft mask.

    Args:
        img: RGB uint8 (H, W, 3).
        defect: a key of `DEFECTS`.
        severity: in [0, 1]; 0 returns the image unchanged.
        mask: None for the whole image, else float (H, W) in [0, 1] (see `region_masks`).
        rng: a Generator or a seed, for the random parts (noise, signs).

    Raises:
        ParameterError: unknown defect, severity outside [0, 1], or a mask of the wrong shape.
    """
    kind = check_defect(defect)
    if not 0.0 <= float(severity) <= 1.0:
        raise ParameterError(f"severity must be in [0, 1], got {severity}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ParameterError(f"img must be RGB uint8 (H, W, 3), got {img.dtype} {img.shape}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if severity == 0:
        return img.copy()
    out = kind.fn(np.ascontiguousarray(img), float(severity), rng)
    if mask is None:
        return out
    if mask.shape != img.shape[:2]:
        raise ParameterError(f"mask shape {mask.shape} does not match the image {img.shape[:2]}")
    m = mask.astype(np.float32)[..., None]
    return _to_uint8(_to_float(img) * (1 - m) + _to_float(out) * m)


# ---------------------------------------------------------------------------------------------
# Region masks
# ---------------------------------------------------------------------------------------------
def _ellipse(shape: tuple[int, int], cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    return ((((xx - cx) / max(rx, 1)) ** 2 + ((yy - cy) / max(ry, 1)) ** 2) <= 1).astype(np.float32)


def _feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(sigma, 0.5)), 0, 1)


def region_masks(img: np.ndarray, faces: Sequence[Box] = (), category: str | None = None) -> dict[str, np.ndarray]:
    """Soft float masks in [0, 1] for each region of the image.

    Portraits (faces given, or ``category="person"``): ``face`` (an ellipse in each face box),
    ``skin`` (face plus neck), ``hair`` (a cap above and around the face, minus the face),
    ``clothing`` (a trapezoid below the chin), ``background`` (the rest). Scenes:
    ``background`` (smooth areas), ``edges`` (near strong gradients), ``detail`` (the busiest
    textured areas). ``global`` is always all ones. The face geometry is a fixed head model
    relative to the box, hand-written because no packaged segmenter works offline here.
    """
    h, w = img.shape[:2]
    masks: dict[str, np.ndarray] = {"global": np.ones((h, w), np.float32)}
    if faces and category != "scene":
        face = np.zeros((h, w), np.float32)
        hair = np.zeros((h, w), np.float32)
        neck = np.zeros((h, w), np.float32)
        cloth = np.zeros((h, w), np.float32)
        for x, y, bw, bh in faces:
            cx, cy = x + bw / 2, y + bh * 0.55
            face = np.maximum(face, _ellipse((h, w), cx, cy, bw * 0.42, bh * 0.58))
            hair = np.maximum(hair, _ellipse((h, w), cx, y + bh * 0.35, bw * 0.68, bh * 0.72))
            neck = np.maximum(neck, _ellipse((h, w), cx, y + bh * 1.25, bw * 0.28, bh * 0.4))
            yy, xx = np.mgrid[:h, :w].astype(np.float32)
            top = y + bh * 1.45
            half = bw * 0.55 + (yy - top) * 0.9  # shoulders widen downwards
            cloth = np.maximum(cloth, ((yy >= top) & (np.abs(xx - cx) <= half)).astype(np.float32))
        sigma = max(2.0, 0.04 * max(b[2] for b in faces))
        face_s = _feather(face, sigma)
        skin = _feather(np.maximum(face, neck * (1 - cloth)), sigma)
        hair_s = _feather(np.clip(hair - face - neck, 0, 1) * (1 - cloth), sigma)
        cloth_s = _feather(np.clip(cloth - face - neck, 0, 1), sigma)
        person = np.clip(face + hair + neck + cloth, 0, 1)
        masks.update(face=face_s, skin=skin, hair=hair_s, clothing=cloth_s,
                     background=_feather(1 - person, sigma))
        return masks
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    sc = _scale(img)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    grad = np.sqrt(gx ** 2 + gy ** 2)
    activity = cv2.GaussianBlur(grad, (0, 0), 6 * sc)
    lo, hi = np.quantile(activity, [0.3, 0.7])
    edges = cv2.dilate((grad > np.quantile(grad, 0.9)).astype(np.uint8), np.ones((5, 5), np.uint8))
    masks.update(
        background=_feather((activity <= lo).astype(np.float32), 3 * sc),
        edges=_feather(edges.astype(np.float32), 1.5 * sc),
        detail=_feather((activity >= hi).astype(np.float32), 3 * sc),
    )
    return masks


# ---------------------------------------------------------------------------------------------
# The quality model and pair sampling
# ---------------------------------------------------------------------------------------------
@dataclass
class Defect:
    """One defect as applied: kind, severity in [0, 1], region name (a key of `region_masks`)."""

    kind: str
    severity: float
    region: str = "global"

    def to_dict(self) -> dict:
        return asdict(self)


def defect_penalty(d: Defect, category: str) -> float:
    """weight(kind) x severity^GAMMA x region weight: one defect's cost in the quality model."""
    regions = REGION_WEIGHTS["person" if category == "person" else "scene"]
    if d.region not in regions:
        raise ParameterError(f"region {d.region!r} is not a {category} region; known: {', '.join(regions)}")
    return check_defect(d.kind).weight * float(d.severity) ** GAMMA * regions[d.region]


def penalty(defects: Iterable[Defect], category: str) -> float:
    """The quality model: the sum of `defect_penalty` over a rendition's defects (lower is better)."""
    return float(sum(defect_penalty(d, category) for d in defects))


def render(img: np.ndarray, defects: Iterable[Defect], masks: dict[str, np.ndarray],
           rng: np.random.Generator | int | None = None, shared: Iterable[Defect] = (),
           shared_seed: int = 0) -> np.ndarray:
    """Apply `shared` and `defects` in camera-pipeline order, each through its region mask.

    The order is `PIPELINE_ORDER`: exposure / white balance, then blur and noise, then denoising
    and sharpening, compression last. Shared defects draw their randomness from `shared_seed`,
    so both sides of a pair get the very same grain or cast from them.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    steps = [(d, None) for d in defects] + [(d, shared_seed) for d in shared]
    out = img
    for d, seed in sorted(steps, key=lambda s: PIPELINE_ORDER.index(s[0].kind)):
        step_rng = rng if seed is None else np.random.default_rng([seed, PIPELINE_ORDER.index(d.kind)])
        out = apply(out, d.kind, d.severity, None if d.region == "global" else masks[d.region], step_rng)
    return out


PIPELINE_ORDER = ("exposure", "white_balance", "defocus", "luma_noise", "chroma_noise",
                  "denoise_smear", "oversharpen", "jpeg")

# Which defect kinds a region plausibly carries (a "waxy" face, a noisy background, ...).
_REGION_KINDS = {
    "face": ("denoise_smear", "oversharpen", "luma_noise", "defocus", "jpeg"),
    "skin": ("denoise_smear", "luma_noise", "chroma_noise", "oversharpen"),
    "hair": ("oversharpen", "denoise_smear", "defocus", "luma_noise"),
    "clothing": ("luma_noise", "denoise_smear", "oversharpen", "jpeg", "chroma_noise"),
    "background": ("luma_noise", "chroma_noise", "denoise_smear", "jpeg", "defocus"),
    "edges": ("oversharpen", "jpeg"),
    "detail": ("denoise_smear", "defocus", "luma_noise", "oversharpen", "jpeg"),
}
# Opposite pulls, for trade-off pairs: one side sharper-looking but noisy/haloed, the other
# clean but soft/smeared.
_CRISP_KINDS = ("oversharpen", "luma_noise", "chroma_noise")
_SOFT_KINDS = ("denoise_smear", "defocus", "jpeg")


@dataclass
class PairSample:
    """Two renditions and why one is better.

    Attributes:
        a, b: RGB uint8 renditions (A = left, B = right).
        defects_a, defects_b: what each side carries (beyond `shared`).
        shared: defects applied identically to both sides (a common pipeline trait).
        penalty_a, penalty_b: the quality model's cost of each side's own defects.
        answer: "A" or "B", the side with the lower penalty.
        margin: |penalty_a - penalty_b|.
        tradeoff: True when the loser is better on at least one attribute.
    """

    a: np.ndarray
    b: np.ndarray
    defects_a: list[Defect]
    defects_b: list[Defect]
    shared: list[Defect]
    penalty_a: float
    penalty_b: float
    answer: str
    margin: float
    tradeoff: bool
    category: str
    meta: dict = field(default_factory=dict)

    def to_meta(self) -> dict:
        """JSON-ready description (no pixels)."""
        return {
            "category": self.category, "answer": self.answer, "margin": round(self.margin, 4),
            "penalty_a": round(self.penalty_a, 4), "penalty_b": round(self.penalty_b, 4),
            "tradeoff": self.tradeoff,
            "defects_a": [d.to_dict() for d in self.defects_a],
            "defects_b": [d.to_dict() for d in self.defects_b],
            "shared": [d.to_dict() for d in self.shared], **self.meta,
        }


def attribute_scores(defects: Iterable[Defect], category: str) -> dict[tuple[str, str], float]:
    """Per (region, attribute) cost of a rendition: each defect's penalty spread over its attributes.

    The main attribute takes the full penalty, secondary ones half. Global defects are booked
    under "global". Used for trade-off detection and to write the reference rationales.
    """
    scores: dict[tuple[str, str], float] = {}
    for d in defects:
        p = defect_penalty(d, category)
        for i, attribute in enumerate(DEFECTS[d.kind].attributes):
            key = (d.region, attribute)
            scores[key] = scores.get(key, 0.0) + p * (1.0 if i == 0 else 0.5)
    return scores


def _is_tradeoff(da: list[Defect], db: list[Defect], category: str, answer: str) -> bool:
    sa, sb = attribute_scores(da, category), attribute_scores(db, category)
    loser, winner = (sb, sa) if answer == "A" else (sa, sb)
    return any(loser.get(k, 0.0) + 0.05 < winner.get(k, 0.0) for k in set(sa) | set(sb))


def _draw_defects(rng: np.random.Generator, regions: list[str], n: int, pool: Sequence[str] | None,
                  sev_lo: float, sev_hi: float) -> list[Defect]:
    out: list[Defect] = []
    used: set[str] = set()
    for _ in range(n):
        region = str(rng.choice(regions)) if rng.random() < 0.55 else "global"
        kinds = [k for k in (pool or _REGION_KINDS.get(region, tuple(DEFECTS))) if k not in used]
        if region != "global":
            kinds = [k for k in kinds if k in _REGION_KINDS[region]] or kinds
        if not kinds:
            continue
        kind = str(rng.choice(kinds))
        used.add(kind)
        out.append(Defect(kind, round(float(rng.uniform(sev_lo, sev_hi)), 3), region))
    return out


def sample_defects(category: str, regions: Iterable[str], rng: np.random.Generator,
                   tradeoff: bool | None = None) -> tuple[list[Defect], list[Defect], list[Defect]]:
    """Draw (defects_a, defects_b, shared) for one pair, without rendering.

    Each side carries one to three defects (globally or on a region), severities in [0.15, 1];
    with probability 0.45 (or when `tradeoff` is True) one side takes "crisp" defects
    (over-sharpening, noise) and the other "soft" ones (smearing, defocus, compression), so a
    single sharpness cue cannot decide the pair. A quarter of pairs also share one mild defect.
    """
    regions = [r for r in regions if r != "global"]
    if tradeoff is None:
        tradeoff = bool(rng.random() < 0.45)
    if tradeoff:
        da = _draw_defects(rng, regions, int(rng.integers(1, 3)), _CRISP_KINDS, 0.2, 1.0)
        db = _draw_defects(rng, regions, int(rng.integers(1, 3)), _SOFT_KINDS, 0.2, 1.0)
        if rng.random() < 0.5:
            da, db = db, da
    else:
        da = _draw_defects(rng, regions, int(rng.integers(1, 4)), None, 0.15, 1.0)
        db = _draw_defects(rng, regions, int(rng.integers(1, 4)), None, 0.15, 1.0)
    shared = []
    if rng.random() < 0.25:
        kind = str(rng.choice(["jpeg", "luma_noise", "white_balance", "denoise_smear"]))
        if kind not in {d.kind for d in da + db}:
            shared = [Defect(kind, round(float(rng.uniform(0.1, 0.35)), 3), "global")]
    return da, db, shared


def sample_pair(photo: np.ndarray, rng: np.random.Generator | int | None = None, *,
                faces: Sequence[Box] | None = None, category: str | None = None,
                margin: float = 0.08, max_tries: int = 50, masks: dict[str, np.ndarray] | None = None,
                want_answer: str | None = None) -> PairSample:
    """Two degraded renditions of `photo` with a known winner, for data sets and on-the-fly streams.

    Args:
        photo: the pristine RGB uint8 image.
        rng: a Generator or a seed.
        faces: face boxes in `photo`; None detects them with `content.detect_faces`.
        category: "person" or "scene"; None = person when a face is found.
        margin: the smallest penalty gap emitted (closer draws are redrawn).
        masks: precomputed `region_masks` (saves time when sampling many pairs of one photo).
        want_answer: "A" or "B" to force the winner's side (the renditions are swapped).

    Raises:
        RuntimeError: when no draw reaches `margin` within `max_tries`.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if faces is None:
        faces = detect_faces(photo)
    category = category or ("person" if faces else "scene")
    if masks is None:
        masks = region_masks(photo, faces if category == "person" else (), category)
    allowed = set(REGION_WEIGHTS[category])
    regions = [r for r in masks if r in allowed]
    for _ in range(max_tries):
        da, db, shared = sample_defects(category, regions, rng)
        pa, pb = penalty(da, category), penalty(db, category)
        if abs(pa - pb) >= margin:
            break
    else:
        raise RuntimeError(f"no defect draw reached the margin {margin} in {max_tries} tries")
    answer = "A" if pa < pb else "B"
    if want_answer in ("A", "B") and want_answer != answer:
        da, db, pa, pb, answer = db, da, pb, pa, want_answer
    shared_seed = int(rng.integers(2 ** 31))
    a = render(photo, da, masks, rng, shared, shared_seed)
    b = render(photo, db, masks, rng, shared, shared_seed)
    return PairSample(a, b, da, db, shared, pa, pb, answer, abs(pa - pb),
                      _is_tradeoff(da, db, category, answer), category)
