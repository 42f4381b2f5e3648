"""The worked pair: one test pair followed through every notebook of the chain.

`choose_worked_pair` picks it by a rule that works on any data folder: the first test pair that is
a trade-off (A better in one region, worse in another) according to ``meta/test.jsonl`` when the
folder has one, else according to its reference rationale (aspect verdicts for both A and B), else
the first test pair. `resolve_worked_pair` checks an id given explicitly.

At the end of the chain, `load_pair_card` gathers every branch's verdict on it (the Answer Model's
probability, the Thinking Model's S0-S4 lines marked against the ground truth) and says each
contradiction in words (`contradiction_sentences`): a branch against the expert, a rationale against
its own answer, a line or a prompt cue against the truth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from idiff_lib.core import layout, storage
from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.core.ontology import OTHER_ANSWER
from idiff_lib.data.datasets import load_split
from idiff_lib.data.meta import split_meta
from idiff_lib.data.pairs import Pair
from idiff_lib.scoring import parser
from idiff_lib.scoring.controls import wrong_side_labels
from idiff_lib.scoring.meta_verdicts import LineMark, mark_lines
from idiff_lib.scoring.rewards import baseline_letter, raw_thinking, thinking_text
from idiff_lib.scoring.text_metrics import rouge_l, sentence_bleu

WORKED_SPLIT = "test"
# Notebook 03 writes the worked pair's prompt at each stage here, in its step folder ({"id", "prompts"}).
WORKED_PROMPTS_FILE = "worked_pair_prompts.json"


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


@dataclass(frozen=True)
class WorkedPair:
    """The test pair every notebook follows, loaded once: the pair and its row of the benchmark's ``meta/``.

    A notebook loads it in one call (`load`) and then asks it: `truth_sentence`, `ground_truth`,
    `comparisons`, `meta` (its defects, face boxes, detail box; None for a folder without ``meta/``).
    """

    pair: Pair
    meta: dict | None

    @classmethod
    def load(cls, data_dir: str | Path, worked_pair: str = "") -> WorkedPair:
        """`resolve_worked_pair`'s pair of `data_dir` and its ``meta/`` row.

        Raises:
            ParameterError: `worked_pair` is not a test pair id.
        """
        pair = resolve_worked_pair(data_dir, worked_pair)
        return cls(pair, split_meta(data_dir, WORKED_SPLIT).get(pair.id))

    @property
    def id(self) -> str:
        return self.pair.id

    @property
    def comparisons(self) -> list[dict] | None:
        """The ground-truth comparisons of the pair (`idiff_lib.data.meta.split_comparisons`' rows), or None."""
        return list((self.meta or {}).get("comparisons") or []) or None

    def ground_truth(self) -> pd.DataFrame:
        """The pair's known defects: one row per defect (side, kind, region, severity) plus the
        penalties; an empty frame when the folder has no metadata for it."""
        row = self.meta
        if row is None:
            return pd.DataFrame(columns=["side", "kind", "region", "severity"])
        rows = [{"side": side, **d} for side, key in (("A", "defects_a"), ("B", "defects_b"), ("both", "shared"))
                for d in row.get(key, [])]
        rows += [{"side": side, "kind": "penalty (meta)", "region": "",
                  "severity": row.get(f"penalty_{side.lower()}")} for side in ("A", "B")]
        return pd.DataFrame(rows, columns=["side", "kind", "region", "severity"])

    def truth_sentence(self) -> str:
        """One sentence on why the worked pair is instructive, read from its metadata or its reference."""
        pair, row = self.pair, self.meta or {}
        wins = {v: sorted({f"{c['region']} {c['attribute']}" for c in row.get("comparisons", []) if c["verdict"] == v})
                for v in ("A", "B")}
        if wins["A"] and wins["B"]:
            return (f"{pair.id} ({pair.category}) is a trade-off: A is better on {', '.join(wins['A'])}, B on "
                    f"{', '.join(wins['B'])}; the expert's answer is {pair.answer}.")
        tradeoff = _reference_tradeoff(pair)
        sides = "gives aspects to both A and B" if tradeoff else "favours one side"
        return f"{pair.id} ({pair.category}): its reference {sides}; the expert's answer is {pair.answer}."


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


# ---------------------------------------------------------------------------------------------
# The pair card: every branch's verdict on the worked pair, against its truth (notebook 06)
# ---------------------------------------------------------------------------------------------
_MARKS = {True: "✓ right", False: "✗ wrong", None: "· not judged"}


@dataclass
class PairCard:
    """The worked pair at the end of the chain.

    Attributes:
        verdicts: one row per branch and stage: ``branch``, ``stage``, ``answer``, ``note``, ``against the
            expert`` (its answer marked against the expert's), ``lines right`` (judged lines that are right,
            against the meta truth).
        lines: the Thinking Model's lines: ``stage``, ``line``, ``verdict``, ``truth``, ``mark``.
        sentences: each contradiction found, said in words (`contradiction_sentences`).
    """

    verdicts: pd.DataFrame
    lines: pd.DataFrame
    sentences: list[str]


def lines_against_answer(completion: str | None) -> str | None:
    """Why a rationale argues against its own ``<answer>``: its Overall line names the other side, or
    most of its aspect lines that pick a side pick the other one; None when they agree (or it has no answer)."""
    answer = baseline_letter(completion)
    if answer not in ("A", "B"):
        return None
    other = OTHER_ANSWER[answer]
    aspects = parser.parse_rationale(raw_thinking(completion))
    overall = parser.overall_verdict(aspects)
    sided = [a.verdict for a in aspects if a.attribute != "overall" and a.verdict in ("A", "B")]
    if overall == other:
        return f"its Overall line names {other} while it answers {answer}"
    if sided and sided.count(other) > len(sided) / 2:
        return f"{sided.count(other)} of its {len(sided)} aspect lines that pick a side pick {other}, yet it answers {answer}"
    return None


def prompt_contradictions(stage_prompts: Mapping[str, str], comparisons: Sequence[Mapping[str, Any]] | None
                          ) -> list[tuple[str, LineMark]]:
    """Prompt lines (cues, evidence) that name a side against the pair's ground truth, each with the
    stage whose prompt first carries it."""
    seen, out = set(), []
    for stage, text in stage_prompts.items():
        for mark in mark_lines(text, comparisons):
            if mark.line in seen:
                continue
            seen.add(mark.line)
            if mark.verdict in ("A", "B") and mark.meta_verdict in ("A", "B") and mark.verdict != mark.meta_verdict:
                out.append((stage, mark))
    return out


def _verdict_row(branch: str, stage: str, answer: str | None, expert: str | None, marks: Sequence[LineMark] = (),
                 note: str = "") -> dict[str, Any]:
    judged = [m for m in marks if m.right is not None]
    right = None if answer is None or expert is None else answer == expert
    return {"branch": branch, "stage": stage, "answer": answer or "none", "note": note,
            "against the expert": _MARKS[right] if right is not None else "",
            "lines right": f"{sum(m.right for m in judged)} of {len(judged)}" if judged else ""}


def pair_card(pair: Pair, comparisons: Sequence[Mapping[str, Any]] | None, answer_row: Mapping[str, Any] | None,
              stage_completions: Mapping[str, str | None], stage_prompts: Mapping[str, str] | None = None,
              thinker: str = "Thinking Model") -> PairCard:
    """Each branch's verdict on `pair` and the Thinking Model's lines marked against the truth.

    Args:
        comparisons: the pair's meta comparisons (`data.meta.split_comparisons`); None without ``meta/``.
        answer_row: the Answer Model's prediction row (``answer``, ``p_left``), None when it has none.
        stage_completions: stage -> the thinker's completion for the pair (None: not written).
        stage_prompts: stage -> the prompt it was given (notebook 03's `WORKED_PROMPTS_FILE`).
    """
    verdicts, lines = [], []
    if answer_row is not None:
        p = answer_row.get("p_left")
        note = f"p_left = {float(p):.3f}" if p is not None else ""
        verdicts.append(_verdict_row("Answer Model", "", answer_row.get("answer"), pair.answer, note=note))
    for stage, completion in stage_completions.items():
        if completion is None:
            verdicts.append(_verdict_row(thinker, stage, None, None, note="not written"))
            continue
        marks = mark_lines(raw_thinking(completion), comparisons)
        verdicts.append(_verdict_row(thinker, stage, baseline_letter(completion), pair.answer, marks))
        lines += [{"stage": stage, "line": m.line, "verdict": m.verdict or "none", "truth": m.meta_verdict or "",
                   "mark": _MARKS[m.right]} for m in marks]
    sentences = contradiction_sentences(pair, answer_row, stage_completions, stage_prompts or {}, comparisons, thinker)
    return PairCard(pd.DataFrame(verdicts), pd.DataFrame(lines, columns=["stage", "line", "verdict", "truth", "mark"]),
                    sentences)


def contradiction_sentences(pair: Pair, answer_row: Mapping[str, Any] | None, stage_completions: Mapping[str, str | None],
                            stage_prompts: Mapping[str, str], comparisons: Sequence[Mapping[str, Any]] | None,
                            thinker: str = "Thinking Model") -> list[str]:
    """Each contradiction on the worked pair in words: a branch against the expert's answer, a rationale
    against its own answer, a line or a prompt cue against the ground truth; or that none was found."""
    out = []
    if answer_row is not None and pair.answer and answer_row.get("answer") not in (None, pair.answer):
        out.append(f"The Answer Model answers {answer_row['answer']}; the expert answers {pair.answer}.")
    for stage, completion in stage_completions.items():
        if completion is None:
            continue
        against = lines_against_answer(completion)
        if against:
            out.append(f"The {thinker}'s {stage} rationale argues against its own answer: {against}.")
        wrong = [m for m in mark_lines(raw_thinking(completion), comparisons) if m.right is False]
        if wrong:
            out.append(f"Its {stage} rationale has {len(wrong)} line(s) against the ground truth, e.g. "
                       f"\"{wrong[0].line}\" (truth: {wrong[0].meta_verdict}).")
    for stage, mark in prompt_contradictions(stage_prompts, comparisons):
        out.append(f"The {stage} prompt's line \"{mark.line}\" favours {mark.verdict} on {mark.region} {mark.attribute}, "
                   f"where the ground truth favours {mark.meta_verdict}.")
    return out or ["No contradiction found: every branch, line and cue that the ground truth can judge agrees with it."]


def load_pair_card(run_dir: str | Path, worked: WorkedPair) -> PairCard:
    """`pair_card` from a run's records: step 02's test predictions, step 03's ladder files of its final
    system (``<model>_<stage>.jsonl``, the stages of its ``params.yaml``) and `WORKED_PROMPTS_FILE`, and
    the worked pair's ``meta/`` ground truth."""
    pair = worked.pair
    answer_dir, thinking_dir = layout.step_dir(run_dir, layout.ANSWER_STEP), layout.step_dir(run_dir, layout.THINKING_STEP)
    preds = answer_dir / layout.TEST_PREDICTIONS_FILE
    answer_row = next((r for r in storage.read_jsonl_rows(preds) if r.get("id") == pair.id), None) if preds.exists() else None
    metrics = _read_json(thinking_dir / layout.METRICS_FILE)
    params = _read_yaml(thinking_dir / layout.PARAMS_FILE)
    model = str(metrics.get("final_system") or "").rpartition("_")[0]
    completions = {}
    for stage in params.get("stages") or []:
        path = thinking_dir / "ladder" / f"{model}_{stage}.jsonl"
        rows = storage.read_jsonl_rows(path) if model and path.exists() else []
        completions[stage] = next((r["completion"] for r in rows if r.get("id") == pair.id), None)
    saved = _read_json(thinking_dir / WORKED_PROMPTS_FILE)
    prompts = saved.get("prompts", {}) if saved.get("id") == pair.id else {}
    return pair_card(pair, worked.comparisons, answer_row, completions, prompts, thinker=f"Thinking Model ({model or '?'})")


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}
