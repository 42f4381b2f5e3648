"""Atomic and resumable file helpers."""

import json

from idiff_lib.core import storage


def test_resumable_jsonl_drops_a_line_cut_by_a_crash(tmp_path):
    path = tmp_path / "rows.jsonl"
    assert storage.read_resumable_jsonl(path) == []
    storage.append_jsonl(path, {"id": "a"})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "b", "comp')  # the crash
    assert storage.read_resumable_jsonl(path) == [{"id": "a"}]
    storage.append_jsonl(path, {"id": "c"})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "c"]


def test_written_files_get_the_umask_mode_and_importing_sets_no_umask(tmp_path):
    import os
    import subprocess
    import sys

    old = os.umask(0o027)
    try:
        path = storage.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".*.tmp"))
    code = "import os; os.umask(0o077); import idiff_lib.core.storage; print(oct(os.umask(0)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0o77"
