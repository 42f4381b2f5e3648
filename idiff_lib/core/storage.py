"""Atomic writes and content hashes: nothing half-written survives an interruption."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from idiff_lib.core.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temp_file(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _new_temp_file(path: Path) -> Path:
    """Create an empty, uniquely named file beside `path`, with the mode a plain ``open`` would give.

    Created with mode 0o666 so the process's umask applies as for any new file (``mkstemp``
    would make it 0600), and with O_EXCL so two writers never share a temporary file.
    """
    while True:
        candidate = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


def write_yaml(path: str | Path, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    lines = [json.dumps(r, ensure_ascii=False, default=_jsonable) for r in rows]
    return write_text(path, "".join(line + "\n" for line in lines))


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one line and flush it, for resumable outputs written a row at a time.

    A line cut by a crash is dropped by `read_jsonl_rows(..., tolerate_partial_last=True)`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl_rows(path: str | Path, tolerate_partial_last: bool = False) -> list[dict]:
    """Plain JSONL rows (the workbench's own outputs and side inputs; input pairs go through `pairs`).

    Raises:
        DataError: a missing file, or a malformed line (named by its number).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found", "check the path")
    if path.is_dir():
        raise DataError(path, "is a folder, not a JSONL file", "pass the path of a .jsonl file")
    rows = []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if tolerate_partial_last and i == len(lines) - 1 and not text.endswith("\n"):
                break
            raise DataError(path, f"malformed JSON: {exc.msg}", "fix or remove that line", i + 1) from None
    return rows


def read_resumable_jsonl(path: str | Path) -> list[dict]:
    """The rows of a file that `append_jsonl` grows, ready to be appended to again.

    A last line cut by a crash is removed from the file first, so the next append starts on a
    fresh line. A missing file has no rows.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
    return read_jsonl_rows(path)


def check_output_file(out: str | Path, option: str = "--out", inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output path that cannot be written, before any work: a folder, an input file or a read-only folder.

    Raises:
        DataError: naming `out`, the problem and the fix.
    """
    out = Path(out)
    if out.is_dir():
        raise DataError(out, f"{option} is a folder", f"pass {option} <folder>/<name>.jsonl, a file to write")
    for given in inputs:
        if Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise DataError(out, f"{option} is the input file {given}; writing it would replace the input",
                            f"pass another {option} path")
    parent = out.resolve().parent
    while not parent.exists():  # the folders still to create must be creatable
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(out, f"cannot write here: {parent} is not a writable folder",
                        f"pass {option} in a folder you can write to")
    return out


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
