"""Rationale lines checked against the benchmark's ground truth: the degradations each pair was built from.

The demo benchmark records, per pair, the comparisons its reference rationale was written from
(``meta/<split>.jsonl``, `idiff_lib.data.meta.split_comparisons`): for a (region, attribute), which
image the applied degradations favour (``A``, ``B`` or ``similar``). BLEU-4 and ROUGE-L reward a
rationale that copies the template's words; these measures reward only claims that are true:

- **verdict accuracy**: of the written lines whose (region, attribute) the ground truth holds, the
  share whose verdict (`idiff_lib.scoring.verdicts.read_verdict`) equals the ground truth's. A line on
  such an aspect that states no preference, or a "mixed" one, counts as judged and not right.
- **meta coverage**: of the ground truth's comparisons, the share that some line discusses.

Lines on aspects the ground truth does not hold (the closing "Global Overall" line, an invented
region) are not judged: their truth is unknown. Headings are read by `idiff_lib.scoring.parser`, the
ground truth's "Region"/"Attribute" names by the same vocabulary (`idiff_lib.core.ontology`). The S1
template folds skin into Face, so a "Face" line is checked against a "Skin" comparison (and the
other way round) when the ground truth has no comparison for the region as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from idiff_lib.core.errors import DataError
from idiff_lib.core.ontology import normalise_heading
from idiff_lib.scoring import parser

# Regions a line may be checked against when the ground truth lacks the region as written
# (the S1 template writes skin under "Face"; `ontology.TEMPLATE_REGION_WORDS`).
_RELATED_REGIONS: dict[str, tuple[str, ...]] = {"face": ("skin",), "skin": ("face",)}
_TAG_RE = re.compile(r"<\s*/?\s*(thinking|answer)\s*>", re.IGNORECASE)
# What a verdict-accuracy figure or table says about the lines it does not judge.
RULE = ("a line is judged when the pair's ground truth (meta comparisons) holds its (region, attribute); "
        "right when its verdict equals the ground truth's")


@dataclass(frozen=True)
class LineMark:
    """One rationale line checked against the ground truth.

    Attributes:
        line: the line as written (bullets and tags removed).
        region / attribute: the aspect the parser read (None for a line without a heading).
        verdict: the verdict read from the sentence ("A", "B", "similar", "mixed" or None).
        meta_verdict: the ground truth's verdict for the aspect, None when it holds none.
        right: True / False when judged, None when the ground truth does not hold the aspect.
        meta_key: the ground truth's (region, attribute) the line was checked against.
    """

    line: str
    region: str | None
    attribute: str | None
    verdict: str | None
    meta_verdict: str | None
    right: bool | None
    meta_key: tuple[str, str] | None = None


def comparison_verdicts(comparisons: Iterable[Mapping[str, Any]] | None) -> dict[tuple[str, str], str]:
    """Canonical (region, attribute) -> verdict of a pair's meta comparisons (the first wins).

    Raises:
        DataError: a comparison without ``region``, ``attribute`` or ``verdict``, or with names the
            vocabulary does not know.
    """
    out: dict[tuple[str, str], str] = {}
    for row in comparisons or ():
        if not all(row.get(k) for k in ("region", "attribute", "verdict")):
            raise DataError(None, f"a meta comparison lacks region, attribute or verdict: {dict(row)}",
                            "each entry of 'comparisons' in meta/<split>.jsonl needs all three "
                            "(rebuild the benchmark with `idiff data build-demo`)")
        regions, attributes = normalise_heading(f"{row['region']} {row['attribute']}")
        if not regions or not attributes:
            raise DataError(None, f"a meta comparison names an unknown region or attribute: {dict(row)}",
                            "use the names of idiff_lib.core.ontology (REGION_SYNONYMS, ATTRIBUTE_SYNONYMS)")
        out.setdefault((regions[0], attributes[0]), str(row["verdict"]))
    return out


def _meta_key(aspect: parser.Aspect, held: Mapping[tuple[str, str], str]) -> tuple[str, str] | None:
    """The ground-truth aspect a line is checked against: as written first, then a related region."""
    regions = aspect.regions or (aspect.region,)
    attributes = aspect.attributes or (aspect.attribute,)
    written = [(r, a) for r in regions for a in attributes]
    for key in written:
        if key in held:
            return key
    for region, attribute in written:
        for other in _RELATED_REGIONS.get(region, ()):
            if (other, attribute) in held:
                return (other, attribute)
    return None


def mark_lines(rationale: str | None, comparisons: Iterable[Mapping[str, Any]] | None) -> list[LineMark]:
    """Every non-empty line of a rationale, checked against the pair's meta comparisons.

    Args:
        rationale: the text inside ``<thinking>`` (or a whole completion: tags are removed, and a
            bare "A"/"B" answer line is skipped).
        comparisons: the pair's ``comparisons`` (`idiff_lib.data.meta.split_comparisons`); None or
            empty marks every line not judged.
    """
    held = comparison_verdicts(comparisons)
    marks = []
    for raw in _TAG_RE.sub("\n", rationale or "").splitlines():
        line = raw.strip()
        if not line or line in ("A", "B"):
            continue
        aspect = parser.parse_line(line)
        if aspect is None:
            marks.append(LineMark(line, None, None, None, None, None))
            continue
        key = _meta_key(aspect, held)
        truth = held.get(key) if key else None
        marks.append(LineMark(line, aspect.region, aspect.attribute, aspect.verdict, truth,
                              None if key is None else aspect.verdict == truth, key))
    return marks


def pair_counts(rationale: str | None, comparisons: Iterable[Mapping[str, Any]] | None) -> dict[str, int]:
    """One pair's counts: ``lines``, ``judged``, ``right``, ``comparisons`` and ``covered``."""
    comparisons = list(comparisons or ())
    marks = mark_lines(rationale, comparisons)
    judged = [m for m in marks if m.right is not None]
    return {"lines": len(marks), "judged": len(judged), "right": sum(1 for m in judged if m.right),
            "comparisons": len(comparison_verdicts(comparisons)),
            "covered": len({m.meta_key for m in judged})}


def summarise_counts(counts: Sequence[Mapping[str, int] | None]) -> dict[str, Any]:
    """Pool per-pair counts (None: a pair without meta) into the corpus measures.

    Returns:
        ``verdict_accuracy`` (right / judged lines, pooled over pairs) and ``meta_coverage``
        (covered / ground-truth comparisons), each None when there is nothing to divide by, with
        the counts ``n_lines``, ``n_lines_judged``, ``n_right``, ``n_comparisons``, ``n_covered``,
        ``pairs_with_meta`` and the `RULE`.
    """
    kept = [c for c in counts if c is not None]
    total = {k: sum(c[k] for c in kept) for k in ("lines", "judged", "right", "comparisons", "covered")}
    return {
        "verdict_accuracy": total["right"] / total["judged"] if total["judged"] else None,
        "meta_coverage": total["covered"] / total["comparisons"] if total["comparisons"] else None,
        "n_lines": total["lines"], "n_lines_judged": total["judged"], "n_right": total["right"],
        "n_comparisons": total["comparisons"], "n_covered": total["covered"], "pairs_with_meta": len(kept),
        "rule": RULE,
    }


def meta_verdict_scores(rationales: Mapping[str, str | None],
                        meta: Mapping[str, Sequence[Mapping[str, Any]]] | None) -> dict[str, Any]:
    """Verdict accuracy and meta coverage of a set of rationales (`summarise_counts`).

    Args:
        rationales: pair id -> rationale (or completion).
        meta: pair id -> its comparisons; None (no ground truth) or ids it lacks are left out, and
            with no pair left both measures are None.
    """
    meta = meta or {}
    return summarise_counts([pair_counts(text, meta[i]) if meta.get(i) else None for i, text in rationales.items()])


def pick_pairs(ids: Sequence[str], meta: Mapping[str, Sequence[Mapping[str, Any]]] | None,
               first: str | None = None, n: int = 3) -> list[str]:
    """The pairs a teaching figure shows: `first` (the worked pair) when it has meta, then the
    earliest other `ids` with meta comparisons, `n` in all (fewer when fewer have meta)."""
    meta = meta or {}
    order = ([first] if first in ids else []) + [i for i in ids if i != first]
    return [i for i in order if meta.get(i)][:n]
