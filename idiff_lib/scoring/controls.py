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
from idiff_lib.core.ontology import ANSWERS, OTHER_ANSWER, SIDE_NAMES

# The stages whose prompt holds the Answer Model's verdict (`idiff_lib.thinking.prompting.prompts`, stage S4).
ANSWER_IN_PROMPT_STAGES: tuple[str, ...] = ("S4",)
ACCURACY_COPIED_NOTE = "copied from the prompt (the Answer Model's verdict)"
# Where the verdict of an answer-aware prompt came from, as a ladder row's ``answer_source`` records it
# (`thinking.generation.with_verdict_sources`): the Answer Model's prediction, or the fallback of
# `thinking.side_inputs.s4_answers` for a pair it did not predict (its reference answer, the train prior).
PROMPT_VERDICT_SOURCES: tuple[str, ...] = ("answer_model", "reference_fallback", "prior_fallback")
# How the floor appears in the ladder tables and figures.
FLOOR_SYSTEM = "shuffled reference"
FLOOR_STAGE = "floor"

_WRONG_SIDE = {letter: SIDE_NAMES[OTHER_ANSWER[letter]].lower() for letter in ANSWERS}  # "A" -> "right"
_WRONG_PATTERNS = [
    re.compile(rf"\bImage\s+{letter}\s*(?:\(\s*|/\s*|,\s*|-\s*|\s+on\s+the\s+|\s+at\s+the\s+|\s+)\s*{side}\b",
               re.IGNORECASE)
    for letter, side in _WRONG_SIDE.items()
] + [
    re.compile(rf"\b{side}\s+(?:image\s*)?\(?\s*Image\s+{letter}\b", re.IGNORECASE)
    for letter, side in _WRONG_SIDE.items()
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


def wrong_side_sentence(ladder_rows: Sequence[dict[str, Any]]) -> str:
    """One sentence naming the system and stage with the highest wrong-side-label rate."""
    rows = [r for r in ladder_rows if r.get("wrong_side_rate") is not None and r.get("stage") != FLOOR_STAGE]
    if not rows:
        return "No wrong-side-label rates were computed."
    worst = max(rows, key=lambda r: float(r["wrong_side_rate"]))
    clean = sum(1 for r in rows if float(r["wrong_side_rate"]) == 0.0)
    return (f"{worst.get('system')} {worst.get('stage')} names the wrong side (Image A as right or Image B as left) "
            f"in {float(worst['wrong_side_rate']):.0%} of its rationales; {clean} of {len(rows)} rows never do.")
