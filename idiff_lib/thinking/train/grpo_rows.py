"""GRPO rows, checked before anything trains or is exported: every solution holds an answer, no prompt its solution.

A GRPO row is ``{"id", "messages" or "prompt", "images"?, "solution"}``. `check_grpo_rows` refuses a
row whose ``solution`` holds no ``<answer>`` letter (it would be rewarded 0 in silence), and
`label_leaks` refuses prompts that carry their own solution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError
from idiff_lib.scoring.rewards import baseline_letter, thinking_text

# The sentence `prompts.answer_block` opens an S4 verdict with: "Answer Model verdict: Image A (Left) ...".
_VERDICT_OPENING = "Answer Model verdict: Image "
# Below this many rows, every verdict equal to its solution is no evidence of a leak.
LEAK_MIN_ROWS = 8


def check_grpo_rows(rows: Sequence[Mapping], source: str | Path | None = None,
                    lines: Sequence[int | None] | None = None) -> None:
    """Refuse GRPO rows whose ``solution`` has no ``<answer>`` letter (they would be rewarded 0 in silence).

    Args:
        rows: the rows, as exported or read.
        source: the file they come from (named in the error).
        lines: each row's 1-based line in `source` (default: its position).

    Raises:
        DataError: naming the file and line of the first bad row, and how many there are.
    """
    bad = [i for i, row in enumerate(rows) if baseline_letter(row.get("solution")) is None]
    if not bad:
        return
    first = rows[bad[0]]
    line = lines[bad[0]] if lines is not None else bad[0] + 1
    more = f" ({len(bad)} of {len(rows)} rows)" if len(bad) > 1 else ""
    raise DataError(source, f"sample {first.get('id', '?')!r}: its solution holds no <answer>A|B</answer>{more}",
                    "give every GRPO row a solution '<thinking>...</thinking><answer>A</answer>'", line)


def read_grpo_file(path: str | Path) -> list[dict]:
    """A GRPO JSONL file, checked by `check_grpo_rows` (the same check as the export's)."""
    rows = storage.read_jsonl_rows(path)
    text_lines = Path(path).read_text(encoding="utf-8").splitlines()
    lines = [i + 1 for i, ln in enumerate(text_lines) if ln.strip()]
    check_grpo_rows(rows, path, lines)
    return rows


def prompt_text(row: Mapping) -> str:
    """Every text a GRPO row's prompt shows the model (system and user turns, or a plain prompt)."""
    prompt = row.get("prompt", row.get("messages", []))
    if isinstance(prompt, str):
        return prompt
    parts = []
    for message in prompt:
        content = message.get("content", "")
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
        parts.append(str(content))
    return "\n".join(parts)


def prompt_verdict(row: Mapping) -> str | None:
    """The S4 verdict a row's prompt carries ("A"/"B"), or None for a prompt without one."""
    text = prompt_text(row)
    at = text.find(_VERDICT_OPENING)
    if at < 0:
        return None
    letter = text[at + len(_VERDICT_OPENING):at + len(_VERDICT_OPENING) + 1]
    return letter if letter in ("A", "B") else None


def label_leaks(rows: Sequence[Mapping], min_rows: int = LEAK_MIN_ROWS) -> list[str]:
    """Why these GRPO prompts give away their solutions (empty when they do not).

    A prompt leaks when it quotes its solution's rationale or its ``<answer>`` tag, and a set of
    answer-aware prompts leaks when every verdict (of at least `min_rows`) equals its solution's
    letter: that is the label, not an Answer Model's prediction.
    """
    problems = []
    verdicts = []
    for row in rows:
        text, solution = prompt_text(row), str(row.get("solution", ""))
        rationale = thinking_text(solution)
        if rationale and rationale in " ".join(text.split()):
            problems.append(f"sample {row.get('id', '?')!r}: the prompt quotes the solution's rationale")
        if solution and solution in text:
            problems.append(f"sample {row.get('id', '?')!r}: the prompt quotes the solution")
        verdicts.append((prompt_verdict(row), baseline_letter(solution)))
    given = [(v, s) for v, s in verdicts if v is not None]
    if len(given) >= min_rows and all(v == s for v, s in given):
        problems.append(f"every one of {len(given)} prompt verdicts equals its solution's answer: the prompts "
                        "carry the labels, not the Answer Model's predictions")
    return problems
