"""Structured reading of a RAIM-style rationale: each ``Region Attribute: text`` line becomes an Aspect.

A RAIM-PIQA rationale (NTIRE 2026 RAIM challenge, Track 1) is a list of lines such as
``Face Texture: Image A (Left) exhibits richer pores, while Image B (Right) looks waxy.``
The heading is free-form ("Clothing (White Shirt) Sharpness", "Face Skin Texture",
"Hair Edge Quality", "Background [Noise]", "Face, Neck, Clothing"), so the parser maps its words
onto the one vocabulary (`idiff_lib.core.ontology`: regions and attributes) and reads the
sentence for a verdict (`idiff_lib.scoring.verdicts`): which image the line favours (``A``,
``B``), ``similar`` or ``mixed``.

Hand-written, on purpose: no maintained library parses these domain headings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

from idiff_lib.core.ontology import normalise_heading
from idiff_lib.scoring.verdicts import read_verdict

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
    ("exposure", "exposure"), ("bright", "exposure"), ("colou", "color"), ("color", "color"),
    ("contrast", "contrast"), ("aesthetic", "aesthetics"), ("prefer", "overall"),
)

_BULLET_RE = re.compile(r"^\s*(?:[-*•·>]+|\d+[.)]|\(?[a-z]\))\s*", re.IGNORECASE)
_MARKUP_RE = re.compile(r"[*_`#]+")
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
