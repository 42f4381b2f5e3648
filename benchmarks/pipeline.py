"""Where the demo's time goes: the wall time of each step of the notebook chain, as JSON.

Usage:
    python benchmarks/pipeline.py                      # runs the cpu chain into runs/bench (fresh)
    python benchmarks/pipeline.py --from-run runs/cpu  # reads the step records of an existing run

Writes benchmarks/results/pipeline.json: per step, seconds and whether it ran or was skipped,
plus the machine (cores) and the total.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from idiff_lib.chain import runner as pipeline
from idiff_lib.core import layout, paths, storage
from idiff_lib.core.settings import PROFILES


def step_times(run_dir: Path) -> list[dict]:
    rows = []
    for step in pipeline.available_steps():
        record = layout.step_dir(run_dir, step) / layout.STEP_MARKER
        info = json.loads(record.read_text()) if record.exists() else {}
        rows.append({"step": step, "seconds": info.get("seconds"), "finished": info.get("finished")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument("--from-run", default=None, help="read an existing run instead of running the chain")
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "pipeline.json"))
    args = parser.parse_args()
    t0 = time.monotonic()
    if args.from_run:
        run_dir = Path(args.from_run).resolve()
    else:
        run_dir = paths.RUNS_DIR / "bench"
        shutil.rmtree(run_dir, ignore_errors=True)
        pipeline.run_chain(args.profile, out=run_dir, fig_dir=run_dir / "figures")
    rows = step_times(run_dir)
    result = {
        "run_dir": str(run_dir), "profile": args.profile, "cores": os.cpu_count(),
        "machine": platform.platform(), "steps": rows,
        "total_step_seconds": round(sum(r["seconds"] or 0 for r in rows), 1),
        "wall_seconds": None if args.from_run else round(time.monotonic() - t0, 1),
    }
    storage.write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
