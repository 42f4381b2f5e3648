"""``idiff run --status``: for each step of a run, whether it is up to date and, if not, why.

A step is up to date when its ``step.json`` holds the fingerprint the chain would compute now
(`idiff_lib.chain.runner.step_fingerprints`). Otherwise the parts recorded in ``step.json`` (or,
for an interrupted step, ``started.json``) are compared with today's to name what changed:
the notebook, its parameters, the library code, the data or an upstream step. A finished step
whose ``metrics.json`` is damaged is out of date too (a run redoes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from idiff_lib.chain.context import read_metrics
from idiff_lib.chain.runner import _plan, step_fingerprints
from idiff_lib.chain.steps import STEP_SETTINGS
from idiff_lib.core import layout, paths
from idiff_lib.core.step_settings import StepSettings

# What a changed part of the fingerprint means, in the order they are reported.
_PART_REASONS = {"notebook": "notebook changed", "params": "parameters changed", "code": "library code changed",
                 "data": "data changed", "upstream": "upstream step changed"}


@dataclass
class StepStatus:
    """One step's state: ``up to date``, ``out of date``, ``interrupted`` or ``never run``, and why."""

    step: str
    state: str
    reasons: list[str]
    step_dir: Path

    def line(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{self.step}: {self.state}{why}"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _why(recorded: dict[str, Any], fingerprint: str, parts: dict[str, str]) -> list[str]:
    old = recorded.get("parts")
    if recorded.get("fingerprint") == fingerprint:
        return []
    if not isinstance(old, dict):
        return ["made by an older version of the chain (no fingerprint parts recorded)"]
    return [reason for key, reason in _PART_REASONS.items() if old.get(key) != parts[key]] or ["fingerprint changed"]


def step_status(step_dir: Path, fingerprint: str, parts: dict[str, str]) -> StepStatus:
    """The state of one step folder against the fingerprint the chain would compute now."""
    step = step_dir.name
    marker, started = _read(step_dir / layout.STEP_MARKER), _read(step_dir / layout.STARTED_MARKER)
    metrics = step_dir / layout.METRICS_FILE
    if marker is not None and metrics.exists():
        reasons = _why(marker, fingerprint, parts)
        problem = read_metrics(metrics)[1]
        if problem:
            reasons.append(f"{metrics} {problem}; rerun it: idiff run --from {step}")
        return StepStatus(step, "out of date" if reasons else "up to date", reasons, step_dir)
    if started is not None:
        reasons = _why(started, fingerprint, parts)
        return StepStatus(step, "interrupted", reasons or ["started with these settings; a rerun resumes it"],
                          step_dir)
    return StepStatus(step, "never run", [], step_dir)


def chain_status(profile: str = "cpu", data_dir: str | Path | None = None, out: str | Path | None = None, *,
                 from_step: str | None = None, only: list[str] | None = None,
                 overrides: Mapping[str, Any] | None = None, fig_dir: str | Path | None = None,
                 notebooks_dir: Path | None = None,
                 registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> list[StepStatus]:
    """The status of each selected step of the run `out` (nothing runs, nothing is written).

    Raises:
        ParameterError: the same checks as `run_chain` (unknown step, folder or parameter).
    """
    plan = _plan(profile, data_dir, out, from_step, only, dict(overrides or {}), fig_dir,
                 notebooks_dir or paths.NOTEBOOKS_DIR, registry)
    fingerprints = step_fingerprints(plan)
    return [step_status(layout.step_dir(plan.run_dir, step), *fingerprints[step]) for step in plan.selected]
