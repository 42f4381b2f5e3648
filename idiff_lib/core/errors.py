"""Errors that tell the user where the problem is and how to fix it."""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Iterable


class IdiffError(Exception):
    """Base class of every error the workbench raises on purpose."""


class DataError(IdiffError, ValueError):
    """Bad input data: names the file, the line (1-based, when known) and the fix.

    Attributes:
        path: the offending file.
        line: the 1-based line of a JSONL file, or None.
        problem: what is wrong.
        fix: what the user should do.
    """

    def __init__(self, path: str | Path | None, problem: str, fix: str = "", line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.problem = problem
        self.fix = fix
        where = self.path or "<input>"
        if line is not None:
            where += f", line {line}"
        message = f"{where}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)


class ParameterError(IdiffError, ValueError):
    """A parameter that is unknown, of the wrong type or out of range."""


class OfflineError(IdiffError, RuntimeError):
    """A model, weight or data set that must be downloaded is not available offline."""


def suggest(name: str, choices: Iterable[str], n: int = 5) -> str:
    """A 'Did you mean ...' phrase for an unknown name, or '' when nothing is close."""
    matches = get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Did you mean one of: {', '.join(matches)}?" if matches else ""
