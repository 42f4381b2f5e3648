"""The chain's time table: each step's wall time, CPU time and peak memory, recorded by every ``idiff run``.

`StepMeter` measures one step while its notebook runs:

- **wall**: a monotonic clock (`time.monotonic`), so a clock that jumps does not change it;
- **CPU**: user + system time of this process and of the notebook's processes (the kernel and the
  workers it starts), from ``resource.getrusage`` (children are counted once they have ended, as
  papermill's kernel has when the step returns);
- **peak memory**: the largest summed resident set size of this process's descendants, sampled by
  a background thread (`SAMPLE_SECONDS`) with ``psutil``.

Every attempt is appended to ``RUN_DIR/timings.jsonl`` (`layout.TIMINGS_FILE`), finished or not: a
step stopped by Ctrl-C is recorded as ``interrupted`` and a failed one as ``failed``, never as a
time. `time_table` reads the latest attempt of each step, with the machine it ran on, and
`format_time_table` writes it as the Markdown table that ``idiff run --times`` prints and the
README's Results section shows.
"""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError

SAMPLE_SECONDS = 0.25  # how often the memory of the notebook's processes is read
STATUSES = ("ran", "interrupted", "failed")


def machine() -> dict[str, Any]:
    """The machine a time was measured on: cores this process may use, RAM, CPU model, Python."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 0
    return {"cores": cores, "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class StepMeter:
    """Measure one step: ``with StepMeter() as m: ...`` then ``m.row(step, status)``."""

    def __init__(self, sample_seconds: float = SAMPLE_SECONDS):
        self.sample_seconds = sample_seconds
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.wall = self.cpu = 0.0

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            try:
                for proc in me.children(recursive=True):
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        continue  # a process that ended between the listing and the read
            except psutil.Error:
                pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.sample_seconds)

    def __enter__(self) -> StepMeter:  # noqa: PYI034 (typing.Self needs Python 3.11; 3.10 is supported)
        self._t0, self._cpu0 = time.monotonic(), _cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.wall = time.monotonic() - self._t0
        self.cpu = _cpu_seconds() - self._cpu0

    def row(self, step: str, status: str) -> dict[str, Any]:
        """The time-table row of this attempt; only a step that ran has times."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        ran = status == "ran"
        return {"step": step, "status": status, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "wall_s": round(self.wall, 2) if ran else None, "cpu_s": round(self.cpu, 2) if ran else None,
                "peak_rss_mib": round(self.peak_bytes / 2**20, 1) if ran else None,
                "stopped_after_s": None if ran else round(self.wall, 2), "machine": machine()}


def record(run_dir: str | Path, row: dict[str, Any]) -> Path:
    """Append one attempt's row to the run's ``timings.jsonl`` (fsynced)."""
    path = Path(run_dir) / layout.TIMINGS_FILE
    storage.append_jsonl(path, row)
    return path


def timed(run_dir: str | Path, step: str, run: Callable[[], object]) -> dict[str, Any]:
    """Call `run` (one step) under a `StepMeter` and `record` the attempt, whether it ran, failed or was stopped.

    Returns the row of a step that ran; a failure or Ctrl-C is recorded, then raised on.
    """
    meter, status = StepMeter(), "failed"
    try:
        with meter:
            run()
        status = "ran"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:  # every attempt goes in the time table; a stopped one as stopped, not as a time
        row = meter.row(step, status)
        record(run_dir, row)
    return row


def time_table(run_dir: str | Path) -> list[dict[str, Any]]:
    """The latest recorded attempt of each step that has one, in the order the steps first ran.

    Raises:
        DataError: ``timings.jsonl`` holds a row that is not a step's timing (names the file).
    """
    path = Path(run_dir) / layout.TIMINGS_FILE
    if not path.exists():
        return []
    latest: dict[str, dict[str, Any]] = {}
    for row in storage.read_resumable_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("step"), str) or row.get("status") not in STATUSES:
            raise DataError(path, f"holds a row that is not a step's timing: {row!r}",
                            "delete the file; the next run of each step records it again")
        latest[row["step"]] = row  # dicts keep the first insertion's place
    return list(latest.values())


def format_time_table(rows: Sequence[dict[str, Any]]) -> str:
    """The time table as Markdown: one line per step, a total of the steps that ran, and the machine."""
    if not rows:
        return "(no step of this run has recorded a time yet)"
    lines = ["| step | status | wall | CPU | CPU / wall | peak memory |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] == "ran":
            ratio = r["cpu_s"] / r["wall_s"] if r["wall_s"] else 0.0
            lines.append(f"| {r['step']} | ran | {r['wall_s'] / 60:.1f} min | {r['cpu_s'] / 60:.1f} min | "
                         f"{ratio:.2f} | {r['peak_rss_mib'] / 1024:.1f} GiB |")
        else:
            lines.append(f"| {r['step']} | {r['status']} after {r['stopped_after_s'] / 60:.1f} min | – | – | – | – |")
    ran = [r for r in rows if r["status"] == "ran"]
    if ran:
        lines.append(f"| **total** | {len(ran)} ran | {sum(r['wall_s'] for r in ran) / 60:.1f} min | "
                     f"{sum(r['cpu_s'] for r in ran) / 60:.1f} min | | "
                     f"{max(r['peak_rss_mib'] for r in ran) / 1024:.1f} GiB |")
    m = rows[-1]["machine"]
    lines.append(f"\nMachine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}.")
    return "\n".join(lines)
