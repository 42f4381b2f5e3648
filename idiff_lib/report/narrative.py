"""Sentences computed from what a run did: every claim a notebook or the README makes about a setting
or a result is printed by one of these functions from the run's recorded settings (``params.yaml``),
metrics (``metrics.json``, ``ladder_scores.csv``), outputs (the ladder's JSONL files) and times
(``timings.jsonl``), never typed beside the numbers.

The rules the sentences follow:

- a value is **above** a floor only when its whole 95% interval is (lower bound above the floor),
  **below** only when the upper bound is below it; otherwise the floor is inside the interval and
  the sentence says so (`floor_position`, `floor_claim`);
- an accuracy from one constant letter is named as such: answering A for every pair scores the share
  of A in the truth (`answer_count_sentence`);
- where an answer came from (the model, a fallback letter, the train prior, the Answer Model's
  verdict in the prompt) is counted per stage (`answer_counts`);
- a "what this shows" paragraph whose result did not run is not shown (`what_this_shows`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import Markdown, display

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError
from idiff_lib.core.ontology import STAGES
from idiff_lib.scoring import controls
from idiff_lib.scoring.rewards import baseline_letter

# Where a ladder row's <answer> came from (``answer_source`` of notebook 03's ladder files) in words.
ANSWER_SOURCES: dict[str, str] = {
    "model": "the model's own",
    "fallback": "the fallback letter for a missing answer",
    "prior": "the train split's majority letter",
    "cues": "the feature cues",
    "evidence": "the evidence heads",
    "answer_model": "the Answer Model's verdict in the prompt",
    "reference_fallback": "the reference answer, the prompt's fallback verdict",
    "prior_fallback": "the train split's majority letter, the prompt's fallback verdict",
}
_LADDER_FILE = re.compile(r"^(?P<system>.+)_(?P<stage>[^_]+)$")


# ---------------------------------------------------------------------------------------------
# Floors
# ---------------------------------------------------------------------------------------------
def is_finite(value: Any) -> bool:
    """Whether `value` is a finite number (None, NaN and text are not)."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def floor_position(value: float, low: float | None, high: float | None, floor: float) -> str:
    """Where a value sits against a floor: ``"above"``, ``"below"`` or ``"within"``.

    With an interval (`low`, `high`) the whole interval decides: above only when ``low > floor``,
    below only when ``high < floor``, else the floor is within it. Without one (None or NaN) the
    value itself is compared, and equal counts as within.
    """
    if is_finite(low) and is_finite(high):
        if float(low) > floor:
            return "above"
        return "below" if float(high) < floor else "within"
    if not is_finite(value):
        return "within"
    return "above" if float(value) > floor else "below" if float(value) < floor else "within"


def floor_claim(name: str, value: float, low: float | None, high: float | None, floor: float,
                floor_label: str = "chance") -> str:
    """One sentence placing `name`'s value against a floor, with its 95% interval when it has one."""
    ci = f" [{float(low):.2f}, {float(high):.2f}]" if is_finite(low) and is_finite(high) else ""
    where = floor_position(value, low, high, floor)
    head = f"{name} is {float(value):.2f}{ci}"
    the = "" if floor_label == "chance" else "the "
    if not ci:
        word = {"above": "above", "below": "below", "within": "at"}[where]
        return f"{head}, {word} {the}{floor_label} ({floor:.2f}); no interval was computed for it."
    if where == "above":
        return f"{head}: its whole 95% interval lies above {the}{floor_label} ({floor:.2f})."
    if where == "below":
        return f"{head}: its whole 95% interval lies below {the}{floor_label} ({floor:.2f})."
    return (f"{head}: {the}{floor_label} ({floor:.2f}) is inside its 95% interval, so it is not shown "
            f"to differ from it.")


# ---------------------------------------------------------------------------------------------
# Answers: where they came from, and how many A and B
# ---------------------------------------------------------------------------------------------
def answer_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """How many rationales answer A and B, and where the answers came from.

    Args:
        rows: ladder rows (``{"id", "completion", "answer_source"?}``); the letter is the
            completion's ``<answer>`` (`rewards.baseline_letter`).

    Returns:
        ``{"n", "A", "B", "none", "sources": {source: count}}``; a row without ``answer_source`` counts
        as ``"unrecorded"``.
    """
    letters, sources = Counter(), Counter()
    for row in rows:
        letter = baseline_letter(row.get("completion") or "")
        letters[letter if letter in ("A", "B") else "none"] += 1
        sources[row.get("answer_source") or "unrecorded"] += 1
    return {"n": sum(letters.values()), "A": letters["A"], "B": letters["B"], "none": letters["none"],
            "sources": dict(sources)}


def constant_letter(counts: Mapping[str, Any]) -> str | None:
    """The letter every rationale answers, or None when the answers vary (or there are none)."""
    n = counts.get("n", 0)
    for letter in ("A", "B"):
        if n and counts.get(letter) == n:
            return letter
    return None


def ladder_answer_counts(ladder_dir: str | Path, truth: Mapping[str, str]) -> pd.DataFrame:
    """`answer_counts` of every ``<system>_<stage>.jsonl`` in notebook 03's ladder folder.

    Args:
        truth: pair id -> the reference answer, to give each row the share of its constant letter in
            the truth of the pairs it answered.

    Returns:
        One row per file: system, stage, n, A, B, none, constant (the letter or ""), truth_share (the
        share of `constant` among those pairs' true answers; NaN when the answers vary), and one
        ``source: <name>`` column per source seen.
    """
    folder = Path(ladder_dir)
    out = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        m = _LADDER_FILE.match(path.stem)
        if not m:
            continue
        rows = storage.read_jsonl_rows(path)
        counts = answer_counts(rows)
        letter = constant_letter(counts)
        answered = [truth[r["id"]] for r in rows if r.get("id") in truth]
        share = sum(t == letter for t in answered) / len(answered) if letter and answered else math.nan
        out.append({"system": m.group("system"), "stage": m.group("stage"), "n": counts["n"], "A": counts["A"],
                    "B": counts["B"], "none": counts["none"], "constant": letter or "", "truth_share": share,
                    **{f"source: {k}": v for k, v in counts["sources"].items()}})
    frame = pd.DataFrame(out)
    source_cols = sorted(c for c in frame.columns if c.startswith("source: "))
    if source_cols:
        frame[source_cols] = frame[source_cols].fillna(0).astype(int)
    return frame


def _sources_text(sources: Mapping[str, int]) -> str:
    parts = [f"{n} from {ANSWER_SOURCES.get(k, k)}" for k, n in sorted(sources.items(), key=lambda kv: -kv[1]) if n]
    return ", ".join(parts)


def answer_count_sentence(name: str, counts: Mapping[str, Any], accuracy: float | None = None,
                          truth_share: float | None = None) -> str:
    """One sentence on a row's answers: the A/B counts, their sources, and what its accuracy means.

    A constant answer's accuracy is called the share of that letter in the truth, not a judgement.
    Answers taken from the prompt (`controls.PROMPT_VERDICT_SOURCES`) are called copied, and a reference
    answer put there as a fallback is named, since copying it scores 1 by construction.
    """
    n = int(counts.get("n", 0))
    if n == 0:
        return f"{name} wrote no rationales."
    sources = {k: int(v) for k, v in (counts.get("sources") or {}).items()}
    letter = constant_letter(counts)
    acc = f" {float(accuracy):.2f}" if is_finite(accuracy) else ""
    src = _sources_text(sources)
    if letter:
        share = f" ({float(truth_share):.2f})" if is_finite(truth_share) else ""
        text = (f"{name} answers {letter} for {n} of {n} pairs ({src}): this accuracy{acc} is the share of "
                f"{letter} in the truth{share}, not a judgement of the pairs.")
    else:
        text = f"{name} answers A for {counts.get('A', 0)} and B for {counts.get('B', 0)} of {n} pairs ({src})"
        if sources.get("answer_model", 0) == n:
            text += f"; its accuracy{acc} is {controls.ACCURACY_COPIED_NOTE}."
        elif copied_from_prompt(sources, n):
            text += f"; its accuracy{acc} is copied from the prompt, whose verdicts are {_prompt_verdicts_text(sources)}."
        elif sources.get("model", 0) == n:
            text += f"; its accuracy{acc} is the model's own."
        else:
            text += f"; its accuracy{acc} mixes these sources." if acc else "."
    return text


def _prompt_verdicts_text(sources: Mapping[str, int]) -> str:
    words = {"answer_model": "the Answer Model's", "reference_fallback": "the reference answer (right by construction)",
             "prior_fallback": "the train prior"}
    parts = [f"{words[k]} for {int(sources[k])}" for k in controls.PROMPT_VERDICT_SOURCES if sources.get(k)]
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)


def copied_from_prompt(sources: Mapping[str, int], n: int) -> bool:
    """Whether all `n` answers are the prompt's verdict (any of `controls.PROMPT_VERDICT_SOURCES`)."""
    return n > 0 and sum(int(sources.get(k, 0)) for k in controls.PROMPT_VERDICT_SOURCES) == n


def counts_by_row(counts: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """`ladder_answer_counts`'s table as {(system, stage): `answer_counts`-shaped dict with truth_share}."""
    out = {}
    for _, r in counts.iterrows():
        sources = {c.removeprefix("source: "): int(r[c]) for c in counts.columns if c.startswith("source: ") and r[c]}
        out[(r["system"], r["stage"])] = {"n": int(r["n"]), "A": int(r["A"]), "B": int(r["B"]),
                                          "none": int(r["none"]), "sources": sources, "truth_share": r["truth_share"]}
    return out


def ladder_accuracy_sentences(ladder: pd.DataFrame, counts: pd.DataFrame | None = None,
                              prompt_answer_note: str = "") -> list[str]:
    """For each ladder row (floor row skipped) one or two sentences on its accuracy.

    Where the answers came from is said first (`answer_count_sentence`, when `counts` has the row). A row
    that answers one letter throughout, or whose every answer is copied from the prompt's verdict, gets no
    claim against chance: its accuracy is that letter's share of the truth, or the prompt's verdicts'
    (`prompt_answer_note`, step 03's ``s4_answer_source``, follows a copied row). Any other row's accuracy
    is then placed against chance with its interval (`floor_claim`).
    """
    by = counts_by_row(counts) if counts is not None and len(counts) else {}
    lines = []
    for _, r in ladder.iterrows():
        if r.get("stage") == controls.FLOOR_STAGE or not is_finite(r.get("accuracy")):
            continue
        name = f"{r['system']} {r['stage']}"
        row = by.get((r["system"], r["stage"]))
        claim = floor_claim(f"{name}'s accuracy", r["accuracy"], r.get("accuracy_ci_low"), r.get("accuracy_ci_high"),
                            0.5, "chance")
        if row is None:
            lines.append(claim)
            continue
        text = answer_count_sentence(name, row, r["accuracy"], row.get("truth_share"))
        if constant_letter(row):
            lines.append(text)
        elif copied_from_prompt(row["sources"], row["n"]):
            lines.append(text + (f" The prompt's verdicts: {prompt_answer_note}." if prompt_answer_note else ""))
        else:
            lines.append(f"{text} {claim}")
    return lines


def text_floor_sentence(ladder: pd.DataFrame, metric: str = "rouge_l") -> str:
    """How many ladder rows clear the shuffled-reference floor on `metric`, by their interval when
    they have one (``<metric>_ci_low`` / ``_ci_high``), else by the value (said so)."""
    floor = ladder[ladder["stage"] == controls.FLOOR_STAGE]
    rows = ladder[(ladder["stage"] != controls.FLOOR_STAGE) & ladder[metric].notna()] if metric in ladder else ladder[:0]
    if floor.empty or rows.empty or not is_finite(floor[metric].iloc[0]):
        return ""
    base = float(floor[metric].iloc[0])
    low, high = f"{metric}_ci_low", f"{metric}_ci_high"
    where = [floor_position(r[metric], r.get(low), r.get(high), base) for _, r in rows.iterrows()]
    has_ci = low in rows and rows[low].notna().any()
    best = rows.loc[pd.to_numeric(rows[metric]).idxmax()]
    how = "by their whole 95% interval" if has_ci else "by their value (no interval)"
    return (f"{where.count('above')} of {len(rows)} ladder rows score above the shuffled-reference floor on "
            f"{metric} ({base:.3f}) {how}, {where.count('below')} below; the best, {best['system']} {best['stage']}, "
            f"is {float(best[metric]) - base:+.3f} from it.")


# ---------------------------------------------------------------------------------------------
# What ran: the Thinking step's settings, GRPO, times
# ---------------------------------------------------------------------------------------------
def grpo_systems(metrics03: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The ladder systems notebook 03 trained with GRPO (its ``metrics.json``'s ``grpo.train``)."""
    grpo = (metrics03 or {}).get("grpo") or {}
    return tuple((grpo.get("train") or {}).keys()) if grpo.get("run") else ()


def ladder_clause(params03: Mapping[str, Any]) -> str:
    """How step 03's settings train the ladder, as a clause: the stages, joint or progressive, the S0 control."""
    stages = list(params03.get("stages") or STAGES)
    mode = params03.get("ladder")
    if mode == "joint":
        how = f"one joint run on the prompts of all {len(stages)} stages ({', '.join(stages)})"
    elif mode == "progressive":
        how = f"stage by stage ({' → '.join(stages)}), each stage starting from the previous one's weights"
    else:
        how = f"the stages {', '.join(stages)} (ladder {mode!r})"
    control = ("with an S0 control trained as long as the whole ladder" if params03.get("s0_control")
               else "without an S0 control")
    return f"{how}, {control}"


def thinking_run_sentence(params03: Mapping[str, Any], metrics03: Mapping[str, Any] | None = None) -> str:
    """What step 03 trained, read from its ``params.yaml`` (and ``metrics.json``): the stages, joint
    or progressive, the S0 control, and where GRPO started, on how many prompts."""
    parts = [f"Step 03 trained {ladder_clause(params03)}"]
    systems = grpo_systems(metrics03)
    if params03.get("grpo") and systems:
        grpo = (metrics03 or {}).get("grpo") or {}
        train = grpo.get("train") or {}
        steps = ", ".join(f"{s} {train[s].get('steps')} steps" for s in systems)
        parts.append(f"then GRPO from {len(systems)} start(s) on {params03.get('grpo_prompts')} train prompts "
                     f"each at {grpo.get('prompt_stage')} ({steps})")
    elif params03.get("grpo"):
        parts.append("GRPO was asked for but recorded no run")
    else:
        parts.append("no GRPO")
    return "; ".join(parts) + "."


def step_time(time_rows: Sequence[Mapping[str, Any]], step: str) -> dict[str, Any] | None:
    """The latest recorded attempt of `step` among `chain.timing.time_table`'s rows, or None."""
    hits = [r for r in time_rows if r.get("step") == step]
    return hits[-1] if hits else None


def time_sentence(time_rows: Sequence[Mapping[str, Any]], step: str) -> str:
    """How long `step` took in this run (``timings.jsonl``), or that it recorded no time."""
    row = step_time(time_rows, step)
    if row is None:
        return f"{step} has no recorded time in this run."
    if row.get("status") != "ran":
        return f"{step} was {row.get('status')} after {float(row.get('stopped_after_s') or 0) / 60:.1f} min."
    return elapsed_sentence(step, float(row["wall_s"]), (row.get("machine") or {}).get("cores"))


def elapsed_sentence(step: str, seconds: float, cores: int | None = None) -> str:
    """How long `step` took, in minutes and seconds (and on how many cores, when known)."""
    on = f" on {cores} cores" if cores else ""
    return f"{step} took {float(seconds) / 60:.1f} min of wall time ({float(seconds):,.0f} s){on}."


# ---------------------------------------------------------------------------------------------
# "What this shows" and summaries
# ---------------------------------------------------------------------------------------------
def what_this_shows(text: str, ran: bool) -> str:
    """The paragraph as Markdown when its result ran, else "" (nothing is shown for a result absent)."""
    return f"**What this shows.** {text.strip()}" if ran and text.strip() else ""


def show_markdown(text: str) -> None:
    """Display `text` as Markdown in a notebook; nothing for an empty text."""
    if text:
        display(Markdown(text))


def metrics_summary(metrics: Mapping[str, Any], keys: Sequence[str], digits: int = 3) -> str:
    """A short ``name: value`` summary of chosen metrics (floats rounded, also inside lists and dicts), one
    line per key.

    Raises:
        DataError: a key that `metrics` does not hold (named, with the keys it has).
    """
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise DataError(None, f"metrics have no {missing}", f"choose among {sorted(metrics)}")
    lines = []
    for key in keys:
        value = metrics[key]
        if isinstance(value, float):
            value = round(value, digits)
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {round(v, digits) if isinstance(v, float) else v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = "[" + ", ".join(str(round(v, digits) if isinstance(v, float) else v) for v in value) + "]"
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The README's "How to read them" paragraph
# ---------------------------------------------------------------------------------------------
def answer_ladder_sentences(answer_long: pd.DataFrame, floor_kind: str = "teaching") -> list[str]:
    """Table A in sentences: each paper rung's change in overall accuracy, the best row against the
    frozen-features floor and chance, and each ablation row against chance.

    Args:
        answer_long: `html_report.answer_ladder`'s long form (rung, kind, category, accuracy, ci_low, ci_high).
    """
    overall = answer_long[answer_long["category"] == "overall"].dropna(subset=["accuracy"])
    if overall.empty:
        return []
    rungs = overall[overall["kind"] == "rung"]
    out = []
    if len(rungs) > 1:
        steps = [f"{b['rung']} {float(b['accuracy']) - float(a['accuracy']):+.3f}"
                 for (_, a), (_, b) in zip(rungs.iloc[:-1].iterrows(), rungs.iloc[1:].iterrows())]
        out.append(f"Each rung of the Answer ladder changes overall test accuracy by: {'; '.join(steps)} "
                   f"(from {rungs.iloc[0]['rung']} at {float(rungs.iloc[0]['accuracy']):.3f}).")
    scored = overall[overall["kind"] != floor_kind]
    best = scored.loc[pd.to_numeric(scored["accuracy"]).idxmax()]
    floor = overall[overall["kind"] == floor_kind]
    if len(floor):
        out.append(floor_claim(f"The best row, {best['rung']},", best["accuracy"], best["ci_low"], best["ci_high"],
                               float(floor["accuracy"].iloc[0]), "frozen-features floor"))
    out.append(floor_claim(f"Against chance, {best['rung']}", best["accuracy"], best["ci_low"], best["ci_high"], 0.5))
    for _, r in overall[overall["kind"] == "ablation"].iterrows():
        out.append(floor_claim(f"The ablation {r['rung']}", r["accuracy"], r["ci_low"], r["ci_high"], 0.5))
    return out


def grpo_sentences(metrics03: Mapping[str, Any] | None, counts: pd.DataFrame | None = None) -> list[str]:
    """Each GRPO run's answers (where they came from, first) and its own accuracy against chance (notebook
    03's ``grpo.own_accuracy``); a run that answers one letter throughout gets no claim against chance.
    Nothing when no GRPO ran."""
    systems = grpo_systems(metrics03)
    if not systems:
        return []
    grpo = (metrics03 or {}).get("grpo") or {}
    own = {r["system"]: r for r in grpo.get("own_accuracy") or []}
    by = counts_by_row(counts) if counts is not None and len(counts) else {}
    out = []
    for system in systems:
        r = own.get(system)
        row = by.get((system, grpo.get("prompt_stage")))
        if r is not None and row is not None and constant_letter(row):
            out.append(answer_count_sentence(system, row, r.get("accuracy"), row.get("truth_share")))
        elif r is not None:
            text = floor_claim(f"{system}'s own accuracy", r["accuracy"], r.get("ci_low"), r.get("ci_high"), 0.5)
            out.append((answer_count_sentence(system, row) + " " if row is not None else "") + text)
    return out


def reading_paragraph(answer_long: pd.DataFrame, thinking_scores: pd.DataFrame, params03: Mapping[str, Any],
                      metrics03: Mapping[str, Any] | None, counts: pd.DataFrame | None, profile: str,
                      n_test: int | None = None) -> str:
    """The README's "How to read them" paragraph, every number from the run's tables and records.

    Args:
        answer_long: Table A in long form; thinking_scores: notebook 05's ``ladder_scores.csv``;
        params03 / metrics03: step 03's ``params.yaml`` / ``metrics.json``; counts: `ladder_answer_counts`;
        profile: the run's profile; n_test: test pairs behind the Answer ladder's overall accuracy.
    """
    parts = [f"How to read them (written by notebook 06 from the `{profile}` run's records):"]
    parts += answer_ladder_sentences(answer_long)
    if params03:
        parts.append(thinking_run_sentence(params03, metrics03))
    for metric in ("rouge_l", "bleu4"):
        sentence = text_floor_sentence(thinking_scores, metric) if len(thinking_scores) else ""
        if sentence:
            parts.append(sentence)
    final = (metrics03 or {}).get("final_system")
    if final and len(thinking_scores):
        system, _, stage = final.rpartition("_")
        hit = thinking_scores[(thinking_scores["system"] == system) & (thinking_scores["stage"] == stage)]
        parts += ladder_accuracy_sentences(hit, counts, (metrics03 or {}).get("s4_answer_source") or "")
    parts += grpo_sentences(metrics03, counts)
    if n_test:
        parts.append(f"With {n_test} test pairs, one pair moves an accuracy by {1 / n_test:.3f}.")
    return " ".join(parts)


def write_between_markers(path: str | Path, start: str, end: str, body: str) -> Path:
    """Replace what lies between the `start` and `end` marker lines of a text file with `body`.

    Raises:
        DataError: a marker is missing (names the file and both markers).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise DataError(path, f"the markers {start!r} and {end!r} are missing or out of order",
                        "put both marker lines, in that order, around the section notebook 06 writes")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return storage.write_text(path, f"{head}{start}\n{body.strip()}\n{end}{tail}")
