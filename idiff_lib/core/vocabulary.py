"""RAIM-style rationale templates mined from the public rationales, and the writer that fills them.

A RAIM-PIQA rationale (NTIRE 2026 RAIM challenge, Track 1) is a few ``Region Attribute:
comparison`` lines and a closing ``Global Overall:`` line. `mine_vocabulary` measures, by code,
in (category, rationale) texts:

- which ``Region Attribute`` headings occur and how often (per content category, for the
  Thinking Model's S1 templates);
- how the images are referred to ("Image A (Left)", "Image A/Left", "Image A");
- the sentence shapes (winner first / loser first with a contrast word, "compared to",
  "both ... similar") and the contrast words and verbs they use;
- which descriptor terms of each attribute occur ("smearing", "halos", "mid-to-dark", ...).

The counts mined from the 100 public RAIM-PIQA rationales are committed, counts only, in
``idiff_lib/configs/raim_vocabulary.json`` (`raim_vocabulary()`), so every clone writes the same
text whether or not the public files sit beside it; `remine_raim_vocabulary` (``idiff think
mine-vocabulary``) rewrites that file from a RAIM-PIQA folder.

No sentence is copied: the writer composes its own sentences from skeletons (`SHAPES`) and a
phrase bank (`PHRASES`), choosing among them with the mined frequencies. The phrase bank and the
shape classifier are hand-written: no maintained library generates or classifies these domain
sentences offline.

`write_rationale(category, comparisons, answer)` is the general template writer: the demo-set
generator uses it for its reference rationales, and the Thinking Model can use it as a baseline.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.core.ontology import (ANSWERS, CATEGORIES, OTHER_ANSWER, REFERENCE_ATTRIBUTES, REFERENCE_PERSON_REGIONS,
                                     REFERENCE_SCENE_REGIONS, REFERENCE_VERDICTS, SIDE_NAMES, SUMMARY_HEADING,
                                     TEMPLATE_REGION_WORDS, format_completion, headings_of, template_heading)

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
# The S1 template of a category has 4-7 ``Region Attribute`` lines before the summary line.
MIN_LINES, MAX_LINES = 4, 7
# Template headings for a region no mined rationale names (most frequent headings of the public
# RAIM-PIQA rationales, per category, completed with the required regions); also the Thinking
# Model's prompt template when no vocabulary is given.
FALLBACK_HEADINGS: dict[str, tuple[str, ...]] = {
    "person": ("Face Texture", "Face Sharpness", "Hair Texture", "Clothing Texture", "Global Sharpness", "Global Noise"),
    "scene": ("Background Texture", "Building Sharpness", "Vegetation Texture", "Edges Sharpness", "Global Sharpness",
              "Global Noise"),
    "generic": ("Global Sharpness", "Global Texture", "Global Noise", "Global Artifacts"),
}
# The public rationales' file in a RAIM-PIQA folder, and the committed counts mined from it.
RAIM_SFT_FILE = "train_sft_1536.jsonl"
RAIM_VOCABULARY_FILE = Path(__file__).resolve().parents[1] / "configs" / "raim_vocabulary.json"
RAIM_ORIGIN = ("train_sft_1536.jsonl of the public RAIM-PIQA training annotations (NTIRE 2026 RAIM challenge, "
               "Track 1): github.com/narthchin/RAIM-PIQA, folder data/1536/, commit "
               "a5ff37ca8dfea4f0e21649960aae8d294602222d, MIT licence, Copyright (c) 2026 Guanyi Qin")

_GOOD_WORDS = re.compile(r"\b(better|superior|cleaner|sharper|finer|richer|more natural|crisper|clearer|preserv\w*|"
                         r"maintain\w*|excel\w*|advantage|higher|realistic)\b", re.IGNORECASE)
_BAD_WORDS = re.compile(r"\b(noise|noisy|smear\w*|halo\w*|artifact\w*|blur\w*|soft\w*|loss|lacks?|suffers?|"
                        r"waxy|unnatural|artificial|over-\w+|worse|weaker|smudg\w*|oil-painting)\b", re.IGNORECASE)
_SIDE_RE = {"paren": re.compile(r"Image [AB] \((?:Left|Right)\)"), "slash": re.compile(r"Image [AB]/(?:Left|Right)"),
            "bare": re.compile(r"Image [AB](?! ?[(/])")}


@dataclass(frozen=True)
class Vocabulary:
    """What `mine_vocabulary` counted in rationales, and the S1 templates chosen from those counts.

    Attributes:
        counts: phrasing frequencies by kind ("side", "connective", "good_verb", "bad_verb", "shape",
            "intensity", "term:<Attribute>") -> Counter; `weights` and `pick` read them.
        headings: line headings as written -> count.
        source: where the counts came from (for the notebooks' narrative).
        n_lines: how many ``Heading: text`` lines were counted.
        heading_counts: category ("person", "scene", "generic") -> normalised template heading
            (``"Face Texture"``) -> count.
        templates: category -> the template headings, most frequent first (4-7, covering the
            category's required regions); None = chosen from `heading_counts`.
        n_texts: how many rationales were counted (0: not recorded).
    """

    counts: dict[str, Counter] = field(default_factory=dict)
    headings: Counter = field(default_factory=Counter)
    source: str = "fallback"
    n_lines: int = 0
    heading_counts: dict[str, Counter] = field(default_factory=dict)
    templates: dict[str, tuple[str, ...]] | None = None
    n_texts: int = 0

    def __post_init__(self) -> None:
        if self.templates is None:
            object.__setattr__(self, "templates", choose_templates(self.heading_counts))

    def for_category(self, category: str | None) -> tuple[str, ...]:
        """The template headings of a category ("generic" for None or an unknown category)."""
        found = self.templates.get(category or "generic") or self.templates.get("generic")
        return found or FALLBACK_HEADINGS["generic"]

    def plus(self, other: "Vocabulary") -> "Vocabulary":
        """Both vocabularies' counts added (as if mined from both texts at once), templates chosen afresh."""

        def added(a: Counter, b: Counter) -> Counter:
            out = Counter(a)
            out.update(b)  # a's keys keep their order, b's new keys follow: ties rank as in one pass
            return out

        kinds = {**self.counts, **other.counts}
        categories = {**self.heading_counts, **other.heading_counts}
        return Vocabulary({k: added(self.counts.get(k, Counter()), other.counts.get(k, Counter())) for k in kinds},
                          added(self.headings, other.headings), f"{self.source} + {other.source}",
                          self.n_lines + other.n_lines,
                          {c: added(self.heading_counts.get(c, Counter()), other.heading_counts.get(c, Counter()))
                           for c in categories}, n_texts=self.n_texts + other.n_texts)

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
    """Count headings, side styles, shapes, contrast words, verbs and descriptor terms in `lines`.

    The lines carry no category, so the templates are the fallback ones; `mine_vocabulary` also
    counts the template headings per category.
    """
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
        for attribute in REFERENCE_ATTRIBUTES:
            key = f"term:{attribute}"
            counts.setdefault(key, Counter())
            if attribute.lower() in heading.lower():
                for polarity in ("good", "bad"):
                    for term, _ in PHRASES[attribute][polarity]:
                        counts[key][term] += low.count(term)
    return Vocabulary(counts, headings, source, n)


def _template_heading_counts(texts: Iterable[tuple[str | None, str]]) -> dict[str, Counter]:
    """Normalised template headings per category ("generic" for a pair of unknown category)."""
    counts: dict[str, Counter] = {c: Counter() for c in (*CATEGORIES, "generic")}
    for category, text in texts:
        for raw in headings_of(text):
            heading = template_heading(raw)
            if heading is not None:  # None: no attribute word, e.g. the "Global Overall" summary
                counts[category if category in CATEGORIES else "generic"][heading] += 1
    return counts


def choose_templates(heading_counts: dict[str, Counter]) -> dict[str, tuple[str, ...]]:
    """Each category's S1 template from the heading counts.

    For each category, every required region gets its most frequent attribute (the fallback's
    when the region never occurs), then the most frequent other headings fill the template up to
    `MAX_LINES - 1`; the summary line is added by the prompt. At least `MIN_LINES` headings result.
    """
    counts = {c: heading_counts.get(c, Counter()) for c in (*CATEGORIES, "generic")}
    templates: dict[str, tuple[str, ...]] = {}
    for category in CATEGORIES:
        chosen: list[str] = []
        ranked = [h for h, _ in sorted(counts[category].items(), key=lambda kv: (-kv[1], kv[0]))]
        for region in TEMPLATE_REGION_WORDS[category]:
            mine = [h for h in ranked if h.split()[0] == region]
            fallback = [h for h in FALLBACK_HEADINGS[category] if h.split()[0] == region]
            chosen.append((mine or fallback)[0])
        for h in ranked + list(FALLBACK_HEADINGS[category]):
            if len(chosen) >= MAX_LINES - 1:
                break
            if h not in chosen and (len(chosen) < MIN_LINES or counts[category][h] >= 2):
                chosen.append(h)
        templates[category] = tuple(chosen)
    all_counts = counts["person"] + counts["scene"] + counts["generic"]
    generic = [h for h, _ in all_counts.most_common() if h.startswith("Global ")][: MAX_LINES - 1]
    templates["generic"] = tuple(generic) if len(generic) >= MIN_LINES else FALLBACK_HEADINGS["generic"]
    return templates


def mine_vocabulary(texts: Iterable[tuple[str | None, str]], source: str = "mined") -> Vocabulary:
    """Everything the writers and the prompts learn from (category, rationale) texts: phrasing and templates."""
    texts = list(texts)
    phrasing = mine_lines([ln for _, text in texts for ln in text.splitlines() if ln.strip()], source)
    return Vocabulary(phrasing.counts, phrasing.headings, source, phrasing.n_lines, _template_heading_counts(texts),
                      n_texts=len(texts))


def _counter_table(table: dict[str, Counter]) -> dict[str, dict[str, int]]:
    return {k: dict(v) for k, v in table.items()}


def vocabulary_counts(vocabulary: Vocabulary) -> dict:
    """The JSON form of a vocabulary's counts (no text but headings and single words)."""
    return {"source": vocabulary.source, "n_lines": vocabulary.n_lines, "n_texts": vocabulary.n_texts,
            "phrasing": _counter_table(vocabulary.counts), "line_headings": dict(vocabulary.headings),
            "template_heading_counts": _counter_table(vocabulary.heading_counts)}


def read_vocabulary_counts(path: str | Path) -> Vocabulary:
    """A vocabulary from counts written by `remine_raim_vocabulary` (the key order is the mining order)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Vocabulary({k: Counter(v) for k, v in data["phrasing"].items()}, Counter(data["line_headings"]),
                          data["source"], int(data["n_lines"]),
                          {k: Counter(v) for k, v in data["template_heading_counts"].items()},
                          n_texts=int(data.get("n_texts", 0)))
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise DataError(path, f"cannot read the vocabulary counts ({exc})", "restore the file from git, or "
                        "rewrite it: idiff think mine-vocabulary --raim-dir FOLDER") from exc


@lru_cache(maxsize=1)
def raim_vocabulary() -> Vocabulary:
    """The public rationales' vocabulary: the committed counts (``RAIM_VOCABULARY_FILE``).

    Nothing outside the repository is read; `idiff_lib.data.raim_rationales.mine_raim_folder` mines
    the counts afresh from a RAIM-PIQA folder.
    """
    return read_vocabulary_counts(RAIM_VOCABULARY_FILE)


# ---------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------
def side_ref(letter: str, style: str) -> str:
    side = SIDE_NAMES.get(letter, "Right")
    return {"paren": f"Image {letter} ({side})", "slash": f"Image {letter}/{side}"}.get(style, f"Image {letter}")


def _check(category: str, comparisons: Sequence[Comparison], answer: str) -> None:
    if answer not in ANSWERS:
        raise ParameterError(f"answer must be 'A' or 'B', got {answer!r}")
    if category not in ("person", "scene"):
        raise ParameterError(f"category must be 'person' or 'scene', got {category!r}")
    regions = REFERENCE_PERSON_REGIONS if category == "person" else REFERENCE_SCENE_REGIONS
    for c in comparisons:
        if c.region not in regions:
            raise ParameterError(f"region {c.region!r} is not a {category} region ({', '.join(regions)})")
        if c.attribute not in REFERENCE_ATTRIBUTES:
            raise ParameterError(f"attribute {c.attribute!r} is not one of {', '.join(REFERENCE_ATTRIBUTES)}")
        if c.verdict not in REFERENCE_VERDICTS:
            raise ParameterError(f"verdict must be one of {REFERENCE_VERDICTS}, got {c.verdict!r}")


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
    winner, loser = side_ref(c.verdict, style), side_ref(OTHER_ANSWER[c.verdict], style)
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
    loser = OTHER_ANSWER[answer]

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
        vocabulary: defaults to `raim_vocabulary()` (the committed counts).
        min_lines / max_lines: bounds on the line count, the summary line included.

    Returns:
        ``<thinking>...</thinking>\\n<answer>X</answer>``.

    Raises:
        ParameterError: unknown category, region, attribute, verdict or answer.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    vocab = vocabulary or raim_vocabulary()
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
    regions = REFERENCE_PERSON_REGIONS if category == "person" else REFERENCE_SCENE_REGIONS
    while len(chosen) < n_content:  # pad with neutral lines on headings not yet used
        free = [(r, a) for r in regions for a in REFERENCE_ATTRIBUTES if (r, a) not in seen]
        r, a = free[int(rng.integers(len(free)))]
        chosen.append(Comparison(r, a, "similar"))
        seen.add((r, a))
    if not any(c.verdict == answer for c in chosen):
        raise ParameterError(f"no comparison favours the answer {answer}: a rationale needs at least one reason")
    style = vocab.pick("side", SIDE_STYLES, rng)
    lines = [write_line(c, vocab, style, rng) for c in chosen]
    lines.append(summary_line(chosen, answer, style, rng))
    return format_completion(lines, answer)
