"""Prompt cues from the feature table: calibrated thresholds and the cue lines of the Thinking-model prompt.

A cue such as ``Face noise std: A 2.1 vs B 4.7 (B noisier)`` is worded only where the relative
A/B difference of a feature exceeds its threshold, calibrated on the training pairs
(`calibrate_thresholds`), so the prompts name only differences that are unusual for the data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.core.ontology import OTHER_ANSWER
from idiff_lib.features import iqa

TABLE_SOURCES = ("cv", "iqa")  # the prompt cues' table (notebook 03): the paper's features and IQA scores
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


def iqa_label(metric: str) -> str:
    """How an IQA metric is named in a cue line and in the prompts' source line: short names upper-cased."""
    return metric.upper() if len(metric) <= 6 else metric


# How a view or region is named in a cue line.
VIEW_DISPLAY_NAMES = {"global": "Global", "local": "Detail", "global_face": "Face", "global_rest": "Background"}


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
    """Read thresholds written by `save_thresholds`.

    Raises:
        DataError: naming the file, when it is missing.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "thresholds file not found", "run features.calibrate_thresholds on the training table")
    try:
        thresholds = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"is not valid JSON ({err})", "delete it and calibrate again (for a chain run: "
                        "idiff run --from 03)") from None
    if not isinstance(thresholds, dict):
        raise DataError(path, "does not hold a mapping of thresholds", "delete it and calibrate again "
                        "(for a chain run: idiff run --from 03)")
    return thresholds


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """A and B with the fewest significant digits (2 to 4) that still tell them apart."""
    for digits in (2, 3, 4):
        fa, fb = (_format_value(v, digits) for v in (a, b))
        if fa != fb:
            break
    return fa, fb


def _format_value(value: float, digits: int) -> str:
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
    return not iqa.lower_better(metric)


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
            label = iqa_label(name)
            better = higher if _iqa_direction(name) else OTHER_ANSWER[higher]
            verdict = f"{better} better"
        rank = float(np.interp(rel, th.get("quantiles", [th["threshold"]]), LEVELS if "quantiles" in th else [1.0]))
        fa, fb = _fmt_pair(a, b)
        cues.append((rank, rel / max(th["threshold"], 1e-12), name,
                     f"{VIEW_DISPLAY_NAMES.get(view, view)} {label}: A {fa} vs B {fb} ({verdict})"))
    cues.sort(key=lambda c: (-c[0], -c[1]))
    lines, used = [], {}
    for _, _, name, text in cues:
        if used.get(name, 0) >= per_feature:
            continue
        used[name] = used.get(name, 0) + 1
        lines.append(text)
    return lines[:max_lines]
