"""A run folder: where it is, what it may not overlap, its lock, and the step folders it keeps aside.

- `run_folder`: ``--out``, or ``runs/<profile>``; `check_run_folders` refuses a run folder that is,
  holds or sits inside the data folder (and a figure folder inside it): the chain fingerprints the
  data folder, so a run writing there would never be up to date.
- `run_lock`: one ``idiff run`` writes a run folder at a time. It holds an exclusive `fcntl.flock`
  on ``RUN_DIR/.lock`` (which records its PID) for the whole run; the operating system releases it
  when the process ends or dies, so a crash leaves no stale lock. Reading (``--status``) needs none.
- `supersede_if_stale`: a step folder made under other settings is moved to
  ``RUN_DIR/.superseded/<step>-<UTC time>/``, never deleted by a run (trained work is kept). A run
  ends by saying how much room they take (`superseded_note`) once a step has more than
  `SUPERSEDED_KEEP`; ``idiff run --prune-superseded`` (`prune_superseded`) removes all but the
  newest of each step, when asked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from idiff_lib.core import layout, paths
from idiff_lib.core.errors import ParameterError

# Where a step's folder made under other settings is kept (inside the run folder).
SUPERSEDED_DIR = ".superseded"
# Superseded folders kept per step by `prune_superseded`; a run reports their size beyond this many.
SUPERSEDED_KEEP = 3
# A superseded folder's name: ``<step>-<UTC time>`` and, for a second one in the same second, ``-<n>``.
_SUPERSEDED_NAME = re.compile(r"(?P<step>.+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?")


def run_folder(profile: str, out: str | Path | None) -> Path:
    """The run folder of ``idiff run``: `out`, or ``runs/<profile>`` (resolved)."""
    return Path(out or paths.RUNS_DIR / profile).expanduser().resolve()


def check_run_folders(data: Path, run_dir: Path, figures: Path) -> None:
    """Refuse a run folder that is, holds or sits inside the data folder, and a figure folder inside it.

    The chain fingerprints the data folder's files: a run writing there would change its own data
    (no step would ever be up to date) and mix outputs with the inputs. Paths are compared after
    resolving symbolic links.

    Raises:
        ParameterError: naming both folders and the fix; nothing has been written.
    """
    data = data.resolve()
    for flag, folder, example in (("--out", run_dir, "runs/NAME"), ("--fig-dir", figures, "figures/NAME")):
        real = folder.resolve()
        if real == data:
            where = "is the data folder"
        elif data in real.parents:
            where = "is inside the data folder"
        elif flag == "--out" and real in data.parents:
            where = "holds the data folder"
        else:
            continue
        raise ParameterError(f"{flag} {folder} {where} (--data {data}): the run would write among the data it is "
                             f"fingerprinted on. fix: pass a {flag} outside {data} (e.g. {flag} {example})")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the block: one ``idiff run`` (or prune) writes a run folder at a time.

    An exclusive `fcntl.flock` on ``RUN_DIR/.lock``, which records the holder's PID while it is held.
    The operating system releases the lock when the process ends or dies, so a crash never leaves a
    stale lock behind. Reading a run (``--status``) needs no lock.

    Raises:
        ParameterError: another process holds the lock; names its PID and what to do.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / layout.RUN_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by the kernels this process starts
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise ParameterError(
                f"--out {run_dir} is in use by another idiff run (PID {holder}, lock {path}). fix: wait until it "
                f"ends (idiff run --status --out {run_dir} shows its progress), stop it (kill {holder}), or "
                "pass another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # no PID of a finished run stays behind
    finally:
        os.close(fd)  # releases the lock


def supersede_if_stale(step_dir: Path, fingerprint: str, run_dir: Path) -> Path | None:
    """Move `step_dir` aside unless it was last started with `fingerprint` (an interrupted run of this very step).

    The folder goes to ``run_dir/.superseded/<step>-<UTC time>/`` (never deleted); returns that path, or None.
    """
    if not step_dir.exists() or not any(step_dir.iterdir()):
        return None
    try:
        started = json.loads((step_dir / layout.STARTED_MARKER).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        started = None
    if started == fingerprint:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = run_dir / SUPERSEDED_DIR / f"{step_dir.name}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = run_dir / SUPERSEDED_DIR / f"{step_dir.name}-{stamp}-{n}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(step_dir, target)  # same file system: a rename, nothing copied or lost
    return target


def superseded_folders(run_dir: Path) -> dict[str, list[Path]]:
    """The folders in ``RUN_DIR/.superseded/`` by step, newest first (other entries are not ours: left out)."""
    by_step: dict[str, list[tuple[tuple[str, int], Path]]] = {}
    root = run_dir / SUPERSEDED_DIR
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        match = _SUPERSEDED_NAME.fullmatch(folder.name)
        if match and folder.is_dir() and not folder.is_symlink():
            by_step.setdefault(match["step"], []).append(((match["stamp"], int(match["n"] or 1)), folder))
    return {step: [f for _, f in sorted(found, reverse=True)] for step, found in sorted(by_step.items())}


def folder_bytes(folder: Path) -> int:
    """The size of the files under `folder` (links are not followed)."""
    return sum(os.lstat(os.path.join(top, name)).st_size for top, _, names in os.walk(folder) for name in names)


def superseded_note(run_dir: Path, keep: int = SUPERSEDED_KEEP) -> str | None:
    """A line on the room ``.superseded/`` takes, once some step has more than `keep` folders there; else None."""
    folders = superseded_folders(run_dir)
    if not any(len(found) > keep for found in folders.values()):
        return None
    count = sum(len(found) for found in folders.values())
    size = sum(folder_bytes(f) for found in folders.values() for f in found)
    return (f"{run_dir / SUPERSEDED_DIR} holds {count} superseded step folders ({format_bytes(size)}); "
            f"`idiff run --prune-superseded --out {run_dir}` removes all but the newest {keep} per step")


def prune_superseded(run_dir: Path, keep: int = SUPERSEDED_KEEP,
                     log: Callable[[str], None] = print) -> list[tuple[Path, int]]:
    """Remove all but the newest `keep` superseded folders of each step; returns each removed folder and its size.

    Asked for explicitly (``idiff run --prune-superseded``): a run itself never deletes trained work.
    Holds the run folder's lock, so no run moves a folder there meanwhile.

    Raises:
        ParameterError: a negative `keep`, a run folder that does not exist, or one in use by a run.
    """
    if keep < 0:
        raise ParameterError(f"--keep {keep}: a number of folders to keep per step. fix: pass --keep 0 or more")
    if not run_dir.is_dir():
        raise ParameterError(f"--out {run_dir} is not a run folder. fix: pass the --out of an earlier idiff run")
    removed = []
    with run_lock(run_dir):
        for found in superseded_folders(run_dir).values():
            for folder in found[keep:]:
                size = folder_bytes(folder)
                shutil.rmtree(folder)
                log(f"removed {folder} ({format_bytes(size)})")
                removed.append((folder, size))
    return removed


def format_bytes(size: float) -> str:
    """``512 B``, ``1.5 kB``, ``700.0 MB``, ``2.1 GB`` (powers of 1000)."""
    units = ("B", "kB", "MB", "GB", "TB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size, i = size / 1000, i + 1
    return f"{size:.0f} B" if i == 0 else f"{size:.1f} {units[i]}"
