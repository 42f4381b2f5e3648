"""The verdict reader: which image a rationale sentence favours ("A", "B", "similar", "mixed").

Hand-written, on purpose: an NLI or sentiment model would need weights this workbench cannot
download. It is a small lexicon method in the spirit of VADER (Hutto & Gilbert, ICWSM 2014):
clauses are split at contrast words, each clause's subject image is found ("Image A (Left)",
"Image B/Right", "the left image", "both"), and quality words score it, flipped by negations
("no", "without", "does not") and diminishers ("less noise", "reduced smearing").
"""

from __future__ import annotations

import re

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
