"""The ``idiff`` command. Each feature module adds its own subcommands through ``add_cli``."""

from __future__ import annotations

import argparse
import importlib
import sys

from idiff_lib.core.errors import IdiffError

# Modules that contribute subcommands: each defines add_cli(subparsers) and sets
# `func` on its parsers (func(args) -> int exit code).
CLI_MODULES = (
    "idiff_lib.cli.run",
    "idiff_lib.cli.data",
    "idiff_lib.cli.answer",
    "idiff_lib.cli.think",
    "idiff_lib.cli.score",
    "idiff_lib.cli.export",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idiff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in CLI_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except IdiffError as exc:
        print(f"idiff: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
