"""``idiff COMMAND`` imports only COMMAND's module: the table of commands is complete and light commands stay light."""

from __future__ import annotations

import subprocess
import sys

from idiff_lib import cli


def _commands(parser) -> set[str]:
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return set(action.choices)


def test_the_command_table_names_every_command_each_module_adds():
    assert _commands(cli.build_parser()) == set(cli.COMMANDS)
    for command, module in cli.COMMANDS.items():
        own = {c for c, m in cli.COMMANDS.items() if m == module}
        assert _commands(cli.build_parser(command)) == own, command


def test_a_command_is_read_from_the_first_word_only():
    assert cli.requested_command(["data", "check", "x.jsonl"]) == "data"
    assert cli.requested_command(["--help"]) is None and cli.requested_command([]) is None
    assert cli.build_parser("no-such-command")  # an unknown word gets the full parser, whose error lists the commands


def test_idiff_data_check_does_not_load_torch():
    code = ("import sys; from idiff_lib.cli import main; rc = main(['data', 'check', '/no/such.jsonl']); "
            "print(rc, sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert res.stdout.split("\n")[0] == "2 []", res.stdout + res.stderr
    assert "no/such.jsonl" in res.stderr
