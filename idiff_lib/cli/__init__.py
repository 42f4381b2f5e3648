"""The ``idiff`` command. Each feature module adds its own subcommands through ``add_cli``.

What reaches the user is one line, never a traceback: ``idiff: error: ...`` (exit 2) for bad input,
``idiff: interrupted ...`` (exit 130) for Ctrl-C, and for an unexpected (internal) error one line
with the path of a log file holding the traceback (exit 1), under ``.cache/idiff/logs/``
(`paths.CACHE_DIR`), or the system temp folder when that cannot be written.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from pathlib import Path

from idiff_lib.core import paths
from idiff_lib.core.errors import IdiffError

# Each top-level command and the module that adds it: each defines add_cli(subparsers) and sets
# `func` on its parsers (func(args) -> int exit code). `idiff COMMAND ...` imports only COMMAND's
# module, so `idiff data check` starts in about a second instead of waiting for torch and transformers.
COMMANDS = {
    "run": "idiff_lib.cli.run",
    "prepare-notebooks": "idiff_lib.cli.run",
    "data": "idiff_lib.cli.data",
    "answer": "idiff_lib.cli.answer",
    "think": "idiff_lib.cli.think",
    "score": "idiff_lib.cli.score",
    "export": "idiff_lib.cli.export",
}
CLI_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``idiff`` parser: with only `command`'s module when it names one, else with every command (help, typos)."""
    parser = argparse.ArgumentParser(prog="idiff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ((COMMANDS[command],) if command in COMMANDS else CLI_MODULES):
        importlib.import_module(name).add_cli(sub)
    return parser


def requested_command(argv: list[str]) -> str | None:
    """The command `argv` names (its first word; the top-level parser takes no option but ``-h``)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


INTERRUPTED = ("idiff: interrupted. Everything finished so far is kept (written atomically; finished steps "
               "and saved chunks stay); rerun the same command to resume.")


def write_crash_log(argv: list[str]) -> Path:
    """Write the current exception's traceback (and the command) to a new log file; returns its path."""
    text = f"idiff {' '.join(argv)}\n\n{traceback.format_exc()}"
    name = f"idiff-{time.strftime('%Y%m%dT%H%M%S')}-{id(text):x}.log"
    for folder in (paths.CACHE_DIR / "idiff" / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
            return folder / name
        except OSError:
            continue
    raise OSError("no folder to write the log to")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(requested_command(argv)).parse_args(argv)
        return int(args.func(args) or 0)
    except IdiffError as exc:
        print(f"idiff: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - an internal error: one line for the user, the traceback in a log
        try:
            where = f"the traceback is in {write_crash_log(argv)}; please report it with that file"
        except OSError:
            where = "no log file could be written"
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"idiff: internal error ({type(exc).__name__}: {first}); {where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
