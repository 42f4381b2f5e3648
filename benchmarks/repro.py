"""Same commit, same tables: the tiny chain run at 1 and at 2 threads, every metric compared exactly.

Usage:
    python benchmarks/repro.py --work build/repro [--threads 1 2] [--profile tiny] [--data data/demo]

Every run uses one copy of the library and the notebooks, taken first into a fresh folder under
``--work`` (``source-<random>/``), so an edit made in the checkout while the runs go on cannot
change one run and not the other (``--source DIR`` runs a copy made beforehand instead, e.g. a
``git archive`` of a commit). Each thread count then gets a fresh folder under ``--work``
(``threads<N>-<random>/``; an existing folder is never reused, and nothing this script did not
create is ever deleted), where ``idiff run`` writes the run (``run/``), its figures
(``figures/``), its own cache (``cache/``, via ``IDIFF_CACHE_DIR``, so no features or cues cached
by another run are read back) and its output (``chain.log``). The thread count is set the way a
user sets it: ``--param threads=N`` for the steps with a ``threads`` setting, ``IDIFF_THREADS=N``
for the others (`idiff_lib.core.determinism`).

Every step's ``metrics.json`` is flattened (``a.b[2].c``) and each value compared with the first
run's: numbers exactly (NaN equals NaN), with the absolute difference; other values by equality,
after each run's folder in a text is replaced by ``<run>``; a key present in one run only differs.
Wall and CPU times (keys named ``seconds`` or ending ``_s`` / ``_seconds``) are listed but not
compared. Writes ``benchmarks/results/repro.json``: per step the number of metrics, how many are
identical and the differing keys with every run's value (and the fingerprint parts, notebook, code
or data, that differ between the runs, if any), plus each run's wall time. Exit status 1 when any
metric differs, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chain_time import commit

from idiff_lib.chain import timing
from idiff_lib.core import layout, paths, storage
from idiff_lib.core.determinism import THREADS_ENV

TIMING_SUFFIXES = ("_s", "_seconds")
RUN_PLACEHOLDER = "<run>"
SOURCE_PARTS = ("idiff_lib", "notebooks")  # what a run reads from the checkout (data and caches come by path)
INPUT_PARTS = ("notebook", "code", "data")  # a step's fingerprint parts that must match between the runs


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1, 2]}}`` -> ``{"a.b[0]": 1, "a.b[1]": 2}``; an empty dict or list is one leaf."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def is_timing(key: str) -> bool:
    """A wall or CPU time (differs between any two runs): a key part named ``seconds`` or ending ``_s``/``_seconds``."""
    parts = key.replace("[", ".[").split(".")
    return any(p == "seconds" or p.endswith(TIMING_SUFFIXES) for p in parts)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def identical(a: Any, b: Any) -> bool:
    """Exactly equal: the same type family and value; NaN equals NaN; 1 and 1.0 are equal, True and 1 are not."""
    if _number(a) and _number(b):
        return (math.isnan(a) and math.isnan(b)) if isinstance(a, float) and math.isnan(a) else a == b
    return type(a) is type(b) and a == b


def compare_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's metrics from several runs, each compared with the first run's.

    Returns:
        ``metrics`` (keys compared), ``identical``, ``timing_keys`` (not compared), ``differing``
        (key, every run's value, and ``abs_diff`` for numbers) and ``max_abs_diff``.
    """
    flat = [flatten(r) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    timed = [k for k in keys if is_timing(k)]
    compared = [k for k in keys if not is_timing(k)]
    missing = object()
    differing, max_diff = [], 0.0
    for key in compared:
        values = [f.get(key, missing) for f in flat]
        if all(v is not missing for v in values) and all(identical(values[0], v) for v in values[1:]):
            continue
        row: dict[str, Any] = {"key": key, "values": ["<absent>" if v is missing else v for v in values]}
        if all(_number(v) for v in values):
            diff = max(abs(float(v) - float(values[0])) for v in values[1:])
            row["abs_diff"] = diff
            max_diff = diff if math.isnan(diff) else max(max_diff, diff)
        differing.append(row)
    return {"metrics": len(compared), "identical": len(compared) - len(differing), "timing_keys": timed,
            "differing": differing, "max_abs_diff": max_diff}


def copy_source(work: Path) -> Path:
    """A fresh ``work/source-<random>/`` holding a copy of `SOURCE_PARTS` (without ``__pycache__``)."""
    source = Path(tempfile.mkdtemp(prefix="source-", dir=work))
    for part in SOURCE_PARTS:
        shutil.copytree(paths.PROJ_ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return source


def run_tiny_chain(threads: int, folder: Path, source: Path, profile: str, data: Path) -> dict[str, Any]:
    """``idiff run`` of the `source` copy into ``folder/run`` at `threads` threads, with its own cache.

    The copy's ``idiff_lib`` is imported (it is the working folder and on ``PYTHONPATH``, ahead of the
    installed checkout); the data and the shared folders stay the checkout's.
    """
    cmd = [sys.executable, "-m", "idiff_lib.cli", "run", "--profile", profile, "--data", str(data),
           "--out", str(folder / "run"), "--fig-dir", str(folder / "figures"), "--param", f"threads={threads}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
           "IDIFF_DATA_DIR": str(paths.DATA_DIR), "IDIFF_PHOTOS_DIR": str(paths.PHOTOS_DIR),
           "IDIFF_RAIM_DIR": str(paths.SHARED_RAIM_DIR), "IDIFF_CACHE_DIR": str(folder / "cache"),
           THREADS_ENV: str(threads)}
    print(f"repro: {threads} thread(s): {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    with open(folder / "chain.log", "w", encoding="utf-8") as log:
        rc = subprocess.run(cmd, check=False, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    steps = {r["step"]: r["wall_s"] for r in timing.time_table(folder / "run")}
    print(f"repro: {threads} thread(s) finished in {wall:.0f} s (exit {rc}); log {folder / 'chain.log'}", flush=True)
    return {"threads": threads, "folder": str(folder), "returncode": rc, "wall_s": round(wall, 1), "step_wall_s": steps}


def step_metrics(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Each step's ``metrics.json`` (in step order), the run's folder in its texts replaced by `RUN_PLACEHOLDER`."""
    folder = str(run_dir.parent)
    return {p.parent.name: json.loads(p.read_text(encoding="utf-8").replace(folder, RUN_PLACEHOLDER))
            for p in sorted(run_dir.glob(f"*/{layout.METRICS_FILE}"))}


def input_parts(run_dir: Path, step: str) -> dict[str, str]:
    """The `INPUT_PARTS` of a step's fingerprint (``step.json``); empty when it did not finish."""
    marker = layout.step_dir(run_dir, step) / layout.STEP_MARKER
    parts = json.loads(marker.read_text(encoding="utf-8")).get("parts", {}) if marker.exists() else {}
    return {k: parts.get(k, "") for k in INPUT_PARTS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder under which each run gets a fresh folder")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts, compared with the first")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--data", default=None, help="data folder (default data/demo)")
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "repro.json"))
    parser.add_argument("--source", default=None, help="a folder holding idiff_lib/ and notebooks/ to run "
                        "(default: a copy of this checkout's, made under --work)")
    parser.add_argument("--clean", action="store_true", help="remove the folders this script made once compared")
    args = parser.parse_args()
    if len(args.threads) < 2 or min(args.threads) < 1:
        parser.error("--threads: give two or more counts of at least 1, e.g. --threads 1 2")
    work = Path(args.work).expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).expanduser().resolve() if args.data else paths.DEMO_DIR
    if args.source and not all((Path(args.source) / part).is_dir() for part in SOURCE_PARTS):
        parser.error(f"--source {args.source}: needs the folders {', '.join(SOURCE_PARTS)}")
    source = Path(args.source).resolve() if args.source else copy_source(work)
    made = [Path(tempfile.mkdtemp(prefix=f"threads{n}-", dir=work)) for n in args.threads]
    runs = [run_tiny_chain(n, folder, source, args.profile, data) for n, folder in zip(args.threads, made)]
    metrics = [step_metrics(folder / "run") for folder in made]
    steps = list(dict.fromkeys(s for m in metrics for s in m))
    by_step = {}
    for step in steps:
        if all(step in m for m in metrics):
            by_step[step] = compare_metrics([m[step] for m in metrics])
            parts = [input_parts(folder / "run", step) for folder in made]
            changed = [k for k in INPUT_PARTS if len({p[k] for p in parts}) > 1]
            if changed:
                by_step[step]["inputs_differ"] = changed
        else:
            by_step[step] = {"missing_in": [r["threads"] for r, m in zip(runs, metrics) if step not in m]}
    failed = [r for r in runs if r["returncode"] != 0]
    differs = sum(len(c.get("differing", [])) + ("missing_in" in c) for c in by_step.values())
    result = {
        "profile": args.profile, "commit": commit(), "machine": timing.machine(), "source": str(source), "runs": runs,
        "identical": not failed and differs == 0 and bool(steps),
        "steps": by_step,
    }
    storage.write_json(args.out, result)
    for step, c in by_step.items():
        if "missing_in" in c:
            print(f"{step}: no metrics.json in the run(s) at {c['missing_in']} thread(s)")
            continue
        note = f" (its {', '.join(c['inputs_differ'])} differ between the runs)" if "inputs_differ" in c else ""
        print(f"{step}: {c['identical']}/{c['metrics']} identical, max abs diff {c['max_abs_diff']:.3g}{note}")
        for row in c["differing"]:
            print(f"    {row['key']}: {row['values']}")
    print(f"repro: {'identical' if result['identical'] else 'DIFFERENT'}; wrote {args.out}")
    if args.clean:
        for folder in ([] if args.source else [source]) + made:  # never a folder it was given
            shutil.rmtree(folder)
    return 2 if failed else (0 if result["identical"] else 1)


if __name__ == "__main__":
    sys.exit(main())
