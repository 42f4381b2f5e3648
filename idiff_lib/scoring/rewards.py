"""The challenge baseline's two rewards, a stricter format check, and the ``<thinking>`` text.

`format_reward` and `accuracy_reward` reproduce the GRPO rewards of the NTIRE 2026 RAIM challenge
baseline exactly (``narthchin/RAIM-PIQA`` ``plugins/reward_funcs.py``, commit 392f842). The
stricter `format_check` also counts empty, untagged, two-answer and non-UTF-8 predictions as
format failures (the baseline's pattern accepts two answers).

The rewards also take what a generator may hand back broken: an empty completion, or bytes (or a
string holding lone surrogates) that are not UTF-8. Both get 0, as the baseline would, but are
counted in a `RewardLog` (the module's `REWARD_LOG` unless one is given), so a training log can say
how many completions were rejected instead of rewarding them 0 in silence.

`consistency_reward` is ours, not the baseline's (off by default in GRPO): 1.0 when the rationale's
overall line ("Global Overall: ...") prefers the same image as its own ``<answer>``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from idiff_lib.data.pairs import answer_tags
from idiff_lib.scoring.parser import parse_rationale

# The baseline's regular expressions, verbatim (RAIM-PIQA plugins/reward_funcs.py).
_BASELINE_ANSWER_RE = re.compile(r"<answer>\s*([A-Z])\s*</answer>", re.IGNORECASE)
_BASELINE_FORMAT_RE = re.compile(r"(?s)" r".*?" r"<thinking>.*?</thinking>" r"\s*" r"<answer>.*?</answer>" r".*")
# The two patterns as text, for the ms-swift reward plugin that `thinking.swift_export` writes.
BASELINE_PATTERNS = {"answer": _BASELINE_ANSWER_RE.pattern, "format": _BASELINE_FORMAT_RE.pattern}
_THINKING_RE = re.compile(r"<thinking>(.*?)</thinking>", re.DOTALL)
_TAG_RE = re.compile(r"<\s*(/?)\s*(thinking|answer)\s*>", re.IGNORECASE)


@dataclass
class RewardLog:
    """Counts of completions a reward refused before reading them.

    Attributes:
        counts: (reward name, reason) -> completions, reason "empty" (None, "" or only spaces) or
            "non-utf8" (bytes that do not decode, or a string with lone surrogates).
    """

    counts: Counter = field(default_factory=Counter)

    def add(self, reward: str, reason: str) -> None:
        self.counts[(reward, reason)] += 1

    def summary(self) -> dict[str, int]:
        """``{"accuracy/empty": 2, ...}``, for a metrics file or a trainer's log."""
        return {f"{name}/{reason}": n for (name, reason), n in sorted(self.counts.items())}

    def reset(self) -> None:
        self.counts.clear()


# The log the rewards count into when the caller gives none.
REWARD_LOG = RewardLog()


def readable_completion(completion: object, reward: str = "reward", log: RewardLog | None = None) -> str | None:
    """The completion as text, or None (counted in `log`) when it is empty or not valid UTF-8."""
    log = REWARD_LOG if log is None else log
    text = completion
    if isinstance(completion, (bytes, bytearray)):
        try:
            text = bytes(completion).decode("utf-8")
        except UnicodeDecodeError:
            log.add(reward, "non-utf8")
            return None
    if text is None or (isinstance(text, str) and not text.strip()):
        log.add(reward, "empty")
        return None
    if not isinstance(text, str):
        log.add(reward, "not-text")
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from decode(errors="surrogateescape")
        log.add(reward, "non-utf8")
        return None
    return text


def format_reward(completion: str | bytes | None, log: RewardLog | None = None) -> float:
    """The baseline's format reward: 1.0 when ``<thinking>..</thinking>\\s*<answer>..</answer>``
    occurs (DOTALL, anything before or after), else 0.0 (empty or non-UTF-8 input: 0.0, counted in `log`)."""
    completion = readable_completion(completion, "format", log)
    if completion is None:
        return 0.0
    return 1.0 if (_BASELINE_FORMAT_RE.fullmatch(completion) or _BASELINE_FORMAT_RE.match(completion)) else 0.0


def baseline_letter(text: str | None) -> str | None:
    """The baseline's answer reading: the first ``<answer> X </answer>`` with one letter, upper-cased.

    The baseline's own regex, kept for the reward's exact numbers. It agrees with the project's rule
    (`idiff_lib.data.pairs.answer_tags`: the first tag counts) on every text with one answer tag
    holding a bare letter; references with more than one tag are refused when read, and
    predictions with more fail `format_check`.
    """
    if not isinstance(text, str):
        return None
    m = _BASELINE_ANSWER_RE.search(text)
    return m.group(1).upper() if m else None


def accuracy_reward(completion: str | bytes | None, solution: str | None, log: RewardLog | None = None) -> float:
    """The baseline's accuracy reward: 1.0 when the single capital letter in ``<answer>`` equals
    the reference's, else 0.0 (empty or non-UTF-8 completion: 0.0, counted in `log`)."""
    completion = readable_completion(completion, "accuracy", log)
    gt, pred = baseline_letter(solution), baseline_letter(completion)
    return 1.0 if gt and pred and gt == pred else 0.0


def consistency_reward(completion: str | bytes | None, log: RewardLog | None = None) -> float:
    """Ours, not the baseline's: 1.0 when the rationale's overall line ("Global Overall: ...", the
    last line read as region global, attribute overall, with an A/B verdict) prefers the image that
    the completion's own ``<answer>`` names; 0.0 otherwise, also when either is missing."""
    completion = readable_completion(completion, "consistency", log)
    answer = baseline_letter(completion)
    if answer is None:
        return 0.0
    overall = [a.verdict for a in parse_rationale(raw_thinking(completion))
               if a.region == "global" and a.attribute == "overall" and a.verdict in ("A", "B")]
    return 1.0 if overall and overall[-1] == answer else 0.0


def format_check(completion: str | None) -> list[str]:
    """Every reason a prediction is not one well-formed ``<thinking>..</thinking><answer>A|B</answer>``.

    Returns:
        An empty list for a well-formed prediction, else the problems, e.g. ["2 <answer> tags"].
    """
    if completion is None:
        return ["missing completion"]
    if not isinstance(completion, str):
        return [f"completion is {type(completion).__name__}, not text"]
    if not completion.strip():
        return ["empty completion"]
    problems = []
    tags = [(m.group(1) == "/", m.group(2).lower()) for m in _TAG_RE.finditer(completion)]
    for name in ("thinking", "answer"):
        opens = sum(1 for closing, n in tags if n == name and not closing)
        closes = sum(1 for closing, n in tags if n == name and closing)
        if opens == 0 and closes == 0:
            problems.append(f"missing <{name}>")
        elif opens != 1 or closes != 1:
            problems.append(f"{max(opens, closes)} <{name}> tags" if max(opens, closes) > 1
                            else f"unbalanced <{name}> tags")
    if not problems and format_reward(completion) == 0.0:
        problems.append("tags out of order or not lower case")
    if not problems:
        m = _THINKING_RE.search(completion)
        if not m or not m.group(1).strip():
            problems.append("empty <thinking>")
        answers = answer_tags(completion)
        if answers and answers[0].strip() not in ("A", "B"):
            problems.append(f"answer {answers[0].strip()[:20]!r} is not A or B")
    return problems


def thinking_text(completion: str | None) -> str:
    """The text inside the first ``<thinking>...</thinking>``, whitespace collapsed; "" if none."""
    if not isinstance(completion, str):
        return ""
    m = _THINKING_RE.search(completion)
    return " ".join(m.group(1).split()) if m else ""


def raw_thinking(completion: str | None) -> str:
    """The text inside the first ``<thinking>...</thinking>`` as written (line breaks kept); "" if none."""
    if not isinstance(completion, str):
        return ""
    m = _THINKING_RE.search(completion)
    return m.group(1) if m else ""
