"""The worked pair: one test pair followed through every notebook of the chain.

`choose_worked_pair` picks it by a rule that works on any data folder: the first test pair that is
a trade-off (A better in one region, worse in another) according to ``meta/test.jsonl`` when the
folder has one, else according to its reference rationale (aspect verdicts for both A and B), else
the first test pair. `resolve_worked_pair` checks an id given explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.data.datasets import load_split
from idiff_lib.data.meta import split_meta
from idiff_lib.data.pairs import Pair
from idiff_lib.scoring import parser
from idiff_lib.scoring.controls import wrong_side_labels
from idiff_lib.scoring.rewards import baseline_letter, raw_thinking, thinking_text
from idiff_lib.scoring.text_metrics import rouge_l, sentence_bleu

WORKED_SPLIT = "test"


def _reference_tradeoff(pair: Pair) -> bool:
    verdicts = {a.verdict for a in parser.parse_rationale(pair.thinking) if a.attribute != "overall"}
    return {"A", "B"} <= verdicts


def choose_worked_pair(pairs: Sequence[Pair], meta: dict[str, dict] | None = None) -> str:
    """The id of the first trade-off pair (meta's ``tradeoff`` flag, else the reference's verdicts).

    Raises:
        ParameterError: no pairs.
    """
    pairs = list(pairs)
    if not pairs:
        raise ParameterError("worked_pair: the test split has no pairs to choose from")
    meta = meta or {}
    for pair in pairs:
        if meta.get(pair.id, {}).get("tradeoff"):
            return pair.id
    for pair in pairs:
        if pair.thinking and _reference_tradeoff(pair):
            return pair.id
    return pairs[0].id


def resolve_worked_pair(data_dir: str | Path, worked_pair: str = "") -> Pair:
    """The worked pair of a data folder's test split: `worked_pair` when given, else the rule's choice.

    Raises:
        ParameterError: `worked_pair` is not a test pair id (a few valid ids and close matches named).
    """
    pairs = load_split(data_dir, WORKED_SPLIT)
    by_id = {p.id: p for p in pairs}
    if not worked_pair:
        return by_id[choose_worked_pair(pairs, split_meta(data_dir, WORKED_SPLIT))]
    if worked_pair not in by_id:
        ids = list(by_id)
        raise ParameterError(
            f"worked_pair: {worked_pair!r} is not a pair of {Path(data_dir) / (WORKED_SPLIT + '_sft.jsonl')}."
            f"{suggest(worked_pair, ids)} Valid ids include: {', '.join(ids[:5])} ({len(ids)} in all). "
            "fix: pass one of them (--param worked_pair=<id>) or leave it empty for the default choice")
    return by_id[worked_pair]


def ground_truth(data_dir: str | Path, pair: Pair) -> pd.DataFrame:
    """The pair's known defects from ``meta/``: one row per defect (side, kind, region, severity) plus
    the penalties; an empty frame when the folder has no metadata for it."""
    row = split_meta(data_dir, WORKED_SPLIT).get(pair.id)
    if row is None:
        return pd.DataFrame(columns=["side", "kind", "region", "severity"])
    rows = [{"side": side, **d} for side, key in (("A", "defects_a"), ("B", "defects_b"), ("both", "shared"))
            for d in row.get(key, [])]
    rows += [{"side": side, "kind": "penalty (meta)", "region": "",
              "severity": row.get(f"penalty_{side.lower()}")} for side in ("A", "B")]
    return pd.DataFrame(rows, columns=["side", "kind", "region", "severity"])


def truth_sentence(data_dir: str | Path, pair: Pair) -> str:
    """One sentence on why the worked pair is instructive, read from its metadata or its reference."""
    row = split_meta(data_dir, WORKED_SPLIT).get(pair.id, {})
    wins = {v: sorted({f"{c['region']} {c['attribute']}" for c in row.get("comparisons", []) if c["verdict"] == v})
            for v in ("A", "B")}
    if wins["A"] and wins["B"]:
        return (f"{pair.id} ({pair.category}) is a trade-off: A is better on {', '.join(wins['A'])}, B on "
                f"{', '.join(wins['B'])}; the expert's answer is {pair.answer}.")
    tradeoff = _reference_tradeoff(pair)
    return (f"{pair.id} ({pair.category}): its reference {'gives aspects to both A and B' if tradeoff else 'favours one side'}"
            f"; the expert's answer is {pair.answer}.")


def line_by_line(completion: str, reference: Pair) -> pd.DataFrame:
    """The candidate's and the reference's aspect lines side by side, matched on (region, attribute),
    with each side's verdict, whether they agree, and the candidate line's wrong-side labels."""
    pred = {a.key: a for a in parser.parse_rationale(raw_thinking(completion))}
    ref = {a.key: a for a in parser.parse_rationale(reference.thinking)}
    rows = []
    for key in list(ref) + [k for k in pred if k not in ref]:
        p, r = pred.get(key), ref.get(key)
        rows.append({"aspect": " ".join(key), "reference verdict": (r.verdict or "none") if r else "absent",
                     "candidate verdict": (p.verdict or "none") if p else "absent",
                     "agree": bool(p and r and p.verdict == r.verdict),
                     "wrong side labels": wrong_side_labels(f"{p.heading}: {p.text}") if p else 0,
                     "candidate line": f"{p.heading}: {p.text}" if p else "",
                     "reference line": f"{r.heading}: {r.text}" if r else ""})
    return pd.DataFrame(rows)


def pair_scores(completion: str, reference: Pair) -> dict[str, Any]:
    """The worked pair's own scores: sentence BLEU-4 (0-1), ROUGE-L F, answer, wrong-side labels."""
    hyp, ref = thinking_text(completion), " ".join((reference.thinking or "").split())
    return {"answer": baseline_letter(completion), "reference answer": reference.answer,
            "BLEU-4 (sentence, 0-1)": sentence_bleu([hyp], [ref])[0],
            "ROUGE-L F": rouge_l([hyp], [ref])[0]["f"], "wrong side labels": wrong_side_labels(hyp)}
