"""``idiff run`` and ``idiff prepare-notebooks``: the notebook chain from the command line."""

from __future__ import annotations

import argparse
import time

from idiff_lib.chain.folders import (SUPERSEDED_DIR, SUPERSEDED_KEEP, format_bytes, prune_superseded, run_folder,
                                     superseded_note)
from idiff_lib.chain.runner import format_seconds, parse_overrides, prepare_notebooks, run_chain
from idiff_lib.chain.status import chain_status
from idiff_lib.chain.timing import format_time_table, time_table
from idiff_lib.core.errors import ParameterError
from idiff_lib.core.step_settings import PROFILES


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
    run.add_argument("--prune-superseded", action="store_true", help=f"run nothing: delete all but the newest "
                     f"--keep folders of each step in <out>/{SUPERSEDED_DIR}/ (older outputs a rerun moved aside)")
    run.add_argument("--keep", type=int, default=None, metavar="N",
                     help=f"with --prune-superseded: folders kept per step (default {SUPERSEDED_KEEP})")
    run.add_argument("--times", action="store_true", help="run nothing: print the run's time table (each step's "
                     "latest wall time, CPU time and peak memory, and the machine)")
    run.set_defaults(func=_cli_run)

    prep = sub.add_parser("prepare-notebooks", help="write parameterised copies of the notebooks (for nbval)")
    prep.add_argument("--out", required=True)
    prep.add_argument("--profile", default="tiny", choices=PROFILES)
    prep.add_argument("--data", default=None)
    prep.add_argument("--param", action="append", default=None, metavar="KEY=VALUE")
    prep.set_defaults(func=_cli_prepare)


def _cli_run(args: argparse.Namespace) -> int:
    if args.keep is not None and not args.prune_superseded:
        raise ParameterError("--keep goes with --prune-superseded. fix: idiff run --prune-superseded --out RUN "
                             "--keep N (or drop --keep)")
    if args.prune_superseded:
        if args.status:
            raise ParameterError("--prune-superseded and --status: each runs nothing else. fix: give one of them")
        run_dir = run_folder(args.profile, args.out)
        keep = SUPERSEDED_KEEP if args.keep is None else args.keep
        removed = prune_superseded(run_dir, keep, log=lambda m: print(m, flush=True))
        print(f"pruned {run_dir / SUPERSEDED_DIR}: {len(removed)} folder(s) removed, "
              f"{format_bytes(sum(size for _, size in removed))} freed; the newest {keep} per step kept", flush=True)
        return 0
    if args.times:
        print(format_time_table(time_table(run_folder(args.profile, args.out))), flush=True)
        return 0
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
    if ran:
        print(format_time_table(time_table(run_folder(args.profile, args.out))), flush=True)
    note = superseded_note(run_folder(args.profile, args.out))
    if note:
        print(note, flush=True)
    return 0


def _cli_prepare(args: argparse.Namespace) -> int:
    for path in prepare_notebooks(args.out, args.profile, args.data, parse_overrides(args.param)):
        print(path)
    return 0
