"""Per-aspect evidence for the Thinking Model: the Answer Model's aspect heads, as prompt lines and as a template.

iDiff's Thinking Model is *given* multi-source evidence and supervised to be consistent with the
answer. The evidence a rationale needs is which side is better on each aspect (``Region
Attribute``), and the cache-first Answer Model already predicts it (`idiff_lib.answer.train.aspects`: one
head per aspect, p(Image A better), and one ridge head per defect kind, the A - B severity).

This module turns a pair's head outputs into a short ranked list of `AspectVerdict`s, writes them
as the prompt's evidence block (S3 and S4, `evidence_block`), reads that block back
(`parse_evidence`), and fills the house template from it (`evidence_rationale`): the "template
filled from the evidence" row of Table B, the fair floor for the language model, which sees the
same lines.

- **Which aspects**: those of the pair's content (person: Face, Hair, Clothing, Skin, Global;
  scene: Global, Background, Building, Vegetation, Edges), ranked by the verdict head's confidence
  (``2|p - 0.5|``) plus `presence_weight` x the aspect's presence: the presence head's probability
  that the pair differs on it at all (`idiff_lib.answer.model.heads.PresenceHead`), or, for head rows
  without presence heads, the predicted severity gaps of the defect kinds that touch the attribute
  (`idiff_lib.data.degrade.DEFECTS`). Aspects whose presence is below `min_presence` are left
  out (the strongest one is always kept), and the first `lines` are kept. A line on an aspect the
  pair does not differ on says nothing true, and a missed aspect is a gap in the rationale, so the
  presence heads decide what is discussed and the verdict heads what is said about it.
- **The names and order** are the references': ``Global Sharpness``, strongest first, so the
  language model's job is to turn each line into the house's sentence.
- **The cause**: the defect kind with this attribute whose predicted severity is worst on the
  losing side (when the heads see one), as the references name it.
- **Training pairs** (`follow_reference`): the lines are the heads' verdicts on the aspects the
  pair's reference writes, in its order (aspects without a head left out), so the supervision teaches
  the one mapping the language model has to learn, evidence line -> the house's sentence. The
  verdicts stay the heads' own (where a head disagrees with the reference, the pair says so); test
  pairs get the ranked lines.
- **Missing evidence** (no aspect heads in the run): the block says ``unavailable`` and why; nothing
  is filled in.

The lines name sides as ``Image A (Left)``, so swapping a pair's sides
(`idiff_lib.thinking.train.encoding.swap_sides_text`) swaps its evidence too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from idiff_lib.core.ontology import (OTHER_ANSWER, REFERENCE_PERSON_REGIONS, REFERENCE_SCENE_REGIONS, SIDE_NAMES,
                                     SUMMARY_HEADING)
from idiff_lib.core.vocabulary import Comparison, Vocabulary, write_rationale
from idiff_lib.data.degrade import DEFECTS
from idiff_lib.scoring.meta_verdicts import mark_lines

EVIDENCE_TITLE = "Answer Model evidence per aspect (strongest first; p = the head's confidence)"
UNAVAILABLE = "unavailable"
_LINE_RE = re.compile(r"^(?P<region>[A-Z][a-z]+) (?P<attribute>[A-Z][a-z]+): Image (?P<winner>[AB]) \((?:Left|Right)\) "
                      r"better \(p (?P<p>[01]\.\d+)(?:; Image [AB] \((?:Left|Right)\) shows (?P<cause>[a-z ]+))?\)$")


@dataclass(frozen=True)
class AspectVerdict:
    """One evidence line: the better side on ``region attribute``, the head's confidence and the loser's defect."""

    region: str
    attribute: str
    winner: str
    confidence: float  # the head's probability of `winner` (0.5 .. 1)
    cause: str | None = None  # a defect kind (`DEFECTS`) seen on the losing side

    @property
    def heading(self) -> str:
        return f"{self.region} {self.attribute}"

    def line(self) -> str:
        loser = OTHER_ANSWER[self.winner]
        cause = f"; Image {loser} ({SIDE_NAMES[loser]}) shows {self.cause.replace('_', ' ')}" if self.cause else ""
        return f"{self.heading}: Image {self.winner} ({SIDE_NAMES[self.winner]}) better (p {self.confidence:.2f}{cause})"


def _regions(category: str | None) -> tuple[str, ...]:
    return REFERENCE_PERSON_REGIONS if category == "person" else REFERENCE_SCENE_REGIONS


def reference_headings(thinking: str) -> list[str]:
    """The ``Region Attribute`` headings of a reference rationale's lines, in order (the Overall line left out)."""
    out = []
    for line in (thinking or "").splitlines():
        heading = line.split(":", 1)[0].strip() if ":" in line else ""
        if heading and heading != SUMMARY_HEADING and heading not in out:
            out.append(heading)
    return out


def rank_aspects(category: str | None, heads: Mapping[str, object], *, lines: int,
                 presence_weight: float, min_presence: float = 0.0,
                 order: Sequence[str] | None = None) -> list[AspectVerdict]:
    """The pair's `lines` strongest aspect verdicts from its head outputs (see the module docstring).

    Args:
        heads: one row of `idiff_lib.answer.train.aspects.AspectModel.predict`: ``{"aspects": {name: p(A
            better)}, "presence": {name: p(differs)}, "defects": {kind: A - B severity}}``.
        min_presence: aspects whose presence probability is below this are left out (the first in the
            ranking is always kept); only rows with presence heads.
        order: headings to give instead of the ranking, in this order (those with a head; `lines`
            and `min_presence` do not apply): a training pair's reference headings.
    """
    presence = {str(k): float(v) for k, v in dict(heads.get("presence") or {}).items()}
    defects = {k: float(v) for k, v in dict(heads.get("defects") or {}).items() if k in DEFECTS}
    gap: dict[str, float] = {}
    for kind, value in defects.items():
        for i, attribute in enumerate(DEFECTS[kind].attributes):
            gap[attribute] = gap.get(attribute, 0.0) + abs(value) * (1.0 if i == 0 else 0.5)
    ranked = []
    for name, p in dict(heads.get("aspects") or {}).items():
        region, _, attribute = str(name).rpartition(" ")
        if region not in _regions(category):
            continue
        p = float(p)
        winner = "A" if p >= 0.5 else "B"
        loser_sign = -1.0 if winner == "A" else 1.0  # A - B severity: positive when A is worse
        seen = [(-loser_sign * defects[k], k) for k in defects if attribute in DEFECTS[k].attributes]
        seen = [(v, k) for v, k in seen if v > 0.05]
        cause = max(seen)[1] if seen else None
        present = presence.get(str(name), 1.0) if presence else None
        score = abs(p - 0.5) * 2 + presence_weight * (gap.get(attribute, 0.0) if present is None else present)
        kept = present is None or present >= min_presence
        ranked.append((score, kept, AspectVerdict(region, attribute, winner, round(max(p, 1 - p), 2), cause)))
    if order is not None:
        by_heading = {v.heading: v for _, _, v in ranked}
        return [by_heading[h] for h in order if h in by_heading]
    ranked.sort(key=lambda t: (-t[0], t[2].heading))
    chosen = [v for i, (_, kept, v) in enumerate(ranked) if kept or i == 0]
    return chosen[:lines]


def evidence_block(verdicts: Sequence[AspectVerdict] | None, unavailable_reason: str = "") -> str:
    """The prompt lines of one pair's evidence, or ``unavailable (<reason>)`` when there is none."""
    if verdicts is None:
        return f"{UNAVAILABLE} ({unavailable_reason or 'no aspect heads'})"
    return "\n".join(v.line() for v in verdicts) or f"{UNAVAILABLE} (no aspect of this content has a head)"


def parse_evidence(text: str) -> list[AspectVerdict]:
    """The `AspectVerdict`s of an evidence block (lines that do not match are skipped; ``unavailable`` gives [])."""
    out = []
    for raw in (text or "").splitlines():
        m = _LINE_RE.match(raw.strip())
        if m:
            cause = (m["cause"] or "").replace(" ", "_") or None
            out.append(AspectVerdict(m["region"], m["attribute"], m["winner"], float(m["p"]),
                                     cause if cause in DEFECTS else None))
    return out


def evidence_answer(verdicts: Sequence[AspectVerdict], prior: str = "A") -> str:
    """The side the evidence favours: the confidence-weighted vote of its lines (`prior` on a tie or none)."""
    score = sum((v.confidence - 0.5) * (1 if v.winner == "A" else -1) for v in verdicts)
    return prior if abs(score) < 1e-9 else ("A" if score > 0 else "B")


def evidence_rationale(category: str | None, verdicts: Sequence[AspectVerdict], answer: str, seed: int = 0,
                       vocabulary: Vocabulary | None = None) -> str | None:
    """The house template filled from the evidence: one line per verdict (the references' sentences,
    `write_rationale`), then the ``Global Overall`` line stating `answer`.

    When no line favours `answer`, a weak ``Global Texture`` line for it is added (a rationale needs a
    reason). None for a content the house template does not know (the caller falls back).
    """
    if category not in ("person", "scene"):
        return None
    comparisons = [Comparison(v.region, v.attribute, v.winner, round(v.confidence - 0.5, 3), v.cause)
                   for v in verdicts if v.region in _regions(category)]
    if not any(c.verdict == answer for c in comparisons):
        comparisons = [c for c in comparisons if (c.region, c.attribute) != ("Global", "Texture")]
        comparisons.append(Comparison("Global", "Texture", answer, 0.05))
    return write_rationale(category, comparisons, answer, rng=seed, vocabulary=vocabulary,
                                      min_lines=len(comparisons) + 1, max_lines=len(comparisons) + 1)


def pair_evidence(pairs: Iterable, heads: Mapping[str, Mapping] | None, *, lines: int, presence_weight: float,
                  min_presence: float = 0.0, unavailable_reason: str = "",
                  follow_reference: Iterable[str] = ()) -> dict[str, str]:
    """Pair id -> its evidence block: from `heads` (id -> `AspectModel.predict` row), ``unavailable`` for the rest.

    Args:
        follow_reference: ids of (training) pairs whose blocks give the heads' verdicts on their
            reference's aspects, in its order (`reference_headings`), instead of the ranking.
    """
    follow = set(follow_reference)
    out = {}
    for pair in pairs:
        row = (heads or {}).get(pair.id)
        order = reference_headings(pair.thinking) if pair.id in follow and getattr(pair, "thinking", "") else None
        verdicts = None if row is None else rank_aspects(pair.category, row, lines=lines, presence_weight=presence_weight,
                                                         min_presence=min_presence, order=order)
        reason = unavailable_reason or ("no aspect heads in this run" if heads is None else "no head output for this pair")
        out[pair.id] = evidence_block(verdicts, reason)
    return out


def evidence_agreement(rationales: Mapping[str, str | None], blocks: Mapping[str, str]) -> dict[str, float | int | None]:
    """How faithfully rationales say what their evidence says: of the lines on an aspect the pair's evidence
    block holds, the share whose verdict is the evidence line's side.

    The evidence is checked as the ground truth is (`idiff_lib.scoring.meta_verdicts.mark_lines`: the
    same line reader and verdict reader), with the evidence lines in place of the truth's comparisons.

    Args:
        rationales: pair id -> rationale (or completion).
        blocks: pair id -> its prompt's evidence block (`evidence_block`); pairs without one are left out.

    Returns:
        ``{"evidence_agreement", "n_lines_on_evidence"}`` (None when no line is on an evidence aspect).
    """
    judged = [mark.right for pid, text in rationales.items()
              for mark in mark_lines(text, [{"region": v.region, "attribute": v.attribute, "verdict": v.winner}
                                            for v in parse_evidence(blocks.get(pid, ""))])
              if mark.right is not None]
    return {"evidence_agreement": sum(judged) / len(judged) if judged else None, "n_lines_on_evidence": len(judged)}
