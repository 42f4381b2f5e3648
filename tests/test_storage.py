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
