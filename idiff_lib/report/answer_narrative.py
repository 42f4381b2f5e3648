"""Notebook 02's sentences, computed from what the step ran: whether the pretext task ran
(`pretext_sentence`), what the heads' regularisation search found (`regularisation_sentences`), each
rung's change with its intervals and, only for a rung that did not improve, why it may not have
(`no_gain_sentences`, `drop_reasons`), what pretrained features are worth (`pretraining_sentences`)
and the worked pair's verdict (`worked_answer_sentence`). The rules are those of `narrative`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from idiff_lib.report import narrative

CHANCE_LOSS = math.log(2)  # the binary cross-entropy of answering p = 0.5
NO_PRETRAINING = " (no pretraining)"  # how notebook 02 names a rung retrained from random weights
# Why a rung may score no better than the one before it, shown only under a rung that did not improve.
# ``{person}``, ``{scene}`` and ``{train}`` are the train split's pairs per category.
RUNG_DROP_REASONS: dict[str, str] = {
    "specialists": "a specialist trains on its category's pairs only ({person} person and {scene} scene of the "
                   "{train} train pairs), so the smaller category's specialist has few examples",
    "ensemble": "an ensemble is pulled down by a weak member, and its weights are fitted on the small val split",
    "evidence": "the defect-evidence heads learn which defect each side shows, while the labels weigh trade-offs "
                "(a sharper but noisier side) by the generator's own penalties",
}


def pretext_sentence(method: str, pretext_steps: int, pretrained: bool, ran: bool) -> str:
    """Whether the degradation pretext task ran in this step, and what the backbones start from."""
    start = "ImageNet weights" if pretrained else "random weights"
    if ran:
        return (f"The pretext task ran {pretext_steps} steps per backbone (summary above): a backbone that cannot name "
                f"the defect on its own crops starts the pair task no better than a random one.")
    if method != "finetune":
        return f"No pretext task ran: method = {method!r} reads frozen features, which start from {start}."
    if not pretext_steps:
        return f"No pretext task ran (pretext_steps = 0): the backbones start from {start}."
    return f"No pretext task ran: the backbones start from {start}."


def regularisation_sentences(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """What the heads' search over the regularisation strength C found on val: how many heads reach a
    val log-loss below chance (ln 2) at their chosen C, the best one, and how many get worse with more
    freedom (the val loss at the largest C above the chosen C's)."""
    chosen = {}
    worse = 0
    for member, hist in histories.items():
        for head in dict.fromkeys(h.get("head", "all") for h in hist):
            pts = sorted((float(h["C"]), float(h["val_loss"])) for h in hist if h.get("head", "all") == head and "C" in h)
            if not pts:
                continue
            name = member if head == "all" else f"{member} / {head}"
            chosen[name] = min(pts, key=lambda cl: cl[1])
            worse += pts[-1][1] > chosen[name][1]
    if not chosen:
        return []
    below = [n for n, (_, loss) in chosen.items() if loss < CHANCE_LOSS]
    best = min(chosen, key=lambda n: chosen[n][1])
    return [f"{len(below)} of {len(chosen)} heads reach a val log-loss below chance (ln 2 = {CHANCE_LOSS:.3f}) at "
            f"their chosen C; the best, {best}, reaches {chosen[best][1]:.3f} at C = {chosen[best][0]:g}.",
            f"{worse} of {len(chosen)} heads do worse on val at the largest C than at their chosen one: more freedom "
            f"fits the training pairs rather than the quality difference."]


def _interval(r: pd.Series) -> str:
    return f"[{float(r['overall_lo']):.3f}, {float(r['overall_hi']):.3f}]"


def _overlap(a: pd.Series, b: pd.Series) -> bool:
    return float(a["overall_lo"]) <= float(b["overall_hi"]) and float(b["overall_lo"]) <= float(a["overall_hi"])


def _rungs(wide: pd.DataFrame) -> pd.DataFrame:
    rows = wide.dropna(subset=["overall_acc"])
    return rows[rows["kind"] == "rung"] if "kind" in rows else rows


def no_gain_sentences(wide: pd.DataFrame, n_test: int | None = None) -> list[str]:
    """One sentence per paper rung that scores no better than the rung before it: the change in test
    pairs and the two 95% intervals, and whether they overlap (then this run does not show the change
    to be real). `narrative.answer_ladder_sentences` lists every rung's change.

    Args:
        wide: notebook 02's ladder (``row``, ``kind``, ``overall_acc`` / ``_lo`` / ``_hi``[, ``overall_n``]).
        n_test: test pairs behind the overall accuracy (``overall_n`` when None).
    """
    rungs = _rungs(wide)
    out = []
    for a, b in zip(rungs.iloc[:-1].to_dict("records"), rungs.iloc[1:].to_dict("records")):
        delta = float(b["overall_acc"]) - float(a["overall_acc"])
        if delta > 0:
            continue
        n = n_test or b.get("overall_n")
        moved = f" ({abs(round(delta * float(n)))} of {int(n)} test pairs)" if narrative.is_finite(n) else ""
        what = "does not improve on" if delta == 0 else f"scores {abs(delta):.3f} below"
        a, b = pd.Series(a), pd.Series(b)
        tail = "the intervals overlap, so this run does not show a real difference" if _overlap(a, b) \
            else "the intervals do not overlap"
        out.append(f"{b['row']} {what} {a['row']}{moved}: {_interval(b)} against {_interval(a)}; {tail}.")
    return out


def drop_reasons(wide: pd.DataFrame, categories: Sequence[str]) -> list[str]:
    """For each rung of `RUNG_DROP_REASONS` that scores no better than the rung before it, the reason
    it may not, filled with the train split's counts (`categories`: one per train pair)."""
    rungs = _rungs(wide)
    counts = {"person": list(categories).count("person"), "scene": list(categories).count("scene"),
              "train": len(categories)}
    out = []
    for (_, a), (_, b) in zip(rungs.iloc[:-1].iterrows(), rungs.iloc[1:].iterrows()):
        if float(b["overall_acc"]) <= float(a["overall_acc"]) and b["row"] in RUNG_DROP_REASONS:
            out.append(f"Why {b['row']} may not improve: {RUNG_DROP_REASONS[b['row']].format(**counts)}.")
    return out


def pretraining_sentences(wide: pd.DataFrame) -> list[str]:
    """Each rung retrained from random weights (``<rung> (no pretraining)``) against the same rung
    with pretrained weights: the difference and whether the two intervals overlap."""
    rows = wide.dropna(subset=["overall_acc"]).set_index("row", drop=False)
    out = []
    for name in [r for r in rows.index if str(r).endswith(NO_PRETRAINING)]:
        base = name[: -len(NO_PRETRAINING)]
        if base not in rows.index:
            continue
        a, b = rows.loc[base], rows.loc[name]
        delta = float(a["overall_acc"]) - float(b["overall_acc"])
        overlap = "overlap" if _overlap(a, b) else "do not overlap"
        out.append(f"{base} scores {float(a['overall_acc']):.3f} {_interval(a)} with pretrained weights and "
                   f"{float(b['overall_acc']):.3f} {_interval(b)} from random ones: pretraining is worth {delta:+.3f} "
                   f"here, and the intervals {overlap}.")
    return out


def worked_answer_sentence(probs: pd.DataFrame, expert: str | None, pair_id: str = "the worked pair") -> str:
    """The ensemble's verdict on the worked pair: its ``p_left`` and logit, the side it picks against the
    expert's, and how many members pick each side.

    Args:
        probs: `answer.analysis.worked_pair_probabilities`' table (``model``, ``p_left``; a row "ensemble").
        expert: the pair's reference answer.
    """
    table = probs.set_index("model")
    if "ensemble" not in table.index:
        return f"No ensemble probability for {pair_id}."
    p = float(table.loc["ensemble", "p_left"])
    letter = "A" if p > 0.5 else "B" if p < 0.5 else "neither side"
    logit = math.log(p / (1 - p)) if 0 < p < 1 else math.copysign(math.inf, p - 0.5)
    members = table.drop(index="ensemble")["p_left"].astype(float).round(3)  # as the table shows them
    verdict = ("right" if letter == expert else "wrong") if expert in ("A", "B") else "unjudged (no reference answer)"
    even = int((members == 0.5).sum())
    return (f"{pair_id}: the ensemble gives p_left = {p:.3f} (logit {logit:+.2f}), so it answers {letter}; the expert "
            f"answers {expert}, so it is {verdict} here. Of {len(members)} members, {int((members > 0.5).sum())} pick A "
            f"and {int((members < 0.5).sum())} pick B" + (f"; {even} sit at 0.500 (no side)." if even else "."))
