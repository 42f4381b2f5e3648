"""The template-filling rationale writer: feature cues + answer -> expert template lines, no network.

It is the Thinking Model's strong baseline and fallback, and the teaching example of what the
"expert templates" of iDiff's stage S1 mean (NTIRE 2026 RAIM challenge, Track 1 winner): each
line of the content's template (`Vocabulary`) is filled with a comparison phrase for the
image the evidence favours, and a summary line states the verdict. It follows the same stage
ladder as the trained model:

- **S0**: no template, no evidence: one generic line; the answer is the prior (majority) letter;
- **S1**: the content-specific template; without evidence each line says the images are comparable;
- **S2**: each cue line (``Region Attribute: ... A vs B ...``) gives a verdict; lines whose
  attribute a cue covers take its winner, and the majority of cue verdicts is the answer;
- **S3 / S4** with the Answer Model's aspect evidence in the prompt: **the template filled from the
  evidence** (`evidence.evidence_rationale`): one line per evidence line, in its order, with its
  side and cause; the answer is the evidence's confidence-weighted vote (S3) or the Answer Model's
  (S4). This is the fair floor of a language model that sees the same lines. Without evidence
  (``unavailable``) S3 reads the cue lines as S2 does, and S4's lines without a cue favour the answer.

Cue lines are read with `idiff_lib.scoring.verdicts.read_verdict`.
"""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Mapping, Sequence

from idiff_lib.core.errors import ParameterError
from idiff_lib.core.ontology import (OTHER_ANSWER, REFERENCE_ATTRIBUTES, REFERENCE_PERSON_REGIONS,
                                     REFERENCE_SCENE_REGIONS, SIDE_NAMES, SUMMARY_HEADING, TEMPLATE_ATTRIBUTE_WORDS,
                                     TEMPLATE_CUE_KEYWORDS)
from idiff_lib.core.vocabulary import Comparison, Vocabulary, write_rationale
from idiff_lib.data import pairs
from idiff_lib.scoring.verdicts import read_verdict
from idiff_lib.thinking.prompting import prompts as prompts_mod  # alias: 'prompts' names built prompts in this module
from idiff_lib.thinking.prompting.evidence import evidence_answer, evidence_rationale, parse_evidence

# Comparison phrases per template attribute word (`TEMPLATE_ATTRIBUTE_WORDS`, same order): (what the
# better image shows, what the worse image shows).
BASELINE_PHRASES: dict[str, tuple[str, str]] = {
    "Texture": ("preserves finer, more natural texture", "shows smoothed or smeared texture"),
    "Sharpness": ("renders crisper, well-defined detail", "appears softer with weaker detail"),
    "Noise": ("appears cleaner with less noise", "exhibits visible noise"),
    "Artifacts": ("is free of visible artifacts", "shows halos or compression artifacts"),
    "Realism": ("looks more natural and realistic", "looks more processed and less natural"),
    "Color": ("keeps more accurate, balanced colour", "shows a slight colour shift"),
    "Exposure": ("keeps better balanced exposure", "shows a slight exposure shift"),
    "Detail": ("retains more fine detail", "loses fine detail"),
    "Quality": ("has the better overall quality", "has the weaker overall quality"),
}


def _verdict(text: str) -> str | None:
    verdict, _ = read_verdict(text)
    return verdict if verdict in ("A", "B") else None


def cue_verdicts(cues: str) -> list[tuple[str | None, str]]:
    """(attribute or None, "A"/"B") for every cue line that favours one image."""
    out = []
    for line in (cues or "").splitlines():
        verdict = _verdict(line)
        if verdict is None:
            continue
        low = line.lower()
        attribute = next((a for a in TEMPLATE_ATTRIBUTE_WORDS if a.lower() in low
                          or any(k in low for k in TEMPLATE_CUE_KEYWORDS.get(a, ()))), None)
        out.append((attribute, verdict))
    return out


def _line(heading: str, winner: str | None) -> str:
    attribute = heading.split()[-1]
    good, bad = BASELINE_PHRASES.get(attribute, BASELINE_PHRASES["Quality"])
    if winner is None:
        return f"{heading}: Both images show comparable {attribute.lower()} with no clear difference."
    loser = OTHER_ANSWER[winner]
    return (f"{heading}: Image {winner} ({SIDE_NAMES[winner]}) {good}, "
            f"while Image {loser} ({SIDE_NAMES[loser]}) {bad}.")


def write_template(
    stage: str,
    category: str | None,
    *,
    cv_cues: str = "",
    iqa_cues: str = "",
    evidence: str = "",
    answer: str | None = None,
    vocabulary: Vocabulary = prompts_mod.FALLBACK_VOCABULARY,
    prior_answer: str = "A",
    seed: int = 0,
    mined_phrasing: bool = True,
) -> tuple[str, dict]:
    """One completion at `stage` (see the module docstring) and how its answer was chosen.

    With `mined_phrasing`, lines are phrased by `idiff_lib.core.vocabulary.write_rationale` (the RAIM-mined
    sentence shapes, randomised by `seed`) where its regions and attributes cover the template;
    else by `BASELINE_PHRASES`.

    Returns:
        (completion, {"raw_format_ok": True, "answer_source": "prior" | "cues" | "evidence" | "answer_model"}).
    """
    level = prompts_mod.STAGES.index(prompts_mod.check_stage(stage))
    if level == 0:
        line = ("Global Quality: Image A (Left) and Image B (Right) differ in texture, noise and sharpness; "
                f"Image {prior_answer} ({SIDE_NAMES[prior_answer]}) looks slightly better overall.")
        return pairs.format_completion(line, prior_answer), {"raw_format_ok": True, "answer_source": "prior"}
    aspects = parse_evidence(evidence) if level >= 3 else []
    if aspects:
        final, source = (answer, "answer_model") if level >= 4 and answer in pairs.ANSWERS \
            else (evidence_answer(aspects, prior_answer), "evidence")
        filled = evidence_rationale(category, aspects, final, seed)
        if filled is not None:
            return filled, {"raw_format_ok": True, "answer_source": source}
    evidence = (cue_verdicts(cv_cues) if level >= 2 else []) + (cue_verdicts(iqa_cues) if level >= 3 else [])
    votes = Counter(v for _, v in evidence)
    if level >= 4 and answer in pairs.ANSWERS:
        final, source = answer, "answer_model"
    elif votes and votes["A"] != votes["B"]:
        final, source = ("A" if votes["A"] > votes["B"] else "B"), "cues"
    else:
        final, source = prior_answer, "prior"
    by_attribute: dict[str, Counter] = {}
    for attribute, verdict in evidence:
        if attribute:
            by_attribute.setdefault(attribute, Counter())[verdict] += 1
    winners = []
    for heading in vocabulary.for_category(category):
        counts = by_attribute.get(heading.split()[-1])
        if counts and counts["A"] != counts["B"]:
            winner = "A" if counts["A"] > counts["B"] else "B"
        else:
            winner = final if level >= 4 or (source == "cues" and not by_attribute) else None
        winners.append((heading, winner))
    info = {"raw_format_ok": True, "answer_source": source}
    mined = _with_mined_templates(category, winners, final, seed) if mined_phrasing else None
    if mined is not None:
        return mined, info
    lines = [_line(heading, winner) for heading, winner in winners]
    lines.append(f"{SUMMARY_HEADING}: Image {final} ({SIDE_NAMES[final]}) is better overall, with the "
                 f"stronger rendering of the regions above.")
    return pairs.format_completion(lines, final), info


def _with_mined_templates(category: str | None, winners: list[tuple[str, str | None]], answer: str,
                          seed: int) -> str | None:
    """The completion written by `idiff_lib.core.vocabulary.write_rationale` (the RAIM-mined phrasing), or None.

    Headings outside that module's regions/attributes are left out; when no line favours the
    answer, the first one does, weakly (a rationale needs a reason). None when no heading fits or
    the module refuses the input, so the caller falls back to this module's phrase bank.
    """
    regions = REFERENCE_PERSON_REGIONS if category == "person" else REFERENCE_SCENE_REGIONS
    comparisons = []
    for heading, winner in winners:
        region, attribute = " ".join(heading.split()[:-1]), heading.split()[-1]
        if region in regions and attribute in REFERENCE_ATTRIBUTES:
            comparisons.append(Comparison(region, attribute, winner or "similar", 1.0 if winner else 0.0))
    if not comparisons or category not in ("person", "scene"):
        return None
    if not any(c.verdict == answer for c in comparisons):
        first = comparisons[0]
        comparisons[0] = Comparison(first.region, first.attribute, answer, 0.1)
    try:
        return write_rationale(category, comparisons, answer, rng=seed,
                                         min_lines=len(comparisons) + 1, max_lines=len(comparisons) + 1)
    except ParameterError:  # the module refused this input: fall back to the phrase bank
        return None


def writer(vocabulary: Vocabulary, stage: str, prior_answer: str = "A",
           cues: Mapping[str, Mapping[str, str]] | None = None):
    """A writer for `idiff_lib.thinking.decode.generation.write_rationales` that fills templates instead of running a model."""
    cues = cues or {}

    def run(part: Sequence[pairs.Pair], prompts: Mapping[str, prompts_mod.Prompt]) -> list[tuple[str, dict]]:
        out = []
        for pair in part:
            c = cues.get(pair.id, {})
            out.append(write_template(stage, pair.category, cv_cues=str(c.get("cv", "")),
                                      iqa_cues=str(c.get("iqa", "")), evidence=str(c.get("evidence", "")),
                                      answer=prompts[pair.id].answer,
                                      vocabulary=vocabulary, prior_answer=prior_answer,
                                      seed=zlib.crc32(pair.id.encode())))
        return out

    return run
