"""Prompts for the Thinking Model, one per stage of iDiff's progressive ladder S0 -> S4.

iDiff (NTIRE 2026 RAIM challenge, Track 1 winner) improves the rationale writer step by step:

- **S0**: the challenge baseline's system and user prompts (`pairs.SYSTEM_PROMPT`, `pairs.USER_PROMPT`);
- **S1**: + expert-style templates, specific to the content: person photos cover face/skin, hair
  and clothing; scene photos cover background, buildings, vegetation and edges. 4-7
  ``Region Attribute`` lines plus one global summary line, mined from real expert rationales;
- **S2**: + hand-crafted computer-vision feature cues (text from ``features.render_features(row, style="cv")``);
- **S3**: + the learned sources: IQA-model feature cues (``style="iqa"``) and the Answer Model's
  per-aspect evidence (`idiff_lib.thinking.prompting.evidence`: which side each aspect head favours, with its
  confidence, strongest first, in the references' heading names);
- **S4**: + answer-aware: the Answer Model's verdict is in the prompt, the loss covers only the
  rationale tokens and the final ``<answer>`` is the Answer Model's.

The stage is one parameter of `build_prompt`, so the ablation is one loop. Cue texts are inputs,
so prompts do not depend on the features module being present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.core.ontology import CATEGORIES, SIDE_NAMES, STAGES, SUMMARY_HEADING
from idiff_lib.core.vocabulary import FALLBACK_HEADINGS, Vocabulary, mine_vocabulary, raim_vocabulary
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.data.raim_rationales import mine_raim_folder
from idiff_lib.thinking.prompting.evidence import EVIDENCE_TITLE, UNAVAILABLE

STAGE_LABELS = {
    "S0": "baseline prompt",
    "S1": "+ expert templates",
    "S2": "+ CV cues",
    "S3": "+ IQA cues & aspect evidence",
    "S4": "+ answer-aware",
}
# The template headings of a prompt when no vocabulary is given (`references.FALLBACK_HEADINGS`).
FALLBACK_VOCABULARY = Vocabulary(source="fallback", templates=dict(FALLBACK_HEADINGS))


def load_vocabulary(extra_pairs: Iterable[pairs_mod.Pair] = (), raim_dir: str | Path | None = None) -> Vocabulary:
    """The template vocabulary: the public RAIM rationales' counts plus those of `extra_pairs`' rationales.

    Args:
        extra_pairs: labelled pairs (the train split) whose headings join the counts.
        raim_dir: a RAIM-PIQA folder to mine the public rationales from afresh; None = the counts
            committed in ``idiff_lib/configs/raim_vocabulary.json`` (the same numbers), so nothing
            outside the repository is read.
    """
    vocabulary = mine_raim_folder(raim_dir) if raim_dir else raim_vocabulary()
    extra = [(p.category, p.thinking) for p in extra_pairs if p.thinking]
    if extra:
        vocabulary = vocabulary.plus(mine_vocabulary(extra, f"{len(extra)} labelled pairs"))
    return vocabulary


@dataclass(frozen=True)
class Prompt:
    """A system and a user prompt for one pair at one stage.

    ``user`` starts with the two ``<image>`` placeholders (c0, then c1), as in the challenge's
    JSONL and ms-swift; `chat_messages` turns them into chat-template image items.
    """

    stage: str
    system: str
    user: str
    answer: str | None = None

    def records(self) -> list[dict[str, str]]:
        """The ``messages`` of a RAIM-PIQA / ms-swift record (system, user)."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    def chat_messages(self) -> list[dict]:
        """Messages for ``processor.apply_chat_template``: every ``<image>`` becomes an image item."""
        content: list[dict] = []
        for i, piece in enumerate(self.user.split("<image>")):
            if i > 0:
                content.append({"type": "image"})
            if piece.strip():
                content.append({"type": "text", "text": piece.lstrip("\n")})
        return [{"role": "system", "content": [{"type": "text", "text": self.system}]},
                {"role": "user", "content": content}]


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ParameterError(f"unknown stage {stage!r}.{suggest(stage, STAGES)} Choose one of {', '.join(STAGES)}.")
    return stage


def template_block(category: str | None, vocabulary: Vocabulary = FALLBACK_VOCABULARY) -> str:
    """The S1 expert template: the headings to write for this content, then the summary line."""
    kind = {c: f"a {c} photo" for c in CATEGORIES}.get(category or "", "a photo")
    lines = [
        f"Expert template for {kind}: write one line per region and attribute, as "
        "\"Region Attribute: comparison of Image A (Left) and Image B (Right)\", covering:",
    ]
    lines += [f"{h}: ..." for h in vocabulary.for_category(category)]
    lines.append(f"{SUMMARY_HEADING}: which image is better overall and why.")
    return "\n".join(lines)


def _cue_block(title: str, cues: str, sources: str = "") -> str:
    """A cue heading, the line naming where the cues come from (when known), then the cue lines."""
    body = cues.strip() or "(not measured for this pair)"
    return f"{title}:\n" + (f"{sources}\n" if sources else "") + body


def answer_block(answer: str, p_answer: float | None = None) -> str:
    side = SIDE_NAMES[answer]
    conf = f" (confidence {p_answer:.2f})" if p_answer is not None else ""
    return (f"Answer Model verdict: Image {answer} ({side}) is better{conf}. Explain this verdict in the "
            f"rationale; the conclusion will be <answer>{answer}</answer>.")


def build_prompt(
    stage: str,
    category: str | None = None,
    *,
    cv_cues: str = "",
    iqa_cues: str = "",
    iqa_sources: str = "",
    evidence: str = "",
    answer: str | None = None,
    p_answer: float | None = None,
    vocabulary: Vocabulary = FALLBACK_VOCABULARY,
) -> Prompt:
    """The prompt of `stage` for one pair. Stages are cumulative: S3 holds S1's template and S2's cues.

    Args:
        stage: one of `STAGES`.
        category: "person", "scene" or None (a generic template).
        cv_cues: hand-crafted CV cue text (S2 and later).
        iqa_cues: IQA-model cue text (S3 and later).
        iqa_sources: which IQA metrics the cues come from and which could not run
            (`side_inputs.iqa_sources_text`, e.g. "PIQE (LIQE, QALIGN: no weights)"); S3 and later show
            it as a line "IQA cues from: ..." under the heading. "" = no such line.
        evidence: the Answer Model's per-aspect evidence block (S3 and later;
            `idiff_lib.thinking.prompting.evidence.evidence_block`, "unavailable (...)" when there is none).
        answer: the Answer Model's "A"/"B" (required from S4).
        p_answer: the Answer Model's probability of `answer` (optional, shown in S4).
        vocabulary: the mined template headings (`load_vocabulary`).

    Raises:
        ParameterError: an unknown stage, or S4 without an answer.
    """
    level = STAGES.index(check_stage(stage))
    if level == 0:
        return Prompt(stage, pairs_mod.SYSTEM_PROMPT, pairs_mod.USER_PROMPT)
    blocks = [pairs_mod.USER_PROMPT, template_block(category, vocabulary)]
    if level >= 2:
        blocks.append(_cue_block("Hand-crafted CV cues (A vs B)", cv_cues))
    if level >= 3:
        blocks.append(_cue_block("IQA-model cues (A vs B)", iqa_cues,
                                 f"IQA cues from: {iqa_sources}" if iqa_sources else ""))
        blocks.append(_cue_block(EVIDENCE_TITLE, evidence or f"{UNAVAILABLE} (no evidence given for this pair)"))
    if level >= 4:
        if answer not in pairs_mod.ANSWERS:
            raise ParameterError(f"stage S4 needs the Answer Model's verdict 'A' or 'B', got {answer!r}. fix: pass "
                                 "answer= (from 02_train_answer_model/preds_test.jsonl or the --answers file)")
        blocks.append(answer_block(answer, p_answer))
    return Prompt(stage, pairs_mod.SYSTEM_PROMPT, "\n\n".join(blocks), answer if level >= 4 else None)


def build_prompts(
    pairs: Iterable[pairs_mod.Pair],
    stage: str,
    *,
    cues: Mapping[str, Mapping[str, str]] | None = None,
    answers: Mapping[str, Mapping[str, object]] | None = None,
    vocabulary: Vocabulary = FALLBACK_VOCABULARY,
) -> dict[str, Prompt]:
    """Prompts for many pairs: `cues` maps id -> {"cv", "iqa"[, "iqa_sources", "evidence"]}; `answers` maps id ->
    {"answer", "p_answer"}.

    Raises:
        ParameterError: S4 for a pair without an answer (names the pair).
    """
    cues, answers = cues or {}, answers or {}
    out = {}
    for pair in pairs:
        c = cues.get(pair.id, {})
        a = answers.get(pair.id, {})
        if stage == "S4" and a.get("answer") not in pairs_mod.ANSWERS:
            raise ParameterError(f"stage S4: no Answer Model verdict for pair {pair.id!r}. fix: give an answers file "
                                 "with a row {\"id\", \"answer\"} for every pair")
        p = a.get("p_answer")
        out[pair.id] = build_prompt(stage, pair.category, cv_cues=str(c.get("cv", "")), iqa_cues=str(c.get("iqa", "")),
                                    iqa_sources=str(c.get("iqa_sources", "")), evidence=str(c.get("evidence", "")),
                                    answer=a.get("answer"),
                                    p_answer=float(p) if p is not None else None,
                                    vocabulary=vocabulary)
    return out
