"""Floors and controls that sit beside every rationale score.

- **Shuffled-reference floor**: each reference scored against *another* pair's reference (a fixed
  derangement). The demo's rationales share most of their words (the same headings and phrases),
  so BLEU-4 and ROUGE-L of two unrelated rationales are far from zero; a system is only better than
  its templates where it beats this floor.
- **Wrong side labels**: Image A is the left image and Image B the right one (the system prompt
  says so). A rationale that writes "Image A (Right)", "Image B on the left" or the like names the
  wrong side; `wrong_side_labels` counts such mentions.
- **Accuracy copied from the prompt**: at stage S4 the prompt carries the Answer Model's verdict,
  so a Thinking Model's S4 accuracy is that verdict copied, not its own judgement.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from idiff_lib.core.errors import DataError

# The stages whose prompt holds the Answer Model's verdict (`idiff_lib.thinking.prompts`, stage S4).
ANSWER_IN_PROMPT_STAGES: tuple[str, ...] = ("S4",)
ACCURACY_COPIED_NOTE = "copied from the prompt (the Answer Model's verdict)"
# How the floor appears in the ladder tables and figures.
FLOOR_SYSTEM = "shuffled reference"
FLOOR_STAGE = "floor"

_SIDE = {"A": "right", "B": "left"}  # the wrong side of each image
_WRONG_PATTERNS = [
    re.compile(rf"\bImage\s+{letter}\s*(?:\(\s*|/\s*|,\s*|-\s*|\s+on\s+the\s+|\s+at\s+the\s+|\s+)\s*{side}\b",
               re.IGNORECASE)
    for letter, side in _SIDE.items()
] + [
    re.compile(rf"\b{side}\s+(?:image\s*)?\(?\s*Image\s+{letter}\b", re.IGNORECASE)
    for letter, side in _SIDE.items()
]


def derangement(n: int, seed: int = 0) -> list[int]:
    """A fixed permutation of ``range(n)`` that moves every index: ``order[i] != i``.

    A seeded shuffle followed by a one-step rotation along it, so it is deterministic and needs no
    rejection loop.

    Raises:
        DataError: fewer than two items (nothing to swap with).
    """
    if n < 2:
        raise DataError(None, f"a shuffled-reference floor needs at least two pairs, got {n}",
                        "score a reference file with two or more pairs")
    perm = np.random.default_rng(seed).permutation(n)
    order = [0] * n
    for k in range(n):
        order[int(perm[k])] = int(perm[(k + 1) % n])
    return order


def shuffled_reference_predictions(refs: Sequence[Any], seed: int = 0) -> list[dict[str, str]]:
    """Prediction rows that give each reference pair another pair's reference completion.

    Args:
        refs: labelled pairs (anything with ``id`` and ``completion``).
    """
    refs = list(refs)
    order = derangement(len(refs), seed)
    return [{"id": r.id, "completion": refs[j].completion} for r, j in zip(refs, order)]


def wrong_side_labels(text: str | None) -> int:
    """How many times a rationale puts Image A on the right or Image B on the left."""
    if not text:
        return 0
    return sum(len(p.findall(text)) for p in _WRONG_PATTERNS)


def accuracy_source(stage: str) -> str:
    """Where a ladder stage's answer comes from: the model, or the prompt (`ACCURACY_COPIED_NOTE`)."""
    return ACCURACY_COPIED_NOTE if stage in ANSWER_IN_PROMPT_STAGES else "the model's own"


def floor_sentence(ladder_rows: Sequence[dict[str, Any]], floor: dict[str, Any], metric: str = "rouge_l") -> str:
    """One sentence: how many ladder rows beat the shuffled-reference floor on `metric`, and by how much."""
    rows = [r for r in ladder_rows if r.get(metric) is not None and r.get("stage") != FLOOR_STAGE]
    if floor.get(metric) is None or not rows:
        return f"No {metric} values to compare with the shuffled-reference floor."
    base = float(floor[metric])
    above = [r for r in rows if float(r[metric]) > base]
    best = max(rows, key=lambda r: float(r[metric]))
    return (f"{len(above)} of {len(rows)} ladder rows score above the shuffled-reference floor on {metric} "
            f"({base:.3f}); the best, {best.get('system')} {best.get('stage')}, is {float(best[metric]) - base:+.3f} "
            f"from it. Any rationale of this data set's shape reaches the floor, so only the part above it "
            f"reflects the pair.")


def wrong_side_sentence(ladder_rows: Sequence[dict[str, Any]]) -> str:
    """One sentence naming the system and stage with the highest wrong-side-label rate."""
    rows = [r for r in ladder_rows if r.get("wrong_side_rate") is not None and r.get("stage") != FLOOR_STAGE]
    if not rows:
        return "No wrong-side-label rates were computed."
    worst = max(rows, key=lambda r: float(r["wrong_side_rate"]))
    clean = sum(1 for r in rows if float(r["wrong_side_rate"]) == 0.0)
    return (f"{worst.get('system')} {worst.get('stage')} names the wrong side (Image A as right or Image B as left) "
            f"in {float(worst['wrong_side_rate']):.0%} of its rationales; {clean} of {len(rows)} rows never do.")


def ladder_accuracy_sentence(ladder_rows: Sequence[dict[str, Any]], system: str) -> str:
    """One sentence on a system's accuracy per stage: its own (compared with chance) and copied from the prompt."""
    rows = [r for r in ladder_rows if r.get("system") == system and r.get("accuracy") is not None]
    own = [float(r["accuracy"]) for r in rows if r["stage"] not in ANSWER_IN_PROMPT_STAGES]
    copied = [r for r in rows if r["stage"] in ANSWER_IN_PROMPT_STAGES]
    parts = []
    if own:
        parts.append(f"{system}'s own accuracy at the stages without the verdict is {min(own):.2f}–{max(own):.2f} "
                     f"(chance is 0.50)")
    if copied:
        parts.append(f"its {copied[0]['stage']} accuracy {float(copied[0]['accuracy']):.2f} is {ACCURACY_COPIED_NOTE}")
    return ("; ".join(parts) + ".") if parts else f"No accuracy was recorded for {system}."
