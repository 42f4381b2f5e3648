"""Scoring the Thinking Model's rationales against the references (through `idiff_lib.scoring`)."""

from __future__ import annotations

from typing import Mapping, Sequence

from idiff_lib.core.errors import ParameterError
from idiff_lib.data import pairs as pairs_mod
from idiff_lib.scoring.rewards import format_reward
from idiff_lib.scoring.scorers import score


def format_ok(text: str) -> bool:
    """The challenge baseline's format check (`scoring.format_reward`)."""
    return format_reward(text) == 1.0


def score_completions(preds: Mapping[str, str], refs: Sequence[pairs_mod.Pair]) -> dict:
    """BLEU-4, ROUGE-L, answer-rationale consistency, format pass and accuracy of `preds` vs labelled `refs`.

    Computed by `idiff_lib.scoring.scorers.score`; BLEU-4 is on the workbench's 0-1 scale.
    Consistency = share of rationales whose overall verdict equals their answer, among those that
    state one.

    Raises:
        ParameterError: a reference pair has no prediction.
    """
    refs = list(refs)
    missing = [r.id for r in refs if r.id not in preds]
    if missing:
        raise ParameterError(f"score_completions: {len(missing)} reference ids have no prediction, e.g. {missing[:3]}")
    ids = [r.id for r in refs]
    m = score([{"id": i, "completion": preds[i]} for i in ids], refs,
              scorers=["format", "accuracy", "bleu4", "rouge_l", "consistency"], bootstrap=0).metrics
    fail = m["format"].get("failure_rate")
    return {"n": len(ids), "bleu4": round(m["bleu4"]["corpus"], 4), "rouge_l": round(m["rouge_l"]["f"], 4),
            "consistency": m["consistency"]["rate"], "format_pass": None if fail is None else round(1 - fail, 4),
            "accuracy": m["accuracy"]["overall"]["value"], "scorer": "idiff_lib.scoring.scorers"}
