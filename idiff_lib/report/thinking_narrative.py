"""Notebook 03's sentences and small tables, computed from what the step is set to run and what it ran:
the plan (`thinking_plan_sentence`), the training runs (`training_sentences`, `training_time_sentence`),
the S0 control (`control_status_sentence`, and what it found against the last stage's interval:
`control_sentence`), each ladder row's accuracy and ROUGE-L with their 95% intervals, A/B counts and
answer sources (`with_accuracy_intervals`, `with_rouge_intervals`, `accuracy_count_table`) and the GRPO reward curves
(`grpo_reward_sentences`). The rules are those of `narrative`: no claim about a setting or a result is
typed beside the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from idiff_lib.core import storage
from idiff_lib.report import narrative
from idiff_lib.scoring import controls
from idiff_lib.scoring.rewards import baseline_letter, thinking_text
from idiff_lib.scoring.stats import cluster_bootstrap_mean
from idiff_lib.scoring.text_metrics import rouge_l

# How the accuracy table names each answer source (`narrative.ANSWER_SOURCES` says them in full).
SOURCE_LABELS: dict[str, str] = {"model": "model", "fallback": "fallback", "prior": "prior", "cues": "cues",
                                 "evidence": "evidence", "answer_model": "Answer Model",
                                 "reference_fallback": "reference (fallback)", "prior_fallback": "prior (fallback)",
                                 "unrecorded": "unrecorded"}


def grpo_plan_clause(params: Mapping[str, Any]) -> str:
    """Where GRPO is set to start and on how many prompts, or that it is off."""
    if not params.get("grpo"):
        return "no GRPO"
    starts = (["the tuned S4 model"] if "S4" in (params.get("stages") or []) else []) + (
        ["the base model"] if params.get("grpo_from_base") else [])
    if not starts:
        return "GRPO is on but has no start (no S4 stage and grpo_from_base off)"
    return f"then GRPO from {' and from '.join(starts)}, on {params.get('grpo_prompts')} train prompts each"


def thinking_plan_sentence(params: Mapping[str, Any]) -> str:
    """What step 03 is set to run, from its parameters, before anything trains."""
    return f"This run trains the Thinking Model {narrative.ladder_clause(params)}; {grpo_plan_clause(params)}."


def _run_sentence(name: str, result: Mapping[str, Any]) -> tuple[str, bool | None]:
    """One run's sentence, and whether its val loss was lowest at its last point (None: no val loss)."""
    train = result.get("loss_history") or []
    val = result.get("val_history") or []
    text = f"{name}: {result.get('steps', len(train))} optimiser steps"
    if train:
        text += f", training loss {float(train[0][1]):.2f} → {float(train[-1][1]):.2f}"
    if not val:
        return text + " (no val loss measured; the last weights are kept).", None
    best_step, best = min(((int(s), float(v)) for s, v in val), key=lambda sv: sv[1])
    text += f"; val loss lowest ({best:.2f}) at step {best_step} of {int(val[-1][0])}, the weights kept"
    still_falling = len(val) > 1 and float(val[-1][1]) <= best and float(val[-1][1]) < float(val[-2][1])
    return text + (" (still falling at the last point)." if still_falling else "."), still_falling


def training_sentences(train_results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One sentence per training run (steps, first and last training loss, the val loss's lowest point
    and the step kept), then how many runs' val loss was still falling when the budget ended."""
    out, falling = [], []
    for name, result in train_results.items():
        text, still = _run_sentence(str(name), result)
        out.append(text)
        if still is not None:
            falling.append(still)
    if falling:
        k = sum(falling)
        out.append(f"{k} of {len(falling)} runs' val loss was still falling at its last point"
                   + (": the budget, not the data, stopped them." if k else ": each run reached its lowest point before the end."))
    return out


def training_time_sentence(train_results: Mapping[str, Mapping[str, Any]], batch_size: int, grad_accum: int = 1) -> str:
    """What the training runs cost on this machine: their seconds (val loss points included), optimiser
    steps and seconds per training sequence (`batch_size` x `grad_accum` sequences per step)."""
    steps = sum(int(r.get("steps") or 0) for r in train_results.values())
    seconds = sum(float(r.get("seconds") or 0.0) for r in train_results.values())
    if not steps:
        return "No optimiser step ran."
    per_step = int(batch_size) * int(grad_accum)
    return (f"{len(train_results)} training run(s) took {seconds:,.0f} s (val loss points included) for {steps} "
            f"optimiser steps of {per_step} sequences: {seconds / (steps * per_step):.1f} s per training sequence here.")


def control_status_sentence(params: Mapping[str, Any]) -> str:
    """What the S0 control does in this run, or what its absence means for the ladder mode that ran."""
    stages = list(params.get("stages") or [])
    epochs = int(params.get("epochs_per_stage") or 0) * len(stages)
    if params.get("s0_control"):
        return (f"The S0 control trains S0's prompt for {epochs} epochs, as many as the whole ladder: S4 against it "
                f"is the effect of the prompt, the control against S0 the effect of training longer.")
    if params.get("ladder") == "joint":
        return ("No S0 control ran (s0_control = False). In the joint ladder every stage's rationales come from the "
                "same weights, so two rows differ by their prompt alone.")
    return ("No S0 control ran (s0_control = False): S4 has trained through every earlier stage, so its gain over S0 "
            "mixes the richer prompt with the longer training.")


def _value_with_interval(row: Mapping[str, Any], metric: str) -> str:
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    ci = f" [{float(low):.3f}, {float(high):.3f}]" if narrative.is_finite(low) and narrative.is_finite(high) else ""
    return f"{float(row[metric]):.3f}{ci}"


def control_sentence(rows: Sequence[Mapping[str, Any]], system: str, control: str, metric: str = "rouge_l") -> str:
    """What the S0 control says: does the last stage beat S0 trained as long, or is the ladder's gain training?

    Each comparison is made against the last stage's 95% interval (``<metric>_ci_low`` / ``_ci_high`` of
    its row, as `narrative.floor_position` does): a gain or a split is claimed only when the other value lies
    outside it. Without an interval the values are compared as they are, and the sentence says that no
    interval was computed, so nothing is shown to be real.

    Args:
        rows: the ladder rows (``system``, ``stage`` and `metric`, with its interval where computed).
        system: the ladder's system; control: the control's system name.
    """
    by = {(r["system"], r["stage"]): r for r in rows}
    stages = [r["stage"] for r in rows if r["system"] == system]
    if (control, "S0") not in by or not stages:
        return "The S0 control was not trained in this run (s0_control=False)."
    first, last, ctrl = by[(system, stages[0])], by[(system, stages[-1])], by[(control, "S0")]
    head = (f"{metric}: {system} {stages[0]} {_value_with_interval(first, metric)}, {stages[-1]} "
            f"{_value_with_interval(last, metric)}; S0 trained as long as {stages[-1]} {_value_with_interval(ctrl, metric)}. ")
    low, high = last.get(f"{metric}_ci_low"), last.get(f"{metric}_ci_high")
    has_ci = narrative.is_finite(low) and narrative.is_finite(high)
    caveat = "" if has_ci else " No interval was computed for these values, so this split is not shown to be real."
    gain = narrative.floor_position(last[metric], low, high, float(first[metric]))
    if gain != "above":
        why = f"{stages[0]}'s value lies inside {stages[-1]}'s 95% interval" if has_ci and gain == "within" else \
            f"{stages[-1]} does not score above {stages[0]}"
        return head + f"The ladder shows no gain to split: {why}."
    beyond = narrative.floor_position(last[metric], low, high, float(ctrl[metric]))
    if beyond == "within" and has_ci:
        return head + (f"The control's value lies inside {stages[-1]}'s 95% interval: S0 trained as long is not "
                       f"shown to differ from {stages[-1]}, so the gain is not shown to come from the prompt.")
    if beyond != "above":
        return head + (f"S0 trained as long does at least as well as {stages[-1]}: the ladder's gain is more training, "
                       f"not prompt information.{caveat}")
    share = max(float(ctrl[metric]) - float(first[metric]), 0.0) / (float(last[metric]) - float(first[metric]))
    where = f"; {stages[-1]}'s whole 95% interval lies above the control" if has_ci else ""
    return head + (f"By the values, training alone accounts for {share:.0%} of the ladder's gain and the prompt adds "
                   f"the rest{where}.{caveat}")


def with_rouge_intervals(ladder: pd.DataFrame, ladder_dir: str | Path, references: Mapping[str, str],
                         clusters: Mapping[str, str], seed: int = 0) -> pd.DataFrame:
    """The ladder with ``rouge_l_ci_low`` / ``rouge_l_ci_high``: each row's rationales (its
    ``<system>_<stage>.jsonl``) against `references` (pair id -> reference ``<thinking>`` text), per-pair ROUGE-L F
    (whose mean is the row's ``rouge_l``) and a 95% interval from `stats.cluster_bootstrap_mean` over photos.
    Rows without a file keep NaN."""
    out = ladder.copy()
    low, high = [], []
    for _, r in out.iterrows():
        path = _ladder_file(Path(ladder_dir), r["system"], r["stage"])
        rows = [row for row in (storage.read_jsonl_rows(path) if path.exists() else []) if row.get("id") in references]
        scores = rouge_l([thinking_text(row.get("completion")) for row in rows],  # as `scorers.score` reads them
                         [" ".join((references[row["id"]] or "").split()) for row in rows])
        ci = cluster_bootstrap_mean([s["f"] for s in scores], [clusters.get(row["id"], row["id"]) for row in rows],
                                    seed=seed)
        low.append(math.nan if ci["ci_low"] is None else ci["ci_low"])
        high.append(math.nan if ci["ci_high"] is None else ci["ci_high"])
    out["rouge_l_ci_low"], out["rouge_l_ci_high"] = low, high
    return out


def _ladder_file(ladder_dir: Path, system: str, stage: str) -> Path:
    return ladder_dir / f"{system}_{stage}.jsonl"


def with_accuracy_intervals(ladder: pd.DataFrame, ladder_dir: str | Path, truth: Mapping[str, str],
                            clusters: Mapping[str, str], seed: int = 0) -> pd.DataFrame:
    """The ladder with ``accuracy_ci_low`` / ``accuracy_ci_high``: each row's answers (its
    ``<system>_<stage>.jsonl`` in `ladder_dir`) against `truth`, a 95% interval from
    `stats.cluster_bootstrap_mean` over photos (`clusters`: pair id -> photo). Rows without a file
    keep NaN."""
    out = ladder.copy()
    low, high = [], []
    for _, r in out.iterrows():
        path = _ladder_file(Path(ladder_dir), r["system"], r["stage"])
        rows = storage.read_jsonl_rows(path) if path.exists() else []
        ids = [row["id"] for row in rows if row.get("id") in truth]
        right = {row["id"]: float(baseline_letter(row.get("completion") or "") == truth[row["id"]])
                 for row in rows if row.get("id") in truth}
        ci = cluster_bootstrap_mean([right[i] for i in ids], [clusters.get(i, i) for i in ids], seed=seed)
        low.append(math.nan if ci["ci_low"] is None else ci["ci_low"])
        high.append(math.nan if ci["ci_high"] is None else ci["ci_high"])
    out["accuracy_ci_low"], out["accuracy_ci_high"] = low, high
    return out


def _sources_cell(sources: Mapping[str, int]) -> str:
    return ", ".join(f"{SOURCE_LABELS.get(k, k)} {v}" for k, v in sorted(sources.items(), key=lambda kv: -kv[1]) if v)


def accuracy_count_table(ladder: pd.DataFrame, counts: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Each ladder row's accuracy beside its 95% interval, how many rationales answer A and B, and
    where the answers came from (`narrative.ladder_answer_counts`), with ``constant`` naming a letter
    given for every pair (its accuracy is that letter's share of the truth, not a judgement)."""
    by = narrative.counts_by_row(counts) if len(counts) else {}
    rows = []
    for _, r in ladder.iterrows():
        if r.get("stage") == controls.FLOOR_STAGE:
            continue
        c = by.get((r["system"], r["stage"]), {})
        low, high = r.get("accuracy_ci_low"), r.get("accuracy_ci_high")
        interval = (f"[{float(low):.{digits}f}, {float(high):.{digits}f}]"
                    if narrative.is_finite(low) and narrative.is_finite(high) else "")
        rows.append({"system": r["system"], "stage": r["stage"], "n": c.get("n", r.get("n")),
                     "accuracy": round(float(r["accuracy"]), digits) if narrative.is_finite(r.get("accuracy")) else None,
                     "95% interval": interval, "A": c.get("A"), "B": c.get("B"),
                     "constant": narrative.constant_letter(c) or "" if c else "",
                     "answers from": _sources_cell(c.get("sources") or {})})
    return pd.DataFrame(rows, columns=["system", "stage", "n", "accuracy", "95% interval", "A", "B", "constant",
                                       "answers from"])


def _first_last(history: Sequence[Mapping[str, Any]], key: str) -> tuple[float, float] | None:
    values = [float(h[key]) for h in history if key in h and narrative.is_finite(h[key])]
    return (values[0], values[-1]) if values else None


def grpo_reward_sentences(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Per GRPO run: its steps, the format and accuracy rewards at the first and the last step, and in
    how many steps every completion of a group earned the same reward (no signal to learn from)."""
    out = []
    for system, history in histories.items():
        steps = [h for h in history if "step" in h and any(k.startswith("rewards/") for k in h)]
        if not steps:
            out.append(f"{system} logged no reward.")
            continue
        parts = []
        for key, label in (("rewards/format/mean", "format"), ("rewards/accuracy/mean", "accuracy")):
            pair = _first_last(steps, key)
            if pair:
                parts.append(f"{label} reward {pair[0]:.2f} → {pair[1]:.2f}")
        flat = [float(h["frac_reward_zero_std"]) for h in steps if "frac_reward_zero_std" in h]
        tail = (f"; on average {sum(flat) / len(flat):.0%} of its groups had one reward for every completion "
                f"(no signal)" if flat else "")
        out.append(f"{system}: {len(steps)} steps, {', '.join(parts)}{tail}.")
    return out
