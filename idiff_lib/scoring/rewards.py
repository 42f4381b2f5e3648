"""The challenge baseline's two rewards, a stricter format check, and the ``<thinking>`` text.

`format_reward` and `accuracy_reward` reproduce the GRPO rewards of the NTIRE 2026 RAIM challenge
baseline exactly (``narthchin/RAIM-PIQA`` ``plugins/reward_funcs.py``, commit 392f842). The
stricter `format_check` also counts empty, untagged, two-answer and non-UTF-8 predictions as
format failures (the baseline's pattern accepts two answers).
"""

from __future__ import annotations

import re

from idiff_lib.data.pairs import answer_tags

# The baseline's regular expressions, verbatim (RAIM-PIQA plugins/reward_funcs.py).
_BASELINE_ANSWER_RE = re.compile(r"<answer>\s*([A-Z])\s*</answer>", re.IGNORECASE)
_BASELINE_FORMAT_RE = re.compile(r"(?s)" r".*?" r"<thinking>.*?</thinking>" r"\s*" r"<answer>.*?</answer>" r".*")
_THINKING_RE = re.compile(r"<thinking>(.*?)</thinking>", re.DOTALL)
_TAG_RE = re.compile(r"<\s*(/?)\s*(thinking|answer)\s*>", re.IGNORECASE)


def format_reward(completion: str | None) -> float:
    """The baseline's format reward: 1.0 when ``<thinking>..</thinking>\\s*<answer>..</answer>``
    occurs (DOTALL, anything before or after), else 0.0."""
    if not isinstance(completion, str):
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


def accuracy_reward(completion: str | None, solution: str | None) -> float:
    """The baseline's accuracy reward: 1.0 when the single capital letter in ``<answer>`` equals
    the reference's, else 0.0."""
    gt, pred = baseline_letter(solution), baseline_letter(completion)
    return 1.0 if gt and pred and gt == pred else 0.0


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
