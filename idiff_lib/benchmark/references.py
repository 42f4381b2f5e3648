"""RAIM-style rationale templates mined from the public rationales, and the writer that fills them.

A RAIM-PIQA rationale (NTIRE 2026 RAIM challenge, Track 1) is a few ``Region Attribute:
comparison`` lines and a closing ``Global Overall:`` line. `mine_vocabulary` reads the 100
public rationales in place (``paths.raim_dir()``) and measures, by code:

- which ``Region Attribute`` headings occur and how often;
- how the images are referred to ("Image A (Left)", "Image A/Left", "Image A");
- the sentence shapes (winner first / loser first with a contrast word, "compared to",
  "both ... similar") and the contrast words and verbs they use;
- which descriptor terms of each attribute occur ("smearing", "halos", "mid-to-dark", ...).

No sentence is copied: the writer composes its own sentences from skeletons (`SHAPES`) and a
phrase bank (`PHRASES`), choosing among them with the mined frequencies. When the public
rationales are absent, `FALLBACK_COUNTS` (a small vocabulary written into this module, with
counts of one) stands in. The phrase bank and the shape classifier are hand-written: no
maintained library generates or classifies these domain sentences offline.

`write_rationale(category, comparisons, answer)` is the general template writer: the demo-set
generator uses it for its reference rationales, and the Thinking Model can use it as a baseline.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from idiff_lib.core import paths
from idiff_lib.core.errors import ParameterError
from idiff_lib.data.pairs import ANSWERS, format_completion

PERSON_REGIONS = ("Face", "Hair", "Clothing", "Skin", "Global")
SCENE_REGIONS = ("Global", "Background", "Building", "Vegetation", "Edges")
ATTRIBUTES = ("Sharpness", "Texture", "Noise", "Artifacts", "Realism")
VERDICTS = ("A", "B", "similar")
SUMMARY_HEADING = "Global Overall"

# Phrase bank: (key term looked up in the mined corpus, phrase). "good" phrases follow a verb for
# the better image, "bad" ones follow a verb (and an intensity word) for the worse image.
PHRASES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "Sharpness": {
        "good": (("clarity", "higher clarity"), ("crisp", "crisper, well-defined detail"),
                 ("definition", "clearer edge definition"), ("sharper", "sharper fine detail")),
        "bad": (("soft", "softness"), ("blur", "blurring of fine detail"),
                ("definition", "weaker definition"), ("clarity", "a loss of clarity")),
    },
    "Texture": {
        "good": (("natural", "more natural texture"), ("high-frequency", "richer high-frequency detail"),
                 ("fine", "finer texture detail"), ("preserv", "better texture preservation")),
        "bad": (("smearing", "smearing of fine texture"), ("waxy", "a waxy, over-smoothed look"),
                ("oil-painting", "an oil-painting effect"), ("loss", "texture loss"),
                ("flat", "flat, smoothed texture")),
    },
    "Noise": {
        "good": (("clean", "a cleaner rendering"), ("signal-to-noise", "a better signal-to-noise ratio"),
                 ("control", "better noise control")),
        "bad": (("noise", "visible noise"), ("grain", "grain"),
                ("mid-to-dark", "noise in the mid-to-dark tones"), ("color", "color noise blotches")),
    },
    "Artifacts": {
        "good": (("clean", "cleaner edges"), ("artifacts", "fewer artifacts"), ("natural", "natural transitions")),
        "bad": (("halos", "black-and-white halos along edges"), ("over-sharpening", "over-sharpening artifacts"),
                ("compression", "compression artifacts"), ("block", "blocking and ringing")),
    },
    "Realism": {
        "good": (("natural", "a more natural appearance"), ("realistic", "a more realistic rendering"),
                 ("authentic", "a more authentic look")),
        "bad": (("artificial", "an artificial, over-processed look"), ("unnatural", "unnatural tonality"),
                ("color", "a slight color cast")),
    },
}
# Cause-specific bad phrases (a comparison may name the defect behind it).
CAUSE_PHRASES: dict[str, tuple[str, ...]] = {
    "luma_noise": ("luminance noise in the mid-to-dark tones", "grain in the shadows and mid-tones", "visible noise"),
    "chroma_noise": ("color noise blotches", "chroma noise in the darker areas"),
    "oversharpen": ("black-and-white halos from over-sharpening", "over-sharpening halos along edges",
                    "brittle, over-sharpened edges"),
    "denoise_smear": ("smearing of fine texture", "a waxy, over-smoothed texture", "an oil-painting effect"),
    "defocus": ("defocus softness", "blurring of fine detail", "softness"),
    "jpeg": ("compression artifacts", "blocking and ringing", "compression blockiness"),
    "exposure": ("an exposure shift", "a brightness shift that flattens the tones"),
    "white_balance": ("a color cast", "an off white balance"),
}
LOCATIONS: dict[str, tuple[str, ...]] = {
    "Face": ("in the facial details", "on the face"), "Skin": ("on the skin", "in the skin areas"),
    "Hair": ("in the hair strands", "along the hair"), "Clothing": ("in the clothing fabric", "on the clothing"),
    "Global": ("across the image", "throughout the frame"), "Background": ("in the background",),
    "Building": ("on the building surfaces", "in the architectural details"),
    "Vegetation": ("in the foliage", "in the leaves and greenery"),
    "Edges": ("along the edges", "along object contours"),
}
NOUNS = {"Sharpness": "sharpness", "Texture": "texture detail", "Noise": "noise levels",
         "Artifacts": "artifact levels", "Realism": "realism"}
ADVANTAGES = {"Sharpness": "{r}sharpness", "Texture": "{r}texture", "Noise": "{r}noise control",
              "Artifacts": "cleaner {r}edges", "Realism": "{r}realism"}
# Candidate words that the miner counts; the writer picks among those found, by frequency.
SIDE_STYLES = ("paren", "slash", "bare")
CONNECTIVES = ("while", "whereas", "but", "in contrast")
GOOD_VERBS = ("shows", "exhibits", "presents", "demonstrates", "displays", "maintains", "retains", "preserves")
BAD_VERBS = ("shows", "exhibits", "displays", "suffers from", "presents")
INTENSITY = {0: ("slight", "minor", "mild"), 1: ("noticeable", "visible", "moderate"),
             2: ("significant", "heavy", "pronounced", "severe")}
SHAPES = ("winner_first", "loser_first", "comparative", "similar")
FALLBACK_COUNTS: dict[str, dict[str, int]] = {
    "side": {s: 1 for s in SIDE_STYLES}, "connective": {c: 1 for c in CONNECTIVES[:2]},
    "good_verb": {v: 1 for v in GOOD_VERBS[:4]}, "bad_verb": {v: 1 for v in BAD_VERBS[:3]},
    "shape": {s: 1 for s in SHAPES}, "intensity": {w: 1 for ws in INTENSITY.values() for w in ws},
}

_GOOD_WORDS = re.compile(r"\b(better|superior|cleaner|sharper|finer|richer|more natural|crisper|clearer|preserv\w*|"
                         r"maintain\w*|excel\w*|advantage|higher|realistic)\b", re.IGNORECASE)
_BAD_WORDS = re.compile(r"\b(noise|noisy|smear\w*|halo\w*|artifact\w*|blur\w*|soft\w*|loss|lacks?|suffers?|"
                        r"waxy|unnatural|artificial|over-\w+|worse|weaker|smudg\w*|oil-painting)\b", re.IGNORECASE)
_SIDE_RE = {"paren": re.compile(r"Image [AB] \((?:Left|Right)\)"), "slash": re.compile(r"Image [AB]/(?:Left|Right)"),
            "bare": re.compile(r"Image [AB](?! ?[(/])")}


@dataclass
class Vocabulary:
    """Mined frequencies (name -> Counter) and the heading counts; `source` says where they came from."""

    counts: dict[str, Counter]
    headings: Counter = field(default_factory=Counter)
    source: str = "fallback"
    n_lines: int = 0

    def weights(self, kind: str, options: Sequence[str]) -> np.ndarray:
        """Sampling weights of `options` (one plus the mined count, so unseen options stay possible
        only when nothing was mined for any of them)."""
        c = self.counts.get(kind, Counter())
        found = np.array([c.get(o, 0) for o in options], dtype=float)
        w = found if found.sum() > 0 else np.ones(len(options))
        return w / w.sum()

    def pick(self, kind: str, options: Sequence[str], rng: np.random.Generator) -> str:
        return options[int(rng.choice(len(options), p=self.weights(kind, options)))]


@dataclass(frozen=True)
class Comparison:
    """One region/attribute comparison: verdict "A", "B" or "similar", strength >= 0, optional cause."""

    region: str
    attribute: str
    verdict: str
    strength: float = 0.0
    cause: str | None = None


def _shape_of(line: str) -> str:
    body = line.split(":", 1)[-1]
    low = body.lower()
    if re.match(r"\s*(both|neither)\b", low) or re.search(r"\b(similar|comparable|no significant difference)\b", low):
        return "similar"
    if re.search(r"\bcompared (to|with)\b|\bthan\b", low):
        return "comparative"
    parts = re.split(r"\b(?:while|whereas|but|in contrast)\b", body, maxsplit=1, flags=re.IGNORECASE)
    first = parts[0]
    good, bad = len(_GOOD_WORDS.findall(first)), len(_BAD_WORDS.findall(first))
    return "loser_first" if bad > good else "winner_first"


def mine_lines(lines: Iterable[str], source: str = "lines") -> Vocabulary:
    """Count headings, side styles, shapes, contrast words, verbs and descriptor terms in `lines`."""
    counts: dict[str, Counter] = {k: Counter() for k in ("side", "connective", "good_verb", "bad_verb", "shape",
                                                          "intensity")}
    headings: Counter = Counter()
    n = 0
    for line in lines:
        if ":" not in line:
            continue
        n += 1
        heading, body = line.split(":", 1)
        headings[heading.strip()] += 1
        low = body.lower()
        for style, rx in _SIDE_RE.items():
            counts["side"][style] += len(rx.findall(body))
        for c in CONNECTIVES:
            counts["connective"][c] += len(re.findall(rf"\b{c}\b", low))
        for v in GOOD_VERBS:
            counts["good_verb"][v] += len(re.findall(rf"\b{v}\b", low))
        for v in BAD_VERBS:
            counts["bad_verb"][v] += len(re.findall(rf"\b{v}\b", low))
        for ws in INTENSITY.values():
            for w in ws:
                counts["intensity"][w] += len(re.findall(rf"\b{w}\b", low))
        counts["shape"][_shape_of(line)] += 1
        for attribute in ATTRIBUTES:
            key = f"term:{attribute}"
            counts.setdefault(key, Counter())
            if attribute.lower() in heading.lower():
                for polarity in ("good", "bad"):
                    for term, _ in PHRASES[attribute][polarity]:
                        counts[key][term] += low.count(term)
    return Vocabulary(counts, headings, source, n)


def raim_lines(folder: str | Path | None = None) -> list[str]:
    """The rationale lines of the public RAIM-PIQA SFT file (read in place), or [] when absent."""
    from idiff_lib.data.pairs import read_pairs

    folder = Path(folder) if folder else paths.raim_dir()
    if folder is None or not (folder / "train_sft_1536.jsonl").exists():
        return []
    return [ln for p in read_pairs(folder / "train_sft_1536.jsonl") for ln in p.thinking.splitlines() if ln.strip()]


@lru_cache(maxsize=4)
def mine_vocabulary(folder: str | None = None) -> Vocabulary:
    """The vocabulary mined from the public rationales, or the fallback when they are absent."""
    lines = raim_lines(folder)
    if not lines:
        return Vocabulary({k: Counter(v) for k, v in FALLBACK_COUNTS.items()}, Counter(), "fallback", 0)
    return mine_lines(lines, source=str(folder or paths.raim_dir()))


# ---------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------
def side_ref(letter: str, style: str) -> str:
    side = "Left" if letter == "A" else "Right"
    return {"paren": f"Image {letter} ({side})", "slash": f"Image {letter}/{side}"}.get(style, f"Image {letter}")


def _check(category: str, comparisons: Sequence[Comparison], answer: str) -> None:
    if answer not in ANSWERS:
        raise ParameterError(f"answer must be 'A' or 'B', got {answer!r}")
    if category not in ("person", "scene"):
        raise ParameterError(f"category must be 'person' or 'scene', got {category!r}")
    regions = PERSON_REGIONS if category == "person" else SCENE_REGIONS
    for c in comparisons:
        if c.region not in regions:
            raise ParameterError(f"region {c.region!r} is not a {category} region ({', '.join(regions)})")
        if c.attribute not in ATTRIBUTES:
            raise ParameterError(f"attribute {c.attribute!r} is not one of {', '.join(ATTRIBUTES)}")
        if c.verdict not in VERDICTS:
            raise ParameterError(f"verdict must be one of {VERDICTS}, got {c.verdict!r}")


def _phrase(vocab: Vocabulary, attribute: str, polarity: str, rng: np.random.Generator) -> str:
    options = PHRASES[attribute][polarity]
    term = vocab.pick(f"term:{attribute}", [t for t, _ in options], rng)
    return dict(options)[term]


def _intensity(vocab: Vocabulary, strength: float, rng: np.random.Generator) -> str:
    level = 0 if strength < 0.15 else 1 if strength < 0.4 else 2
    return vocab.pick("intensity", INTENSITY[level], rng)


def write_line(c: Comparison, vocab: Vocabulary, style: str, rng: np.random.Generator) -> str:
    """One ``Region Attribute: sentence`` line for comparison `c`."""
    heading = f"{c.region} {c.attribute}"
    loc = str(rng.choice(LOCATIONS[c.region]))
    if c.verdict == "similar":
        a, b = side_ref("A", style), side_ref("B", style)
        if rng.random() < 0.5:
            return f"{heading}: Both images show similar {NOUNS[c.attribute]} {loc}, with no clear difference."
        return f"{heading}: No significant difference in {NOUNS[c.attribute]} is observed {loc} between {a} and {b}."
    winner, loser = side_ref(c.verdict, style), side_ref("B" if c.verdict == "A" else "A", style)
    good = _phrase(vocab, c.attribute, "good", rng)
    causes = CAUSE_PHRASES.get(c.cause or "")
    bad = str(rng.choice(causes)) if causes else _phrase(vocab, c.attribute, "bad", rng)
    bad = f"{_intensity(vocab, c.strength, rng)} {bad}" if not bad.startswith(("a ", "an ")) else bad
    gv, bv = vocab.pick("good_verb", GOOD_VERBS, rng), vocab.pick("bad_verb", BAD_VERBS, rng)
    conn = vocab.pick("connective", CONNECTIVES, rng)
    shape = vocab.pick("shape", SHAPES[:3], rng)
    if shape == "loser_first":
        return f"{heading}: {loser} {bv} {bad} {loc}, {conn} {winner} {gv} {good}."
    if shape == "comparative":
        return f"{heading}: {winner} {gv} {good} {loc} compared to {loser}, which {bv} {bad}."
    return f"{heading}: {winner} {gv} {good} {loc}, {conn} {loser} {bv} {bad}."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def summary_line(comparisons: Sequence[Comparison], answer: str, style: str, rng: np.random.Generator) -> str:
    """The ``Global Overall:`` line: states `answer`, and the loser's advantages when there are any."""
    loser = "B" if answer == "A" else "A"

    def aspects(letter: str) -> list[str]:
        ranked = sorted((c for c in comparisons if c.verdict == letter), key=lambda c: -c.strength)
        out: list[str] = []
        covered: set[str] = set()
        for c in ranked:
            if c.attribute in covered:
                continue
            covered.add(c.attribute)
            prefix = "" if c.region == "Global" else c.region.lower() + " "
            name = ADVANTAGES[c.attribute].format(r=prefix)
            if name not in out:
                out.append(name)
        return out[:3]

    w, lo = side_ref(answer, style), side_ref(loser, style)
    wins, losses = aspects(answer), aspects(loser)
    reason = _join(wins) if wins else "its more consistent rendering"
    if losses:
        if rng.random() < 0.5:
            return (f"{SUMMARY_HEADING}: Although {lo} has an advantage in {_join(losses)}, {w} is better overall "
                    f"thanks to its {reason}.")
        return f"{SUMMARY_HEADING}: {w} is better overall thanks to its {reason}; {lo} only leads in {_join(losses)}."
    return f"{SUMMARY_HEADING}: {w} delivers the better overall quality, leading in {reason}."


def write_rationale(category: str, comparisons: Iterable[Comparison | tuple], answer: str,
                    rng: np.random.Generator | int | None = None, *, vocabulary: Vocabulary | None = None,
                    min_lines: int = 4, max_lines: int = 7) -> str:
    """A RAIM-style completion: 3-6 comparison lines plus a ``Global Overall`` line agreeing with `answer`.

    Args:
        category: "person" (regions Face, Hair, Clothing, Skin, Global) or "scene" (Global,
            Background, Building, Vegetation, Edges).
        comparisons: `Comparison`s or (region, attribute, verdict, strength[, cause]) tuples;
            the strongest decisive ones are written first, then "similar" ones to fill.
        answer: "A" or "B".
        rng: randomness for the phrasing (a Generator or a seed).
        vocabulary: defaults to `mine_vocabulary()`.
        min_lines / max_lines: bounds on the line count, the summary line included.

    Returns:
        ``<thinking>...</thinking>\\n<answer>X</answer>``.

    Raises:
        ParameterError: unknown category, region, attribute, verdict or answer.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    vocab = vocabulary or mine_vocabulary()
    comps = [c if isinstance(c, Comparison) else Comparison(*c) for c in comparisons]
    _check(category, comps, answer)
    decisive = sorted((c for c in comps if c.verdict != "similar"), key=lambda c: -c.strength)
    similar = [c for c in comps if c.verdict == "similar"]
    rng.shuffle(similar)
    # RAIM rationales are short (about three lines): mostly 3-4 comparison lines, more when needed.
    n_content = int(np.clip(rng.integers(3, 6), min_lines - 1, max_lines - 1))
    chosen: list[Comparison] = []
    seen: set[tuple[str, str]] = set()
    # Decisive lines on attributes not yet covered first, then the rest, then "similar" ones.
    attributes_seen: set[str] = set()
    firsts = []
    for c in decisive:
        if c.attribute not in attributes_seen:
            firsts.append(c)
            attributes_seen.add(c.attribute)
    if answer in {c.verdict for c in decisive} and not any(c.verdict == answer for c in firsts[:n_content]):
        firsts.insert(0, next(c for c in decisive if c.verdict == answer))
    for c in firsts + decisive + similar:
        if len(chosen) < n_content and (c.region, c.attribute) not in seen:
            chosen.append(c)
            seen.add((c.region, c.attribute))
    regions = PERSON_REGIONS if category == "person" else SCENE_REGIONS
    while len(chosen) < n_content:  # pad with neutral lines on headings not yet used
        free = [(r, a) for r in regions for a in ATTRIBUTES if (r, a) not in seen]
        r, a = free[int(rng.integers(len(free)))]
        chosen.append(Comparison(r, a, "similar"))
        seen.add((r, a))
    if not any(c.verdict == answer for c in chosen):
        raise ParameterError(f"no comparison favours the answer {answer}: a rationale needs at least one reason")
    style = vocab.pick("side", SIDE_STYLES, rng)
    lines = [write_line(c, vocab, style, rng) for c in chosen]
    lines.append(summary_line(chosen, answer, style, rng))
    return format_completion(lines, answer)
