"""Where the chain's time goes: each step's wall time, CPU time and peak memory, as JSON.

Usage:
    python benchmarks/chain_time.py --run runs/bench_cpu          # runs the cpu chain into an empty folder
    python benchmarks/chain_time.py --from-run runs/cpu           # reads the time table of an earlier run

The times are the ones every ``idiff run`` records (`idiff_lib.chain.timing`: monotonic wall
clock, CPU time of the notebook's processes, their peak resident memory). A run into ``--run``
starts from an empty folder, so every step runs; a folder that holds anything is refused, never
cleared. Writes ``benchmarks/results/chain_time.json``: the steps' rows, the totals of the steps
that ran, the machine, the profile and the commit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from idiff_lib.chain import runner, timing
from idiff_lib.core import paths, storage
from idiff_lib.core.step_settings import PROFILES


def commit() -> str | None:
    """The checked-out commit (with ``+changes`` when the tree differs from it), or None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=paths.PROJ_ROOT).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, cwd=paths.PROJ_ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def summary(run_dir: Path, profile: str | None) -> dict:
    rows = timing.time_table(run_dir)
    ran = [r for r in rows if r["status"] == "ran"]
    return {
        "run_dir": str(run_dir), "profile": profile, "commit": commit(),
        "machine": rows[-1]["machine"] if rows else timing.machine(),
        "steps": [{k: v for k, v in r.items() if k != "machine"} for r in rows],
        "total_wall_s": round(sum(r["wall_s"] for r in ran), 1), "total_cpu_s": round(sum(r["cpu_s"] for r in ran), 1),
        "peak_rss_mib": max((r["peak_rss_mib"] for r in ran), default=None),
        "steps_ran": len(ran), "steps_stopped": len(rows) - len(ran),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--run", help="an empty (or absent) folder to run the whole chain into")
    group.add_argument("--from-run", help="read the time table of an earlier run instead of running the chain")
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "chain_time.json"))
    args = parser.parse_args()
    if args.from_run:
        run_dir = Path(args.from_run).resolve()
        params = run_dir / "01_explore_pairs" / "params.yaml"
        profile = None
        if params.exists():
            import yaml

            profile = (yaml.safe_load(params.read_text(encoding="utf-8")) or {}).get("profile")
    else:
        run_dir, profile = Path(args.run).resolve(), args.profile
        if run_dir.exists() and any(run_dir.iterdir()):
            print(f"chain_time: --run {run_dir} is not empty. fix: pass a new folder (nothing is ever cleared)",
                  file=sys.stderr)
            return 2
        runner.run_chain(profile, out=run_dir, fig_dir=run_dir / "figures")
    result = summary(run_dir, profile)
    if not result["steps"]:
        print(f"chain_time: {run_dir} has no time table (no step ran with this version)", file=sys.stderr)
        return 2
    storage.write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print(timing.format_time_table(timing.time_table(run_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
