"""``idiff run`` and ``idiff prepare-notebooks``: the notebook chain from the command line."""

from __future__ import annotations

import argparse
import time

from idiff_lib.chain.runner import format_seconds, parse_overrides, prepare_notebooks, run_chain
from idiff_lib.chain.status import chain_status
from idiff_lib.core.settings import PROFILES


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``prepare-notebooks`` to the ``idiff`` command."""
    run = sub.add_parser("run", help="run the notebook chain with papermill (resumes; skips up-to-date steps)")
    run.add_argument("--profile", default="cpu", choices=PROFILES, help="cpu: small, runs on a laptop; "
                     "paper: the paper's backbones and MLLM (GPU); tiny: for tests")
    run.add_argument("--data", default=None, help="data folder with {train,val,test}_sft.jsonl (default data/demo)")
    run.add_argument("--out", default=None, help="run folder (default runs/<profile>)")
    run.add_argument("--from", dest="from_step", default=None, help="start at this step (name or NN)")
    run.add_argument("--only", action="append", default=None, help="run only this step (repeatable)")
    run.add_argument("--param", action="append", default=None, metavar="KEY=VALUE",
                     help="set a parameter in every step that declares it")
    run.add_argument("--fig-dir", default=None, help="where figures go (default figures/)")
    run.add_argument("--force", action="store_true", help="rerun steps even when up to date")
    run.add_argument("--status", action="store_true", help="run nothing: show for each step whether it is "
                     "up to date and, if not, why (never run, notebook / parameters / code / data / upstream changed)")
    run.set_defaults(func=_cli_run)

    prep = sub.add_parser("prepare-notebooks", help="write parameterised copies of the notebooks (for nbval)")
    prep.add_argument("--out", required=True)
    prep.add_argument("--profile", default="tiny", choices=PROFILES)
    prep.add_argument("--data", default=None)
    prep.add_argument("--param", action="append", default=None, metavar="KEY=VALUE")
    prep.set_defaults(func=_cli_prepare)


def _cli_run(args: argparse.Namespace) -> int:
    if args.status:
        for status in chain_status(args.profile, args.data, args.out, from_step=args.from_step, only=args.only,
                                   overrides=parse_overrides(args.param), fig_dir=args.fig_dir):
            print(status.line(), flush=True)
        return 0
    t0 = time.monotonic()
    results = run_chain(args.profile, args.data, args.out, from_step=args.from_step, only=args.only,
                        overrides=parse_overrides(args.param), fig_dir=args.fig_dir, force=args.force,
                        log=lambda m: print(m, flush=True))
    ran = sum(r.status == "ran" for r in results)
    print(f"chain finished: {ran} step(s) run, {len(results) - ran} up to date, "
          f"{format_seconds(time.monotonic() - t0)}", flush=True)
    return 0


def _cli_prepare(args: argparse.Namespace) -> int:
    for path in prepare_notebooks(args.out, args.profile, args.data, parse_overrides(args.param)):
        print(path)
    return 0
