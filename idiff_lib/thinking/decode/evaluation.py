"""Scoring the Thinking Model's rationales against the references (through `idiff_lib.scoring`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from idiff_lib.core import storage
from idiff_lib.core.errors import ParameterError
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.scoring.controls import wrong_side_labels
from idiff_lib.scoring.rewards import baseline_letter, format_reward, raw_thinking
from idiff_lib.scoring.scorers import score
from idiff_lib.thinking.prompting.evidence import evidence_agreement


def format_ok(text: str) -> bool:
    """The challenge baseline's format check (`rewards.format_reward`)."""
    return format_reward(text) == 1.0


def score_completions(preds: Mapping[str, str], refs: Sequence[pairs_mod.Pair],
                      meta: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> dict:
    """BLEU-4, ROUGE-L, answer-rationale consistency, format pass and accuracy of `preds` vs labelled `refs`.

    Computed by `idiff_lib.scoring.scorers.score`; BLEU-4 is on the workbench's 0-1 scale.
    Consistency = share of rationales whose overall verdict equals their answer, among those that
    state one. ``verdict_accuracy`` and ``meta_coverage`` check the lines against the benchmark's
    ground truth (`idiff_lib.scoring.meta_verdicts`); None without `meta` or when no pair has one.

    Args:
        meta: pair id -> its ground-truth comparisons (`idiff_lib.data.meta.split_comparisons`).

    Raises:
        ParameterError: a reference pair has no prediction.
    """
    refs = list(refs)
    missing = [r.id for r in refs if r.id not in preds]
    if missing:
        raise ParameterError(f"score_completions: {len(missing)} reference ids have no prediction, e.g. {missing[:3]}")
    ids = [r.id for r in refs]
    m = score([{"id": i, "completion": preds[i]} for i in ids], refs,
              scorers=["format", "accuracy", "bleu4", "rouge_l", "consistency", "wrong_side"], bootstrap=0,
              meta=None if meta is None else dict(meta)).metrics
    fail = m["format"].get("failure_rate")
    truth = m.get("meta_verdicts") or {}
    return {"n": len(ids), "bleu4": round(m["bleu4"]["corpus"], 4), "rouge_l": round(m["rouge_l"]["f"], 4),
            "consistency": m["consistency"]["rate"], "format_pass": None if fail is None else round(1 - fail, 4),
            "accuracy": m["accuracy"]["overall"]["value"], "wrong_side_rate": m["wrong_side"]["rate"],
            "verdict_accuracy": _rounded(truth.get("verdict_accuracy")),
            "meta_coverage": _rounded(truth.get("meta_coverage")),
            "scorer": "idiff_lib.scoring.scorers"}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def worked_pair_rationales(files: Mapping[str, str | Path], reference: pairs_mod.Pair) -> pd.DataFrame:
    """The worked pair's rationale at each stage beside the reference: one row per stage, then the reference.

    Args:
        files: stage (or any label) -> a ladder JSONL of ``{"id", "completion"}`` rows; a file
            without the pair gives a row that says so.
    """
    rows = []
    for label, path in files.items():
        found = [r for r in storage.read_jsonl_rows(path) if r.get("id") == reference.id] if Path(path).exists() else []
        text = found[0]["completion"] if found else ""
        rows.append({"stage": label, "answer": baseline_letter(text) if found else "not generated",
                     "wrong side labels": wrong_side_labels(raw_thinking(text)),
                     "rationale": raw_thinking(text).strip() if found else "(the pair is outside test_limit)"})
    rows.append({"stage": "reference", "answer": reference.answer, "wrong side labels": wrong_side_labels(reference.thinking),
                 "rationale": (reference.thinking or "").strip()})
    return pd.DataFrame(rows)


def decoding_comparison(files: Mapping[str, str | Path], pairs: Sequence[pairs_mod.Pair],
                        meta: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                        evidence: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rationale files scored on the same `pairs` side by side (e.g. free and constrained decoding).

    One row per file that holds every pair: ``decoding``, ``n`` and `score_completions`' measures
    (``consistency`` is the share of rationales whose Overall line states their ``<answer>``), plus
    ``raw_format_pass``, the format check on what the model itself wrote, and, with `evidence` (pair
    id -> its prompt's evidence block), ``evidence_agreement``: the share of lines on an evidence
    aspect that say what the evidence says (`idiff_lib.thinking.prompting.evidence.evidence_agreement`). Files
    missing a pair are left out (rows would not be comparable).
    """
    out = []
    for name, path in files.items():
        rows = {r["id"]: r for r in storage.read_jsonl_rows(path)} if Path(path).exists() else {}
        if not all(p.id in rows for p in pairs):
            continue
        score = score_completions({p.id: rows[p.id]["completion"] for p in pairs}, pairs, meta=meta)
        out.append({"decoding": name, "n": score["n"], "bleu4": score["bleu4"], "rouge_l": score["rouge_l"],
                    "consistency": score["consistency"], "verdict_accuracy": score["verdict_accuracy"],
                    "meta_coverage": score["meta_coverage"],
                    "raw_format_pass": sum(bool(rows[p.id].get("raw_format_ok")) for p in pairs) / max(1, len(pairs))})
        if evidence is not None:
            out[-1]["evidence_agreement"] = evidence_agreement({p.id: rows[p.id]["completion"] for p in pairs},
                                                               evidence)["evidence_agreement"]
    return pd.DataFrame(out)
