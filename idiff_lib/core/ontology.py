"""The one vocabulary of pairwise IQA rationales: categories, regions, attributes, verdicts, stages.

Every module that writes, prompts for, parses or scores a rationale takes its words from here: the
benchmark's reference generator, the Thinking Model's prompts and template baseline, the parser
and the scorer. A subset used for one purpose (for example the attributes the benchmark writes)
is derived from these definitions, never written out again.

Canonical names are lower case ("face", "sharpness"); a heading writes them capitalised
("Face Sharpness", see `heading_word`). The attribute spelling is American ("color"), as the
benchmark's references write it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Content categories of a pair, as in RAIM-PIQA (pair ids start with p_ or s_).
CATEGORIES: tuple[str, ...] = ("person", "scene")
# iDiff's progressive prompt ladder: baseline, + expert templates, + CV cues, + IQA cues, + answer-aware.
STAGES: tuple[str, ...] = ("S0", "S1", "S2", "S3", "S4")
# The closing line of every RAIM-style rationale ("Global Overall: Image B is better overall ...").
SUMMARY_HEADING = "Global Overall"

# ---------------------------------------------------------------------------------------------
# Regions and attributes. Keys are the canonical names; values are the heading words/phrases the
# parser maps to them (lower case; a phrase is matched before its words).
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
    "color": ("color", "colour", "colors", "colours", "white balance", "tint", "saturation",
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
PERSON_ONLY_REGIONS: frozenset[str] = frozenset({"face", "skin", "hair", "clothing", "body"})
# Which image a line favours: one of them, both alike, or each in something ("mixed").
VERDICTS: tuple[str, ...] = ("A", "B", "similar", "mixed")


def heading_word(name: str) -> str:
    """How a heading writes a canonical region or attribute: ``"face"`` -> ``"Face"``."""
    return name.capitalize()


def _regions(*names: str) -> tuple[str, ...]:
    unknown = [n for n in names if n not in REGION_SYNONYMS]
    if unknown:
        raise ValueError(f"not ontology regions: {unknown}")
    return names


def _attribute_words(*words: str) -> tuple[str, ...]:
    """Heading words, each a synonym of one ontology attribute, capitalised as headings write them."""
    known = {p for phrases in ATTRIBUTE_SYNONYMS.values() for p in phrases}
    unknown = [w for w in words if w not in known]
    if unknown:
        raise ValueError(f"not ontology attribute words: {unknown}")
    return tuple(heading_word(w) for w in words)


# ---------------------------------------------------------------------------------------------
# Subsets, each for one purpose (the order is the one its user draws or lists in).
# ---------------------------------------------------------------------------------------------
# The regions and attributes the benchmark's reference writer composes lines from, as heading
# words. A person rationale has no Building/Vegetation line; a scene one no Face/Hair line.
REFERENCE_PERSON_REGIONS: tuple[str, ...] = tuple(
    heading_word(r) for r in _regions("face", "hair", "clothing", "skin", "global"))
REFERENCE_SCENE_REGIONS: tuple[str, ...] = tuple(
    heading_word(r) for r in _regions("global", "background", "building", "vegetation", "edges"))
REFERENCE_ATTRIBUTES: tuple[str, ...] = _attribute_words("sharpness", "texture", "noise", "artifacts", "realism")
# A reference line names a winner or says the two are alike; "mixed" is only ever read from free text.
REFERENCE_VERDICTS: tuple[str, ...] = tuple(v for v in VERDICTS if v != "mixed")

# The regions the degradation model draws soft masks for (lower case, as `region_masks` keys them).
PERSON_MASK_REGIONS: tuple[str, ...] = _regions("global", "face", "skin", "hair", "clothing", "background")
# "detail" (the textured areas of a scene) is a mask only: no rationale heading names it.
DETAIL_MASK = "detail"
SCENE_MASK_REGIONS: tuple[str, ...] = (*_regions("global", "background", "edges"), DETAIL_MASK)

# The regions each category's S1 template must cover, with the words that name them in real
# rationales. Coarser than `REGION_SYNONYMS` on purpose: the template folds skin into Face and
# text into Edges, so a mined heading "Skin Texture" counts as "Face Texture".
TEMPLATE_REGION_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "person": {
        heading_word("face"): ("face", "skin", "facial"),
        heading_word("hair"): ("hair",),
        heading_word("clothing"): ("clothing", "clothes", "shirt", "fabric", "dress"),
    },
    "scene": {
        heading_word("background"): ("background", "sky"),
        heading_word("building"): ("building", "architecture", "wall", "window"),
        heading_word("vegetation"): ("vegetation", "leaf", "leaves", "tree", "grass", "greenery", "flower", "foliage"),
        heading_word("edges"): ("edge", "edges", "text", "outline", "contour"),
    },
}
# The attribute words a template heading ends with ("Face Texture", "Global Quality"), in the
# order the template baseline looks for them in a cue line.
TEMPLATE_ATTRIBUTE_WORDS: tuple[str, ...] = _attribute_words(
    "texture", "sharpness", "noise", "artifacts", "realism", "color", "exposure", "detail", "quality")
# Other words of a cue line that reveal a template attribute ("halos" -> Artifacts).
TEMPLATE_CUE_KEYWORDS: dict[str, tuple[str, ...]] = {
    heading_word("artifacts"): ("halo",),
    heading_word("sharpness"): ("blur", "sharp"),
    heading_word("texture"): ("smear", "waxy"),
}

# ---------------------------------------------------------------------------------------------
# Headings
# ---------------------------------------------------------------------------------------------
# A ``Heading: text`` line as the template miner reads it: a capitalised heading of at most
# about 60 characters, then a non-empty sentence.
HEADING_RE = re.compile(r"^\s*([A-Z][A-Za-z ,/&\-\(\)\[\]]{1,60}?)\s*:\s*\S")
# Words that carry no region/attribute meaning in a heading ("Clothing Region Texture").
_HEADING_FILLER = frozenset({"region", "regions", "area", "areas", "and", "the", "of", "in", "on",
                             "quality", "level", "levels", "perceived", "upper", "&", "vs"})
_PAREN_RE = re.compile(r"\(([^)]*)\)")
_BRACKET_RE = re.compile(r"\[([^\]]*)\]")
_ANY_BRACKETS_RE = re.compile(r"\s*[\(\[][^)\]]*[\)\]]\s*")


def _phrase_table(synonyms: dict[str, tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    return {tuple(p.split()): canon for canon, phrases in synonyms.items() for p in phrases}


_REGION_TABLE = _phrase_table(REGION_SYNONYMS)
_ATTRIBUTE_TABLE = _phrase_table(ATTRIBUTE_SYNONYMS)
_MAX_PHRASE = max(len(k) for k in (*_REGION_TABLE, *_ATTRIBUTE_TABLE))


def _words(text: str) -> list[str]:
    text = text.lower().replace("/", " ").replace(",", " ").replace("&", " and ")
    return re.findall(r"[a-z][a-z\-']*", text)


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


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


def _read_part(words: list[str], inner: bool, regions: list[str], attributes: list[str]) -> None:
    """Append the regions and attributes named by one part of a heading (main words or brackets)."""
    i = 0
    while i < len(words):
        # "quality" is filler ("Hair Edge Quality") unless it is the only attribute word after a
        # region ("Skin Quality" -> overall).
        if words[i] in _HEADING_FILLER and not (words[i] == "quality" and not attributes and regions):
            i += 1
            continue
        region = _match_phrases(words, i, _REGION_TABLE)
        attribute = _match_phrases(words, i, _ATTRIBUTE_TABLE)
        pick_region = region is not None and (
            attribute is None or (not regions and i == 0) or region[1] > attribute[1]
        )
        if inner and regions and attribute is not None:
            pick_region = False  # "(White Shirt)", "(Architecture)": details of a known region
        if pick_region:
            if region[0] not in regions and (not inner or not regions):
                regions.append(region[0])
            i += region[1]
        elif attribute is not None:
            if attribute[0] not in attributes:
                attributes.append(attribute[0])
            i += attribute[1]
        else:
            i += 1


def normalise_heading(heading: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Map a free-form heading onto (regions, attributes), each in order of appearance.

    Parenthesised and bracketed parts are read after the main words, so "Background [Noise]"
    gives noise and "Clothing (White Shirt) Sharpness" gives clothing/sharpness. A word that is
    both a region and an attribute ("Edge", "Global") counts as a region only when nothing else
    is a region and it comes first.

    Args:
        heading: the text before a rationale line's colon.

    Returns:
        (regions, attributes): canonical names from `REGIONS` and `ATTRIBUTES`, possibly empty.
    """
    inner = " ".join(_PAREN_RE.findall(heading) + _BRACKET_RE.findall(heading))
    main = _BRACKET_RE.sub(" ", _PAREN_RE.sub(" ", heading))
    regions: list[str] = []
    attributes: list[str] = []
    _read_part(_words(main), False, regions, attributes)
    _read_part(_words(inner), True, regions, attributes)
    return tuple(regions), tuple(attributes)


def template_heading(heading: str) -> str | None:
    """The S1 template heading a mined heading counts as, or None when it ends in no attribute word.

    ``"Building (Architecture) Sharpness"`` -> ``"Building Sharpness"``. The attribute is the last
    word when it is one of `TEMPLATE_ATTRIBUTE_WORDS`; the region is what precedes it, mapped to a
    template region when one of its words names it (`TEMPLATE_REGION_WORDS`: ``Leaf`` ->
    ``Vegetation``).

    Args:
        heading: a raw heading (see `headings_of`).

    Returns:
        ``"Region Attribute"``, or None (e.g. for the ``Global Overall`` summary).
    """
    words = _ANY_BRACKETS_RE.sub(" ", heading).replace(",", " ").split()
    if len(words) < 2 or words[-1].capitalize() not in TEMPLATE_ATTRIBUTE_WORDS:
        return None
    attribute = words[-1].capitalize()
    region_words = [w.lower() for w in words[:-1]]
    for regions in TEMPLATE_REGION_WORDS.values():
        for region, keys in regions.items():
            if any(w in keys for w in region_words):
                return f"{region} {attribute}"
    return f"{' '.join(w.capitalize() for w in words[:-1])} {attribute}"


def headings_of(thinking: str) -> list[str]:
    """The raw ``Region Attribute`` headings of a rationale's lines (matched by `HEADING_RE`)."""
    out = []
    for line in thinking.splitlines():
        m = HEADING_RE.match(line)
        if m:
            out.append(m.group(1).strip())
    return out


# The two sides a verdict names, and the challenge's completion format around a rationale.
ANSWERS = ("A", "B")
# Where each image sits in the merged picture: Image A left, Image B right ("Image A (Left)").
SIDE_NAMES: dict[str, str] = {"A": "Left", "B": "Right"}
# The other image of a pair.
OTHER_ANSWER: dict[str, str] = {"A": "B", "B": "A"}


def format_completion(thinking: str | Iterable[str], answer: str) -> str:
    """The challenge's completion text: ``<thinking>\\n...\\n</thinking>\\n<answer>X</answer>``."""
    if answer not in ANSWERS:
        raise ValueError(f"answer must be 'A' or 'B', got {answer!r}")
    body = thinking if isinstance(thinking, str) else "\n".join(thinking)
    return f"<thinking>\n{body.strip()}\n</thinking>\n<answer>{answer}</answer>"
