"""Structured reading of a RAIM-style rationale: each ``Region Attribute: text`` line becomes an Aspect.

A RAIM-PIQA rationale (NTIRE 2026 RAIM challenge, Track 1) is a list of lines such as
``Face Texture: Image A (Left) exhibits richer pores, while Image B (Right) looks waxy.``
The heading is free-form ("Clothing (White Shirt) Sharpness", "Face Skin Texture",
"Hair Edge Quality", "Background [Noise]", "Face, Neck, Clothing"), so the parser maps its words
onto two small vocabularies, `REGIONS` and `ATTRIBUTES`, and reads the sentence for a verdict:
which image the line favours (``A``, ``B``), ``similar`` or ``mixed``.

Hand-written, on purpose: no maintained library parses these domain headings, and an NLI or
sentiment model would need weights this workbench cannot download. The verdict reader is a
small lexicon method in the spirit of VADER (Hutto & Gilbert, ICWSM 2014): clauses are split at
contrast words, each clause's subject image is found ("Image A (Left)", "Image B/Right",
"the left image", "both"), and quality words score it, flipped by negations ("no", "without",
"does not") and diminishers ("less noise", "reduced smearing").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

# ---------------------------------------------------------------------------------------------
# Vocabularies. Keys are the canonical names; values are the heading words/phrases mapped to
# them (lower case; a phrase is matched before its words).
# ---------------------------------------------------------------------------------------------
REGION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "face": ("face skin", "facial skin", "face region", "face", "facial", "faces", "eyes", "eye",
             "eyelashes", "eyelash", "lips", "mouth", "nose", "portrait", "jawline"),
    "skin": ("skin", "skin tone", "complexion"),
    "hair": ("hair", "hairs", "beard", "eyebrows", "eyebrow", "fur"),
    "clothing": ("clothing", "clothes", "garment", "garments", "shirt", "sweater", "jacket",
                 "dress", "fabric", "textile", "cloth", "apparel", "sleeve", "collar", "suit"),
    "body": ("body", "neck", "arm", "arms", "shoulder", "shoulders", "hand", "hands", "torso",
             "upper body", "legs", "leg", "person", "subject"),
    "background": ("background", "backdrop", "surroundings", "sky", "scene"),
    "building": ("building", "buildings", "architecture", "architectural", "wall", "walls",
                 "window", "windows", "structure", "structures", "ferris wheel"),
    "vegetation": ("vegetation", "greenery", "leaf", "leaves", "foliage", "tree", "trees",
                   "grass", "flower", "flowers", "petals", "petal", "plant", "plants"),
    "text": ("text", "sign", "signage", "lettering", "letters", "calendar", "logo", "typography"),
    "edges": ("edges", "edge", "contours", "contour", "outline", "outlines", "boundaries"),
    "tones": ("mid-to-dark tones", "mid-to-dark", "mid-tone", "mid-tones", "midtones",
              "dark tones", "dark regions", "dark areas", "shadows", "shadow", "highlights",
              "highlight", "tones"),
    "global": ("global", "overall image", "whole image", "entire image", "image", "images"),
}
ATTRIBUTE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sharpness": ("sharpness", "sharp", "clarity", "perceived clarity", "definition", "focus",
                  "blur", "blurriness", "resolution", "crispness", "acutance"),
    "texture": ("texture", "textures", "detail", "details", "high-frequency detail",
                "fine detail", "fine details", "rendering"),
    "noise": ("noise", "grain", "graininess", "snr", "signal-to-noise"),
    "artifacts": ("artifacts", "artifact", "artefacts", "artefact", "smearing", "smudging",
                  "halos", "halo", "ringing", "compression", "jpeg", "oversharpening",
                  "over-sharpening", "banding", "aliasing"),
    "realism": ("realism", "naturalness", "natural", "realistic", "authenticity", "fidelity"),
    "exposure": ("exposure", "brightness", "luminance", "lighting", "dynamic range"),
    "colour": ("color", "colour", "colors", "colours", "white balance", "tint", "saturation",
               "hue"),
    "contrast": ("contrast", "tonality", "tone"),
    "edges": ("edge quality", "edge definition", "edge", "edges", "transitions"),
    "aesthetics": ("aesthetic preference", "aesthetic", "aesthetics", "style", "appeal",
                   "preference"),
    "overall": ("overall quality", "perceived quality", "overall", "quality", "perception",
                "impression", "decision", "final decision", "verdict", "conclusion", "summary"),
}
REGIONS: tuple[str, ...] = tuple(REGION_SYNONYMS)
ATTRIBUTES: tuple[str, ...] = tuple(ATTRIBUTE_SYNONYMS)
# Regions that exist only when a person is in the picture (hallucinated on a scene pair).
PERSON_REGIONS: frozenset[str] = frozenset({"face", "skin", "hair", "clothing", "body"})
VERDICTS: tuple[str, ...] = ("A", "B", "similar", "mixed")

# Words that carry no region/attribute meaning in a heading ("Clothing Region Texture").
_HEADING_FILLER = frozenset({"region", "regions", "area", "areas", "and", "the", "of", "in", "on",
                             "quality", "level", "levels", "perceived", "upper", "&", "vs"})
# Keywords that reveal the attribute from the sentence when the heading names only a region
# ("Hair: Image A shows significant smoothing ..."), checked in this order.
_TEXT_ATTRIBUTE_CUES: tuple[tuple[str, str], ...] = (
    ("smear", "artifacts"), ("smudg", "artifacts"), ("halo", "artifacts"), ("artifact", "artifacts"),
    ("jagged", "artifacts"), ("black border", "artifacts"), ("black edge", "artifacts"),
    ("smoothing", "artifacts"), ("painterly", "artifacts"), ("plastic", "artifacts"),
    ("noise", "noise"), ("grain", "noise"),
    ("sharp", "sharpness"), ("blur", "sharpness"), ("clarity", "sharpness"),
    ("texture", "texture"), ("detail", "texture"), ("strand", "texture"),
    ("natural", "realism"), ("realis", "realism"),
    ("exposure", "exposure"), ("bright", "exposure"), ("colou", "colour"), ("color", "colour"),
    ("contrast", "contrast"), ("aesthetic", "aesthetics"), ("prefer", "overall"),
)

_BULLET_RE = re.compile(r"^\s*(?:[-*•·>]+|\d+[.)]|\(?[a-z]\))\s*", re.IGNORECASE)
_MARKUP_RE = re.compile(r"[*_`#]+")
_PAREN_RE = re.compile(r"\(([^)]*)\)")
_BRACKET_RE = re.compile(r"\[([^\]]*)\]")
_HEADING_MAX_WORDS = 9  # longer "headings" are sentences that happen to hold a colon


@dataclass(frozen=True)
class Aspect:
    """One rationale line read into region, attribute and verdict.

    Attributes:
        region: the first normalised region ("face", ..., "global"), or "unknown".
        attribute: the first normalised attribute ("sharpness", ..., "overall"), or "unknown".
        verdict: "A", "B", "similar", "mixed", or None when the sentence states no preference.
        text: the sentence after the heading.
        heading: the heading as written.
        regions / attributes: every region / attribute the heading names (a heading may name
            several: "Face, Neck, Clothing", "Body/Arm Contrast and Sharpness").
        attribute_source: "heading", "text" (read from the sentence because the heading names
            only a region) or "default" (nothing found: "overall" was assumed).
        scores: the verdict reader's evidence for A and B.
    """

    region: str
    attribute: str
    verdict: str | None
    text: str
    heading: str = ""
    regions: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    attribute_source: str = "heading"
    scores: tuple[float, float] = (0.0, 0.0)

    @property
    def key(self) -> tuple[str, str]:
        """The (region, attribute) pair used to match aspects across rationales."""
        return (self.region, self.attribute)

    @property
    def keys(self) -> set[tuple[str, str]]:
        """Every (region, attribute) combination the heading names."""
        return {(r, a) for r in (self.regions or (self.region,)) for a in (self.attributes or (self.attribute,))}

    @property
    def known(self) -> bool:
        """Whether region and attribute were both recognised (not assumed)."""
        return self.region != "unknown" and self.attribute != "unknown" and self.attribute_source != "default"


# ---------------------------------------------------------------------------------------------
# Heading normalisation
# ---------------------------------------------------------------------------------------------
def _phrase_table(synonyms: dict[str, tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    return {tuple(p.split()): canon for canon, phrases in synonyms.items() for p in phrases}


_REGION_TABLE = _phrase_table(REGION_SYNONYMS)
_ATTRIBUTE_TABLE = _phrase_table(ATTRIBUTE_SYNONYMS)
_MAX_PHRASE = max(len(k) for k in (*_REGION_TABLE, *_ATTRIBUTE_TABLE))


def _words(text: str) -> list[str]:
    text = text.lower().replace("/", " ").replace(",", " ").replace("&", " and ")
    return re.findall(r"[a-z][a-z\-']*", text)


def _match_phrases(words: list[str], start: int, table: dict[tuple[str, ...], str]) -> tuple[str, int] | None:
    """The longest phrase of `table` at `words[start:]` (a plural word also matches its singular)."""
    for n in range(min(_MAX_PHRASE, len(words) - start), 0, -1):
        canon = table.get(tuple(words[start:start + n]))
        if canon is not None:
            return canon, n
    if start < len(words):
        canon = table.get((_singular(words[start]),))
        if canon is not None:
            return canon, 1
    return None


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def normalise_heading(heading: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Map a free-form heading onto (regions, attributes), each in order of appearance.

    Parenthesised and bracketed parts are read after the main words, so "Background [Noise]"
    gives noise and "Clothing (White Shirt) Sharpness" gives clothing/sharpness. A word that is
    both a region and an attribute ("Edge", "Global") counts as a region only when nothing else
    is a region and it comes first.
    """
    inner = " ".join(_PAREN_RE.findall(heading) + _BRACKET_RE.findall(heading))
    main = _BRACKET_RE.sub(" ", _PAREN_RE.sub(" ", heading))
    regions: list[str] = []
    attributes: list[str] = []
    for part_index, part in enumerate((main, inner)):
        words = _words(part)
        i = 0
        while i < len(words):
            # "quality" is filler ("Hair Edge Quality") unless it is the only attribute word
            # after a region ("Skin Quality" -> overall).
            if words[i] in _HEADING_FILLER and not (words[i] == "quality" and not attributes and regions):
                i += 1
                continue
            region = _match_phrases(words, i, _REGION_TABLE)
            attribute = _match_phrases(words, i, _ATTRIBUTE_TABLE)
            pick_region = region is not None and (
                attribute is None or (not regions and i == 0) or region[1] > attribute[1]
            )
            if part_index == 1 and regions and attribute is not None:
                pick_region = False  # "(White Shirt)", "(Architecture)": details of a known region
            if pick_region:
                if region[0] not in regions and (part_index == 0 or not regions):
                    regions.append(region[0])
                i += region[1]
            elif attribute is not None:
                if attribute[0] not in attributes:
                    attributes.append(attribute[0])
                i += attribute[1]
            else:
                i += 1
    return tuple(regions), tuple(attributes)


def attribute_from_text(text: str) -> str | None:
    """The attribute a sentence is about, from its first tell-tale word, or None."""
    low = text.lower()
    best: tuple[int, str] | None = None
    for cue, attribute in _TEXT_ATTRIBUTE_CUES:
        pos = low.find(cue)
        if pos >= 0 and (best is None or pos < best[0]):
            best = (pos, attribute)
    return best[1] if best else None


# ---------------------------------------------------------------------------------------------
# Verdict reading
# ---------------------------------------------------------------------------------------------
# Quality words: +1 good, -1 bad; weight 2 for explicit comparative judgements.
_POSITIVE = {
    "better": 2, "superior": 2, "prefer": 2, "preferred": 2, "preference": 1, "selected": 2,
    "selects": 2, "select": 2, "selection": 2, "chosen": 2, "choose": 2, "wins": 2, "win": 2,
    "advantage": 2, "excels": 2, "outperforms": 2, "favourable": 1, "favorable": 1,
    "sharper": 1, "clearer": 1, "cleaner": 1, "crisper": 1, "richer": 1, "finer": 1, "smoother": 1,
    "natural": 1, "realistic": 1, "realism": 1, "accurate": 1, "detailed": 1, "defined": 1,
    "definition": 1, "clarity": 1, "crisp": 1, "clean": 1, "clear": 1, "rich": 1, "intact": 1,
    "preserves": 1, "preserved": 1, "preserving": 1, "preserve": 1, "retains": 1, "retained": 1,
    "maintains": 1, "maintained": 1, "keeps": 1, "pleasing": 1, "pleasant": 1, "fidelity": 1,
    "legible": 1, "legibility": 1, "balanced": 1, "comfortable": 1, "distinct": 1, "vivid": 1,
    "fine": 1, "good": 1, "well": 1, "sharp": 1,
    "harmonious": 1, "authentic": 1, "consistent": 1, "continuous": 1, "uniform": 1,
    "discernible": 1, "refined": 1, "controlled": 1, "sharpest": 1, "best": 2, "cleanest": 1, "enhanced": 1, "improved": 1, "acceptable": 1, "sufficient": 1,
    "signal-to-noise": 1, "snr": 1,
}
_NEGATIVE = {
    "worse": 2, "inferior": 2, "poorer": 2, "poor": 1, "noise": 1, "noisy": 1, "noisier": 1,
    "grainy": 1, "grain": 1, "smear": 1, "smearing": 1, "smeared": 1, "smears": 1, "smudge": 1,
    "smudging": 1, "smudged": 1, "smudges": 1, "blur": 1, "blurry": 1, "blurred": 1, "blurring": 1,
    "blurrier": 1, "artifacts": 1, "artifact": 1, "artefacts": 1, "artifacting": 1, "halo": 1,
    "halos": 1, "haloing": 1, "jagged": 1, "aliasing": 1, "ringing": 1, "oversharpened": 1,
    "over-sharpened": 1, "over-sharpening": 1, "oversharpening": 1, "excessive": 1,
    "unnatural": 1, "plastic": 1, "waxy": 1, "painterly": 1, "oversmoothed": 1, "over-smoothed": 1,
    "smoothing": 1, "smoothed": 1, "loss": 1, "loses": 1, "lost": 1, "lose": 1, "lacking": 1,
    "lacks": 1, "lack": 1, "suffers": 1, "suffer": 1, "degraded": 1, "degrades": 1, "degrade": 1,
    "degradation": 1, "distortion": 1, "distortions": 1, "washed": 1, "hazy": 1, "haze": 1,
    "muddy": 1, "dull": 1, "mushy": 1, "artificial": 1, "forged": 1, "discontinuity": 1,
    "issues": 1, "issue": 1, "problems": 1, "problem": 1, "blocky": 1, "blocking": 1,
    "banding": 1, "overexposed": 1, "underexposed": 1, "clipped": 1, "clipping": 1, "cast": 1,
    "posterization": 1, "undesirable": 1, "sacrifices": 1, "flat": 1,
    "coarse": 1, "harsh": 1, "fake": 1, "unrealistic": 1, "inconsistent": 1,
    "compression": 1, "weaker": 1, "weak": 1, "missing": 1, "deficient": 1,
    "borders": 1, "fringing": 1, "fails": 1, "fail": 1, "failed": 1, "blurriness": 1,
    "intrusive": 1, "over-processing": 1, "over-processed": 1, "overprocessed": 1, "distracting": 1, "mottled": 1, "splotchy": 1, "blotchy": 1,
}
# Flip the next quality word(s) in a short window.
_NEGATORS = frozenset({"not", "no", "without", "never", "neither", "nor", "free", "absence",
                       "n't", "cannot", "isn't", "doesn't", "don't", "none",
                       "avoiding", "avoids", "avoid", "avoided"})
_DIMINISHERS = frozenset({"less", "fewer", "reduced", "reduce", "reduces", "reducing", "lower",
                          "minimal", "decreased", "suppressed", "suppresses", "suppression",
                          "removes", "removed", "eliminates", "eliminated"})
_AMPLIFIERS = frozenset({"higher", "greater", "more", "increased", "enhanced", "richer", "stronger",
                         "superior", "better", "finer", "rich", "intact", "excellent", "high"})
_NEUTRAL_QUALITY = frozenset({"sharpness", "detail", "details", "texture", "textures", "contrast",
                              "resolution"})
_CAPABILITY_NOUNS = frozenset({"control", "handling", "suppression", "reduction", "removal", "management",
                               "performance"})
_NEGATION_WINDOW = 4
_DIMINISHER_WINDOW = 2
_SIMILAR_CUES = re.compile(
    r"\b(similar(?:ly)?|comparable|same|equal(?:ly)?|equivalent|identical|on par|alike|indistinguishable|"
    r"in either image|"
    r"no (?:major |significant |obvious |noticeable |clear )?differences?|neither\b[^.;]*\b(?:superior|better)|"
    r"both (?:images )?(?:show|exhibit|display|have|appear|perform|are|look|contain|maintain|present|preserve))\b",
    re.IGNORECASE,
)
# Clause boundaries: sentence ends, semicolons, commas and contrast words. The captured word
# tells a concessive clause ("although ...") from a contrastive one.
_CLAUSE_SPLIT = re.compile(
    r"([;.!?](?:\s+|$)|,\s*|\b(?:while|whereas|but|however|although|though|yet|in contrast|"
    r"conversely|on the other hand)\b)",
    re.IGNORECASE,
)
_CONCESSIVE = re.compile(r"^\s*(?:despite|although|though|even though|in spite of|notwithstanding)\b",
                         re.IGNORECASE)
_CONCESSIVE_WEIGHT = 0.25  # "Although A has an advantage in edges, B is better overall": the main clause decides
_CONTRAST_WEIGHT = 1.5  # "B looks sharper at first glance, but this is offset by artifacts": "but" wins
_LIMITING = re.compile(r"\bonly\s+(?:leads?|wins?|excels?|has|shows|is\s+better)\b", re.IGNORECASE)
_RELATIVE = re.compile(r"^\s*(?:which|who|that)\b", re.IGNORECASE)
# Mentions of the two images. Order matters: the longest forms first.
_SIDE_PATTERNS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"\b(?:both\s+|neither\s+|either\s+)?(?:images?\s+a(?:\s*\(\s*left\s*\)|\s*/\s*left)?\s+"
                r"(?:and|n?or)\s+(?:image\s+)?b|images?\s+b(?:\s*\(\s*right\s*\)|\s*/\s*right)?\s+(?:and|n?or)\s+"
                r"(?:image\s+)?a|a\s+and\s+b)\b(?:\s*\([^)]*\))?|\bboth\b(?:\s+images?|\s+versions?|\s+sides?)?|"
                r"\bneither\b(?:\s+images?)?|\bthe\s+two\s+images\b", re.IGNORECASE), "both"),
    (re.compile(r"\bimage\s*a\b(?:\s*(?:\(\s*left\s*\)|/\s*left))?|\b(?:the\s+)?left(?:-hand)?\s+"
                r"(?:image|one|side|picture|photo|version)\b|\bthe\s+left\b|\(left\)|\bthe\s+former\b",
                re.IGNORECASE), "A"),
    (re.compile(r"\bimage\s*b\b(?:\s*(?:\(\s*right\s*\)|/\s*right))?|\b(?:the\s+)?right(?:-hand)?\s+"
                r"(?:image|one|side|picture|photo|version)\b|\bthe\s+right\b|\(right\)|\bthe\s+latter\b",
                re.IGNORECASE), "B"),
    # A bare capital letter, only in positions where it cannot be the article "A".
    (re.compile(r"(?<![\w'])(?P<m>A)(?='s\b)|\b(?:than|over|to|and|vs|versus|with|from|prefer|selects|"
                r"choose|chose|of)\s+(?P<m2>A)\b|\b(?P<m3>A)(?=\s+(?:is|has|shows|exhibits|appears|displays|"
                r"maintains|preserves|retains|demonstrates|presents|renders|suffers|looks|offers|provides|"
                r"keeps|was)\b)"), "A"),
    (re.compile(r"(?<![\w'/])(?P<m>B)\b(?!/)"), "B"),
)
_COMPARATOR_RE = re.compile(r"\b(?:than|compared\s+(?:to|with)|relative\s+to|over|versus|vs\.?|"
                            r"in\s+comparison\s+(?:to|with)|unlike)\s*$", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[a-z][a-z\-']*|n't", re.IGNORECASE)


def _side_mentions(clause: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for pattern, side in _SIDE_PATTERNS:
        for m in pattern.finditer(clause):
            group = next((g for g in ("m", "m2", "m3") if g in m.re.groupindex and m.group(g)), None)
            start, end = m.span(group) if group else m.span()
            if any(s < end and start < e for s, e, _ in spans):
                continue
            spans.append((start, end, side))
    return sorted(spans)


def _polarity(text: str) -> float:
    """Net quality of a stretch of text: positive minus negative words, with negation.

    A negator ("no", "not", "without") up to four words before a quality word flips it; a
    diminisher ("less", "reduced", "lower") up to two words before flips it too. Neutral quality
    nouns ("sharpness", "detail") count only with an amplifier ("higher sharpness") or a
    diminisher ("less detail").
    """
    tokens = [t.lower() for t in _TOKEN_RE.findall(text)]
    total = 0.0
    used: set[int] = set()  # a diminisher flips one quality word only: "less refined noise"
    for i, tok in enumerate(tokens):
        near_at = [j for j in range(max(0, i - _DIMINISHER_WINDOW), i) if j not in used]
        near = [tokens[j] for j in near_at]
        before = tokens[max(0, i - _NEGATION_WINDOW):i]
        if "-" in tok and tok not in _POSITIVE and tok not in _NEGATIVE:
            tok = next((part for part in tok.split("-") if part in _POSITIVE or part in _NEGATIVE), tok)
        if tok in _NEUTRAL_QUALITY:
            if any(b in _AMPLIFIERS for b in near):
                sign, weight = 1, 1
            elif any(b in _DIMINISHERS for b in near):
                sign, weight = 1, 1  # flipped to -1 below
            else:
                continue
        elif tok in _POSITIVE:
            sign, weight = 1, _POSITIVE[tok]
        elif tok in _NEGATIVE:
            sign, weight = -1, _NEGATIVE[tok]
        else:
            continue
        if tok in ("signal-to-noise", "snr"):
            total += -1 if any(b in ("lower", "low", "poor", "reduced", "worse") for b in near) else 1
            continue
        if tok == "noise" and i > 0 and tokens[i - 1] in ("signal-to-noise", "signal"):
            continue
        if i + 1 < len(tokens) and tokens[i + 1] in _CAPABILITY_NOUNS and tok in _NEGATIVE:
            continue  # "noise control", "artifact suppression": a capability, not a defect
        if any(b in _NEGATORS or b.endswith("n't") for b in before):
            sign = -sign
        elif any(b in _DIMINISHERS for b in near):
            sign = -sign
            used.add(next(j for j in near_at if tokens[j] in _DIMINISHERS))
        total += sign * weight
    return total


def _clauses(text: str) -> list[tuple[str, str]]:
    """Split a sentence into (clause, kind) pieces.

    kind is "concessive" (after "although", or starting with "despite"), "contrast" (after
    "but", "however", "yet"), "continue" (after a bare comma: it may continue the previous
    clause's list, "an advantage in texture, realism and edges") or "".
    """
    pieces = _CLAUSE_SPLIT.split(text)
    out: list[tuple[str, str]] = []
    kind_next = ""
    for k, piece in enumerate(pieces):
        if k % 2 == 1:  # a separator
            word = piece.strip().lower()
            kind_next = ("concessive" if word in ("although", "though") else
                         "contrast" if word in ("but", "however", "yet") else
                         kind_next or "continue" if word == "," else "")
            continue
        if piece and piece.strip():
            out.append((piece, "concessive" if _CONCESSIVE.match(piece) else kind_next))
        kind_next = ""
    return out


def read_verdict(text: str) -> tuple[str | None, tuple[float, float]]:
    """Which image a sentence favours.

    Each clause's evidence goes to the image it names first (its subject); a second image named
    after "than" / "compared to" / "over" gets the opposite evidence; a clause that names no
    image continues the previous subject; "both"/"neither" clauses only signal similarity.

    Returns:
        (verdict, (score_a, score_b)): the verdict is "A", "B", "similar", "mixed", or None when
        the sentence gives no evidence; the scores are the summed quality evidence per image.
    """
    score = {"A": 0.0, "B": 0.0}
    positive = {"A": False, "B": False}
    similar = bool(_SIMILAR_CUES.search(text))
    subject: str | None = None

    def credit(side: str, value: float) -> None:
        score[side] += value
        positive[side] |= value > 0

    last_named: str | None = None
    weight = 1.0
    for clause, kind in _clauses(text):
        mentions = _side_mentions(clause)
        if kind != "continue" or mentions:  # a comma-continued list keeps the weight of its clause
            weight = {"concessive": _CONCESSIVE_WEIGHT, "contrast": _CONTRAST_WEIGHT}.get(kind, 1.0)
            if _LIMITING.search(clause):
                weight = _CONCESSIVE_WEIGHT  # "Image A only leads in cleaner edges"
        if not mentions:
            if _RELATIVE.match(clause) and last_named is not None:
                subject = last_named  # ", which maintains ...": the image named just before
            if subject is not None:
                credit(subject, weight * _polarity(clause))
            continue
        last_named = next((m[2] for m in reversed(mentions) if m[2] in score), last_named)
        lead = clause[:mentions[0][0]]
        prev: str | None = None
        prev_value = 0.0
        if subject is not None and _COMPARATOR_RE.search(lead):
            prev = subject  # ", and more natural compared to Image A": the object of the carried subject
            prev_value = weight * _polarity(lead)
            credit(subject, prev_value)
        for k, (start, end, side) in enumerate(mentions):
            seg = clause[end:mentions[k + 1][0] if k + 1 < len(mentions) else len(clause)]
            value = weight * (_polarity(seg) + (_polarity(lead) if k == 0 and prev is None else 0.0))
            if _COMPARATOR_RE.search(clause[:start]) and prev is not None:
                if side in score and side != prev:
                    credit(side, -prev_value)
                credit(prev, value)  # words after the object still describe the subject
                continue
            if side == "both":
                similar = True  # "both ...", "neither ...": the clause compares without choosing
                prev, prev_value = None, 0.0
                continue
            credit(side, value)
            prev, prev_value = side, value
        if prev is not None or mentions[0][2] not in score:
            subject = prev if prev is not None else None
        else:
            subject = mentions[0][2]
    a, b = score["A"], score["B"]
    if a > b:
        verdict: str | None = "A"
    elif b > a:
        verdict = "B"
    elif positive["A"] and positive["B"]:
        verdict = "mixed"
    elif similar:
        verdict = "similar"
    else:
        verdict = None
    return verdict, (a, b)


# ---------------------------------------------------------------------------------------------
# Lines and rationales
# ---------------------------------------------------------------------------------------------
def split_heading(line: str) -> tuple[str, str] | None:
    """Split ``Heading: text`` (tolerating bullets, numbering and markdown bold), or None."""
    line = _BULLET_RE.sub("", line.strip(), count=1)
    if ":" not in line:
        return None
    heading, text = line.split(":", 1)
    heading = _MARKUP_RE.sub("", heading).strip()
    text = _MARKUP_RE.sub("", text).strip()
    if not heading or len(heading.split()) > _HEADING_MAX_WORDS or not re.search(r"[A-Za-z]", heading):
        return None
    return heading, text


@lru_cache(maxsize=65536)
def parse_line(line: str) -> Aspect | None:
    """Read one ``Region Attribute: text`` line into an Aspect, or None when it has no heading.

    Results are cached (an Aspect is immutable): the references of a stage ladder are read once.
    """
    parts = split_heading(line)
    if parts is None:
        return None
    heading, text = parts
    regions, attributes = normalise_heading(heading)
    source = "heading"
    if not attributes and regions == ("global",):
        attributes = ("overall",)  # a bare "Global:" heading is the overall judgement
    if not attributes:
        inferred = attribute_from_text(text)
        if inferred is not None:
            attributes, source = (inferred,), "text"
        else:
            attributes, source = ("overall",), "default"
    if not regions:
        regions = ("global",)
    verdict, scores = read_verdict(text)
    return Aspect(
        region=regions[0], attribute=attributes[0], verdict=verdict, text=text, heading=heading,
        regions=regions, attributes=attributes, attribute_source=source, scores=scores,
    )


def parse_rationale(text: str | None) -> list[Aspect]:
    """Every aspect line of a rationale (the text inside ``<thinking>``, or a whole completion).

    Tags are removed first, so a full completion may be passed. Lines without a heading are
    skipped; use `unparsed_lines` to see them.
    """
    if not text:
        return []
    body = re.sub(r"<\s*/?\s*(thinking|answer)\s*>", "\n", text, flags=re.IGNORECASE)
    body = re.sub(r"\n\s*[AB]\s*\n?\s*$", "\n", body)
    out = []
    for line in body.splitlines():
        if line.strip():
            aspect = parse_line(line)
            if aspect is not None:
                out.append(aspect)
    return out


def unparsed_lines(text: str | None) -> list[str]:
    """The non-empty lines of a rationale that `parse_line` cannot read (no heading)."""
    if not text:
        return []
    body = re.sub(r"<\s*/?\s*(thinking|answer)\s*>", "\n", text, flags=re.IGNORECASE)
    return [ln.strip() for ln in body.splitlines() if ln.strip() and parse_line(ln) is None
            and ln.strip() not in ("A", "B")]


def overall_verdict(aspects: Iterable[Aspect]) -> str | None:
    """The rationale's overall preference: "A", "B", or None when it does not decide.

    A concluding aspect (attribute "overall" with an A/B verdict, the last one wins) decides;
    otherwise the majority of the A/B aspect verdicts, None on a tie.
    """
    aspects = list(aspects)
    conclusions = [a.verdict for a in aspects if a.attribute == "overall" and a.verdict in ("A", "B")]
    if conclusions:
        return conclusions[-1]
    votes = Counter(a.verdict for a in aspects if a.verdict in ("A", "B"))
    if votes["A"] > votes["B"]:
        return "A"
    if votes["B"] > votes["A"]:
        return "B"
    return None


@dataclass
class CoverageReport:
    """How much of a set of rationales the parser reads (the issue's >= 95% target)."""

    lines: int = 0
    parsed: int = 0
    known: int = 0
    unknown: list[str] = field(default_factory=list)
    verdicts: Counter = field(default_factory=Counter)
    regions: Counter = field(default_factory=Counter)
    attributes: Counter = field(default_factory=Counter)

    @property
    def known_fraction(self) -> float:
        return self.known / self.lines if self.lines else 0.0

    def as_dict(self) -> dict:
        return {"lines": self.lines, "parsed": self.parsed, "known": self.known,
                "known_fraction": self.known_fraction, "unknown_lines": list(self.unknown),
                "verdicts": dict(self.verdicts), "regions": dict(self.regions),
                "attributes": dict(self.attributes)}


def coverage(rationales: Iterable[str]) -> CoverageReport:
    """Count the lines read into a known region and attribute; list the rest."""
    report = CoverageReport()
    for text in rationales:
        body = re.sub(r"<\s*/?\s*(thinking|answer)\s*>", "\n", text or "", flags=re.IGNORECASE)
        for line in body.splitlines():
            line = line.strip()
            if not line or line in ("A", "B"):
                continue
            report.lines += 1
            aspect = parse_line(line)
            if aspect is None:
                report.unknown.append(line)
                continue
            report.parsed += 1
            report.verdicts[aspect.verdict or "none"] += 1
            report.regions[aspect.region] += 1
            report.attributes[aspect.attribute] += 1
            if aspect.known:
                report.known += 1
            else:
                report.unknown.append(line)
    return report
