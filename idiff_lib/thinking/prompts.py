"""Prompts for the Thinking Model, one per stage of iDiff's progressive ladder S0 -> S4.

iDiff (NTIRE 2026 RAIM challenge, Track 1 winner) improves the rationale writer step by step:

- **S0**: the challenge baseline's system and user prompts (`pairs.SYSTEM_PROMPT`, `pairs.USER_PROMPT`);
- **S1**: + expert-style templates, specific to the content: person photos cover face/skin, hair
  and clothing; scene photos cover background, buildings, vegetation and edges. 4-7
  ``Region Attribute`` lines plus one global summary line, mined from real expert rationales;
- **S2**: + hand-crafted computer-vision feature cues (text from ``features.render_features(row, style="cv")``);
- **S3**: + IQA-model feature cues (``style="iqa"``);
- **S4**: + answer-aware: the Answer Model's verdict is in the prompt, the loss covers only the
  rationale tokens and the final ``<answer>`` is the Answer Model's.

The stage is one parameter of `build_prompt`, so the ablation is one loop. Cue texts are inputs,
so prompts do not depend on the features module being present.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from idiff_lib.data import pairs as pairs_mod
from idiff_lib.core.errors import ParameterError, suggest

STAGES = ("S0", "S1", "S2", "S3", "S4")
STAGE_LABELS = {
    "S0": "baseline prompt",
    "S1": "+ expert templates",
    "S2": "+ CV cues",
    "S3": "+ IQA cues",
    "S4": "+ answer-aware",
}
CATEGORIES = ("person", "scene")
SUMMARY_HEADING = "Global Overall"
MIN_LINES, MAX_LINES = 4, 7  # region x attribute lines, before the summary line

# The regions each category's template must cover, with the words that name them in real rationales.
REQUIRED_REGIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "person": {
        "Face": ("face", "skin", "facial"),
        "Hair": ("hair",),
        "Clothing": ("clothing", "clothes", "shirt", "fabric", "dress"),
    },
    "scene": {
        "Background": ("background", "sky"),
        "Building": ("building", "architecture", "wall", "window"),
        "Vegetation": ("vegetation", "leaf", "leaves", "tree", "grass", "greenery", "flower", "foliage"),
        "Edges": ("edge", "edges", "text", "outline", "contour"),
    },
}
ATTRIBUTES = ("Texture", "Sharpness", "Noise", "Artifacts", "Realism", "Color", "Exposure", "Detail", "Quality")
# Used when neither the public RAIM rationales nor a labelled split is at hand (most frequent
# headings of the public RAIM-PIQA rationales, per category, completed with the required regions).
FALLBACK_HEADINGS: dict[str, tuple[str, ...]] = {
    "person": ("Face Texture", "Face Sharpness", "Hair Texture", "Clothing Texture", "Global Sharpness", "Global Noise"),
    "scene": ("Background Texture", "Building Sharpness", "Vegetation Texture", "Edges Sharpness", "Global Sharpness",
              "Global Noise"),
    "generic": ("Global Sharpness", "Global Texture", "Global Noise", "Global Artifacts"),
}

_PAREN_RE = re.compile(r"\s*[\(\[][^)\]]*[\)\]]\s*")
_HEADING_RE = re.compile(r"^\s*([A-Z][A-Za-z ,/&\-\(\)\[\]]{1,60}?)\s*:\s*\S")


@dataclass(frozen=True)
class Vocabulary:
    """Template headings per category ("Region Attribute"), most frequent first.

    Attributes:
        headings: category -> ordered headings (4-7 of them, covering the required regions).
        counts: category -> how often each normalised heading was seen.
        source: where the headings came from (for the notebook's narrative).
    """

    headings: dict[str, tuple[str, ...]]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    source: str = "fallback"

    def for_category(self, category: str | None) -> tuple[str, ...]:
        return self.headings.get(category or "generic") or self.headings.get("generic") or FALLBACK_HEADINGS["generic"]


FALLBACK_VOCABULARY = Vocabulary(dict(FALLBACK_HEADINGS), {}, "fallback")


def normalise_heading(heading: str) -> str | None:
    """``"Building (Architecture) Sharpness"`` -> ``"Building Sharpness"``; None when it has no attribute.

    The attribute is the last word when it is one of `ATTRIBUTES`; the region is what precedes it,
    mapped to a required region's name when one of its words matches (``Leaf`` -> ``Vegetation``).
    """
    words = _PAREN_RE.sub(" ", heading).replace(",", " ").split()
    if len(words) < 2 or words[-1].capitalize() not in ATTRIBUTES:
        return None
    attribute = words[-1].capitalize()
    region_words = [w.lower() for w in words[:-1]]
    for regions in REQUIRED_REGIONS.values():
        for region, keys in regions.items():
            if any(w in keys for w in region_words):
                return f"{region} {attribute}"
    return f"{' '.join(w.capitalize() for w in words[:-1])} {attribute}"


def headings_of(thinking: str) -> list[str]:
    """The raw ``Region Attribute`` headings of a rationale's lines."""
    out = []
    for line in thinking.splitlines():
        m = _HEADING_RE.match(line)
        if m:
            out.append(m.group(1).strip())
    return out


def mine_vocabulary(texts: Iterable[tuple[str | None, str]], source: str = "mined") -> Vocabulary:
    """Build each category's template from (category, rationale) pairs.

    For each category, every required region gets its most frequent attribute (the fallback's
    when the region never occurs), then the most frequent other headings fill the template up to
    `MAX_LINES - 1`; the summary line is added by the prompt. At least `MIN_LINES` headings result.
    """
    counts: dict[str, Counter] = {c: Counter() for c in (*CATEGORIES, "generic")}
    for category, text in texts:
        for raw in headings_of(text):
            heading = normalise_heading(raw)
            if heading is not None:  # None: no attribute word, e.g. the "Global Overall" summary
                counts[category if category in CATEGORIES else "generic"][heading] += 1
    headings: dict[str, tuple[str, ...]] = {}
    for category in CATEGORIES:
        chosen: list[str] = []
        ranked = [h for h, _ in sorted(counts[category].items(), key=lambda kv: (-kv[1], kv[0]))]
        for region in REQUIRED_REGIONS[category]:
            mine = [h for h in ranked if h.split()[0] == region]
            fallback = [h for h in FALLBACK_HEADINGS[category] if h.split()[0] == region]
            chosen.append((mine or fallback)[0])
        for h in ranked + list(FALLBACK_HEADINGS[category]):
            if len(chosen) >= MAX_LINES - 1:
                break
            if h not in chosen and (len(chosen) < MIN_LINES or counts[category][h] >= 2):
                chosen.append(h)
        headings[category] = tuple(chosen)
    all_counts = counts["person"] + counts["scene"] + counts["generic"]
    generic = [h for h, _ in all_counts.most_common() if h.startswith("Global ")][: MAX_LINES - 1]
    headings["generic"] = tuple(generic) if len(generic) >= MIN_LINES else FALLBACK_HEADINGS["generic"]
    return Vocabulary(headings, {c: dict(v) for c, v in counts.items()}, source)


def load_vocabulary(extra_pairs: Iterable[pairs_mod.Pair] = (), use_raim: bool = True) -> Vocabulary:
    """The template vocabulary from the public RAIM rationales (read in place) and `extra_pairs`.

    Falls back to `FALLBACK_VOCABULARY` when neither has a labelled rationale.
    """
    from idiff_lib.core import paths

    texts: list[tuple[str | None, str]] = []
    sources = []
    folder = paths.raim_dir() if use_raim else None
    if folder is not None:
        raim = pairs_mod.read_pairs(Path(folder) / "train_sft_1536.jsonl", skip_bad=True)
        texts += [(p.category, p.thinking) for p in raim if p.thinking]
        sources.append(f"{len(raim)} public RAIM-PIQA rationales")
    extra = [(p.category, p.thinking) for p in extra_pairs if p.thinking]
    if extra:
        texts += extra
        sources.append(f"{len(extra)} labelled pairs")
    if not texts:
        return FALLBACK_VOCABULARY
    return mine_vocabulary(texts, " + ".join(sources))


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
    kind = {"person": "a person photo", "scene": "a scene photo"}.get(category or "", "a photo")
    lines = [
        f"Expert template for {kind}: write one line per region and attribute, as "
        "\"Region Attribute: comparison of Image A (Left) and Image B (Right)\", covering:",
    ]
    lines += [f"{h}: ..." for h in vocabulary.for_category(category)]
    lines.append(f"{SUMMARY_HEADING}: which image is better overall and why.")
    return "\n".join(lines)


def _cue_block(title: str, cues: str) -> str:
    body = cues.strip() or "(not measured for this pair)"
    return f"{title}:\n{body}"


def answer_block(answer: str, p_answer: float | None = None) -> str:
    side = "Left" if answer == "A" else "Right"
    conf = f" (confidence {p_answer:.2f})" if p_answer is not None else ""
    return (f"Answer Model verdict: Image {answer} ({side}) is better{conf}. Explain this verdict in the "
            f"rationale; the conclusion will be <answer>{answer}</answer>.")


def build_prompt(
    stage: str,
    category: str | None = None,
    *,
    cv_cues: str = "",
    iqa_cues: str = "",
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
        blocks.append(_cue_block("IQA-model cues (A vs B)", iqa_cues))
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
    """Prompts for many pairs: `cues` maps id -> {"cv", "iqa"}; `answers` maps id -> {"answer", "p_answer"}.

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
                                    answer=a.get("answer"), p_answer=float(p) if p is not None else None,
                                    vocabulary=vocabulary)
    return out
