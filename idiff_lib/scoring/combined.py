"""The combined challenge-style score: a weighted sum of accuracy, BLEU-4 (0-1) and ROUGE-L F.

The NTIRE 2026 RAIM challenge's official weights are **not public**: `DEFAULT_WEIGHTS` is this
workbench's own documented assumption, and every weight is a parameter (``--weights``).
"""

from __future__ import annotations

import re
from typing import Any

from idiff_lib.core.errors import ParameterError, suggest

# Our assumption, not the challenge's (its official weights are not public): accuracy counts as
# much as the two text metrics together. Every component lies in [0, 1] (BLEU-4 included).
DEFAULT_WEIGHTS: dict[str, float] = {"accuracy": 0.5, "bleu4": 0.25, "rouge_l": 0.25}


def weights_label(weights: dict[str, float] | None = None) -> str:
    """How a combined score's weights are shown: ``ours, not the challenge's: accuracy 0.5 + bleu4 0.25 + ...``."""
    weights = DEFAULT_WEIGHTS if weights is None else weights
    terms = " + ".join(f"{k} {w:g}" for k, w in weights.items() if w)
    return f"ours, not the challenge's (its weights are not public): {terms}"


def combined_score(metrics: dict[str, Any], weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The challenge-style weighted sum of accuracy, BLEU-4 (0-1), ROUGE-L F (and optional others).

    The official weights are not public; `DEFAULT_WEIGHTS` is an assumption. Known components:
    accuracy, bleu4, rouge_l, semantic, aspect_f1, judge (the judge's mean score / 5).
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    components = {
        "accuracy": (metrics.get("accuracy") or {}).get("overall", {}).get("value"),
        "bleu4": None if "bleu4" not in metrics else metrics["bleu4"]["corpus"],
        "rouge_l": (metrics.get("rouge_l") or {}).get("f"),
        "semantic": (metrics.get("semantic") or {}).get("mean"),
        "aspect_f1": ((metrics.get("aspects") or {}).get("micro") or {}).get("f1"),
        "judge": None if not metrics.get("judge") or metrics["judge"].get("mean") is None
        else metrics["judge"]["mean"] / 5.0,
    }
    unknown = [k for k in weights if k not in components]
    if unknown:
        raise ParameterError(f"unknown combined-score component(s) {unknown}.{suggest(unknown[0], components)} "
                             f"Known: {', '.join(components)}")
    missing = [k for k, w in weights.items() if w and components[k] is None]
    if missing:
        return {"value": None, "weights": weights, "missing": missing, "label": weights_label(weights),
                "note": "official weights are not public; these are documented assumptions"}
    value = sum(w * components[k] for k, w in weights.items() if w)
    return {"value": float(value), "weights": weights, "components": {k: components[k] for k in weights},
            "label": weights_label(weights), "note": "official weights are not public; these are documented assumptions"}


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"accuracy=0.5,bleu4=0.25"`` (or ``accuracy:0.5,...``) -> dict; None/"" -> None (the defaults)."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        pieces = re.split(r"[=:]", part, maxsplit=1)
        if len(pieces) != 2:
            raise ParameterError(f"weights: {part!r} is not name=value (e.g. accuracy=0.5,bleu4=0.25)")
        name, value = pieces
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ParameterError(f"weights: {value!r} is not a number") from None
    return out

