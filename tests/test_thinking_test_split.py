"""benchmarks/thinking_test_split.py on a copy of the tiny chain's run: every named stage's model, the template and the floor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idiff_lib.core import storage

ROOT = Path(__file__).resolve().parents[1]


def _script(run: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IDIFF_PROGRESS": "off"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "thinking_test_split.py"), "--run", str(run),
                           "--threads", "1", "--bootstrap", "20", "--out", str(out), *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """The tiny chain's run, copied: the script writes its rationales inside the run folder."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run", symlinks=True))


def test_each_named_stage_is_scored_with_its_own_model_beside_the_template_and_the_floor(run_copy, tmp_path):
    out = tmp_path / "rungs.json"
    res = _script(run_copy, out, "--stages", "S0,S4", "--limit", "4")
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["system"], r["stage"]) for r in rows][:4] == [
        (rows[0]["system"], "S0"), ("template", "S0"), (rows[0]["system"], "S4"), ("template", "S4")]
    assert rows[-1]["stage"] is None and rows[-1]["system"] != "template"  # the shuffled-reference floor
    assert result["pairs"] == 4 and all(r["n"] == 4 for r in rows)
    assert set(result["models"]) == {"S0", "S4"} and result["models"]["S0"] != result["models"]["S4"]  # progressive
    for row in rows:
        low, value, high = row["rouge_l"][1], row["rouge_l"][0], row["rouge_l"][2]
        assert low <= value <= high
    written = sorted(p.name for p in (run_copy / "benchmarks" / "thinking_test_split").rglob("*.jsonl"))
    assert written == sorted([f"{rows[0]['system']}_S0.jsonl", "template_S0.jsonl",
                              f"{rows[0]['system']}_S4.jsonl", "template_S4.jsonl"])
    first = storage.read_jsonl_rows(next((run_copy / "benchmarks").rglob(f"{rows[0]['system']}_S4.jsonl")))
    assert len(first) == 4 and all(r["completion"] for r in first)


def test_an_unknown_stage_is_refused_by_name(run_copy, tmp_path):
    res = _script(run_copy, tmp_path / "x.json", "--stages", "S9")
    assert res.returncode != 0 and "--stages" in res.stderr and "S9" in res.stderr
    assert not (tmp_path / "x.json").exists()
