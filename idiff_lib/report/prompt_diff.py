"""What each prompt stage adds: notebook 03 shows the first stage's prompt in full, then for each later
stage only the lines it adds to (or takes from) the stage before, found with `difflib`, instead of
five near-identical prompts one under another.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class StageChange:
    """The lines a stage's prompt adds and removes against the previous stage's prompt (blank lines ignored)."""

    stage: str
    previous: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def stage_changes(prompts: Mapping[str, str]) -> list[StageChange]:
    """For each stage after the first (in the mapping's order), what its prompt adds and removes.

    Args:
        prompts: stage -> the prompt's text, in ladder order (S0 first).
    """
    stages = list(prompts)
    out = []
    for previous, stage in zip(stages, stages[1:]):
        old, new = _lines(prompts[previous]), _lines(prompts[stage])
        added, removed = [], []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
            if tag in ("replace", "delete"):
                removed += old[i1:i2]
            if tag in ("replace", "insert"):
                added += new[j1:j2]
        out.append(StageChange(stage, previous, tuple(added), tuple(removed)))
    return out


def prompt_ladder_text(prompts: Mapping[str, str], labels: Mapping[str, str] | None = None) -> str:
    """The first stage's prompt in full, then per stage its added lines (``+``) and removed lines (``-``).

    Args:
        prompts: stage -> prompt text, in ladder order.
        labels: stage -> a short name shown beside it (e.g. `prompts.STAGE_LABELS`).
    """
    labels = labels or {}
    if not prompts:
        return ""

    def head(stage: str) -> str:
        return f"{stage} ({labels[stage]})" if stage in labels else stage

    first = next(iter(prompts))
    parts = [f"== {head(first)}: the whole prompt ==", *_lines(prompts[first])]
    for change in stage_changes(prompts):
        parts.append(f"== {head(change.stage)}: what it changes in the {change.previous} prompt ==")
        parts += [f"- {line}" for line in change.removed] + [f"+ {line}" for line in change.added]
        if not change.added and not change.removed:
            parts.append("  (no change)")
    return "\n".join(parts)
