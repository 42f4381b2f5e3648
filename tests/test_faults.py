"""Fault tests: ``idiff answer predict`` and ``idiff export --writer template`` killed halfway (SIGKILL)
and rerun give the same bytes as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from answer_fixtures import make_pairs_file, train_tiny_answer_run

from idiff_lib.core import layout
from idiff_lib.data.pairs import read_pairs

pytestmark = pytest.mark.slow


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "idiff_lib.cli", *map(str, args)]


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), capture_output=True, text=True, timeout=900, check=False)


def _rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _kill_when(args, side: Path, min_lines: int, timeout: float = 600) -> None:
    """Start the command, SIGKILL it once `side` has `min_lines` lines; fail if it finished first."""
    proc = subprocess.Popen(_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while _rows(side) < min_lines:
            if proc.poll() is not None:
                pytest.fail(f"finished before it could be interrupted: {proc.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    """A chain run folder whose step 02 holds a one-member network ensemble, and a pairs file of 300 pairs."""
    root = tmp_path_factory.mktemp("faults")
    pf = make_pairs_file(root / "d", n=4, side=64)
    pairs = read_pairs(pf)
    train_tiny_answer_run(layout.step_dir(root / "run", layout.ANSWER_STEP), pairs)
    records = [json.loads(line) for line in pf.read_text().splitlines()]
    many = pf.parent / "many.jsonl"  # the 4 pairs, repeated under distinct ids
    many.write_text("".join(json.dumps({**records[i % 4], "id": f"{'ps'[i % 2]}_{i:04d}"}) + "\n" for i in range(300)))
    return root / "run", many


def test_predict_killed_and_rerun_gives_the_same_bytes(chain_run, tmp_path):
    run, pf = chain_run
    ref, out = tmp_path / "ref" / "preds.jsonl", tmp_path / "cut" / "preds.jsonl"
    common = ["--run", run, "--data", pf, "--device", "cpu", "--batch-size", "8"]
    assert _run("answer", "predict", *common, "--out", ref).returncode == 0
    _kill_when(["answer", "predict", *common, "--out", out], out.with_name("preds.partial.jsonl"), 70)
    assert not out.exists()
    res = _run("answer", "predict", *common, "--out", out)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not out.with_name("preds.partial.jsonl").exists()


def test_export_template_killed_and_rerun_gives_the_same_bytes(chain_run, tmp_path):
    run, pf = chain_run
    ref, out = tmp_path / "ref" / "sub.jsonl", tmp_path / "cut" / "sub.jsonl"
    common = ["--run", run, "--data", pf, "--writer", "template", "--device", "cpu"]
    res = _run("export", *common, "--out", ref)
    assert res.returncode == 0, res.stderr
    _kill_when(["export", *common, "--out", out], out.with_name("sub.rationales.jsonl"), 20)
    assert not out.exists()
    res = _run("export", *common, "--out", out)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == ref.read_bytes()
    for kind in ("answers", "rationales"):
        assert ref.with_name(f"sub.{kind}.jsonl").read_bytes() == out.with_name(f"sub.{kind}.jsonl").read_bytes()
