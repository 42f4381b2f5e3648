"""One table of bad inputs, walked through the four commands that read data: ``data check``, ``run``, ``answer predict``, ``export``.

Every bad input sits on line 2 of a split file. Each command must exit 2 with ``idiff: error:``,
name the file, the line and a fix, print no traceback, and leave the data folder and the run folder
byte-identical. The commands run in-process (`idiff_lib.cli.main`), so the table stays cheap; the
chain's notebook execution is replaced by a failure, so a bad input that slipped through ``run``'s
checks fails the test at once instead of running a chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from answer_fixtures import make_pairs_file, train_tiny_answer_run
from PIL import Image

from idiff_lib import cli
from idiff_lib.chain import runner
from idiff_lib.core import layout
from idiff_lib.data.pairs import format_completion, read_pairs

BAD_FILE = "test_sft.jsonl"


def _snapshot(*roots: Path) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for root in roots for f in sorted(root.rglob("*"))
            if f.is_file() and not f.is_symlink()}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A good data folder (train/val/test, two pairs each) and a tiny Answer run trained on it."""
    root = tmp_path_factory.mktemp("table")
    data = root / "a" / "b" / "data"  # two folders deep: images are also looked for two folders up
    for seed, split in enumerate(("train", "val", "test")):
        make_pairs_file(data, n=2, side=64, seed=seed, name=f"{split}_sft.jsonl")
    run = root / "run"
    train_tiny_answer_run(layout.step_dir(run, layout.ANSWER_STEP), read_pairs(data / "train_sft.jsonl"))
    return data, run


def _second_line(data: Path, change) -> None:
    """Replace line 2 of the bad file with `change(record)` (a dict, or raw text)."""
    path = data / BAD_FILE
    lines = path.read_text().splitlines()
    new = change(json.loads(lines[1]))
    lines[1] = new if isinstance(new, str) else json.dumps(new)
    path.write_text("\n".join(lines) + "\n")


def _symlink_out(data: Path, rec: dict) -> dict:
    outside = data.parents[3] / "outside.png"  # above the folders images are looked for in
    shutil.copy(data / rec["images"][0], outside)
    (data / "images" / "link_merged_c0.png").symlink_to(outside)
    return dict(rec, images=["images/link_merged_c0.png", rec["images"][1]])


def _tiny_image(data: Path, rec: dict) -> dict:
    Image.fromarray(np.full((1, 2, 3), 128, np.uint8)).save(data / "images" / "tiny_merged_c0.png")
    return dict(rec, images=["images/tiny_merged_c0.png", rec["images"][1]])


# name -> (how line 2 is spoilt, what the message must say besides the file and the line, commands that read images)
CASES = {
    "malformed JSON": (lambda d, r: "{not json", ["malformed JSON"]),
    "unknown role": (lambda d, r: dict(r, messages=r["messages"][:2] + [{"role": "expert", "content": "x"}]),
                     ["role 'expert'"]),
    "escaping id": (lambda d, r: dict(r, id="../../escape"), ["'../../escape'", "not a plain name"]),
    "absolute image path": (lambda d, r: dict(r, images=[str((d / r["images"][0]).resolve()), r["images"][1]]),
                            ["absolute path", "--allow-outside-root"]),
    "image path climbing out": (lambda d, r: dict(r, images=["images/../../" + r["images"][0], r["images"][1]]),
                                ["'..'"]),
    "symlink out of the data": (_symlink_out, ["symbolic link"]),
    "missing image": (lambda d, r: dict(r, images=["images/nowhere_c0.png", r["images"][1]]), ["image not found"]),
    "two answers": (lambda d, r: dict(r, messages=r["messages"][:2] + [
        {"role": "assistant", "content": format_completion("Global Overall: B.", "B") + "<answer>A</answer>"}]),
        ["2 <answer> tags"]),
    "answer not A or B": (lambda d, r: dict(r, messages=r["messages"][:2] + [
        {"role": "assistant", "content": "<thinking>x</thinking><answer>C</answer>"}]), ["not A or B"]),
    "unknown layout": (lambda d, r: dict(r, layout="side-by-side"), ["'side-by-side'"]),
    "images not a pair": (lambda d, r: dict(r, images=[r["images"][0]]), ["'images' must be a list of two paths"]),
    "not UTF-8": (lambda d, r: json.dumps(r).replace("images", "im\udcffages", 1).encode("utf-8", "surrogateescape")
                  .decode("latin-1"), []),
    "image too small for views": (_tiny_image, ["at least 32 x 32 px"]),
}
# Cases found only when the images are decoded: `run` checks records and paths before any step, not pixels.
DECODED = {"image too small for views"}
COMMANDS = ("data check", "run", "answer predict", "export")


def _argv(command: str, data: Path, run: Path, scratch: Path) -> list[str]:
    bad = str(data / BAD_FILE)
    return {
        "data check": ["data", "check", bad],
        "run": ["run", "--profile", "tiny", "--data", str(data), "--out", str(scratch / "run"),
                "--fig-dir", str(scratch / "fig"), "--only", "02"],
        "answer predict": ["answer", "predict", "--run", str(run), "--data", bad, "--out", str(scratch / "p.jsonl"),
                           "--device", "cpu"],
        "export": ["export", "--run", str(run), "--data", bad, "--out", str(scratch / "s.jsonl"),
                   "--writer", "template", "--stage", "S1", "--device", "cpu"],
    }[command]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_one_clear_error_and_nothing_changes(base, tmp_path, monkeypatch, capsys, case, command):
    if command == "run" and case in DECODED:
        pytest.skip("`run` checks records and paths before any step; pixels are decoded by the steps")
    good, run = base
    data = tmp_path / "a" / "b" / "data"
    shutil.copytree(good, data, symlinks=True)
    run_copy = tmp_path / "run"
    shutil.copytree(run, run_copy)
    spoil, needles = CASES[case]
    if case == "not UTF-8":
        path = data / BAD_FILE
        lines = path.read_bytes().splitlines()
        lines[1] = lines[1].replace(b"images", b"im\xffages", 1)
        path.write_bytes(b"\n".join(lines) + b"\n")
        needles = ["not UTF-8"]
    else:
        _second_line(data, lambda rec: spoil(data, rec))
    before = _snapshot(data, run_copy)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(runner, "_execute", lambda *a, **k: pytest.fail("a bad input reached a notebook"))
    monkeypatch.chdir(tmp_path)
    code = cli.main(_argv(command, data, run_copy, scratch))
    out, err = capsys.readouterr()
    said = out + err
    assert code == 2, said
    assert "idiff: error:" in err and "Traceback" not in said, said
    for needle in [BAD_FILE, "line 2", "fix", *needles]:
        assert needle in said, (needle, said)
    assert _snapshot(data, run_copy) == before
    assert not (scratch / "p.jsonl").exists() and not (scratch / "s.jsonl").exists(), "a refused command wrote output"
    assert not (scratch / "run").exists() or not any((scratch / "run").glob("0*")), "a refused run started a step"
    if os.environ.get("IDIFF_TABLE_SHOW"):
        print(case, command, err)
