"""Bad inputs to ``idiff answer predict`` (and bad arguments to every ``idiff`` subcommand), run as a user would.

Each case runs ``python -m idiff_lib.cli`` in a subprocess (the table of every subcommand's bad
files: ``cli.main`` in process) and checks the exit code, that the message names the file / line /
parameter, that no traceback reaches stderr and that no file that existed before changed.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from answer_fixtures import make_pairs_file, train_tiny_answer_run

from idiff_lib import cli
from idiff_lib.answer.experiments import ensemble, ensemblers, run_store
from idiff_lib.answer.train.feature_member import FeatureMember
from idiff_lib.data.pairs import read_pairs



def idiff(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the ``idiff`` command in a subprocess (the environment, PYTHONPATH included, passes through)."""
    return subprocess.run([sys.executable, "-m", "idiff_lib.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600, check=False)


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots`, to check that a refused command changed nothing."""
    out = {}
    for root in roots:
        for f in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]:
            if f.is_file():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def assert_refused(res: subprocess.CompletedProcess, *names: str | Path) -> None:
    """Exit 2 with ``idiff: error:``, no traceback, and every one of `names` in the message."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "idiff: error:" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    for name in names:
        assert str(name) in res.stderr, (name, res.stderr)


class RunsCode:
    """Unpickling (or rebuilding) this object would create `target`: a stand-in for a crafted member."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))

    def __setstate__(self, state):
        open(state["target"], "w").close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A notebook-02 step folder with a network member and a feature member, and its labelled pairs."""
    root = tmp_path_factory.mktemp("run14c")
    pf = make_pairs_file(root / "d", n=4, side=64)
    pairs = read_pairs(pf)
    run = train_tiny_answer_run(root / "run", pairs)
    # a second step folder that also holds a feature member (its skops file is what one test crafts)
    import pandas as pd

    table = pd.DataFrame({"x.diff": [float(i % 2) for i in range(len(pairs))]}, index=[p.id for p in pairs])
    feat = FeatureMember(kind="logistic", seed=0).fit(table, [p.answer for p in pairs])
    with_feat = root / "run_feat"
    shutil.copytree(run, with_feat)
    net2 = ensemble.network_member("m", {"": with_feat / "members" / "m"})
    run_store.save_answer_run(with_feat, [net2, ensemble.FeatureMemberAdapter(feat, lambda p: table)],
                              ensemblers.make_ensembler("mean"))
    return run, pf, with_feat


@pytest.fixture
def work(trained, tmp_path):
    """Private copies of the trained run, the run with a feature member and the pairs (with their images)."""
    run, pf, with_feat = trained
    shutil.copytree(run, tmp_path / "run")
    shutil.copytree(with_feat, tmp_path / "run_feat")
    shutil.copytree(pf.parent, tmp_path / "d")
    return tmp_path / "run", tmp_path / "d" / pf.name, tmp_path / "run_feat"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# --------------------------------------------------------------------------- 1. --skip-bad
def test_skip_bad_with_every_pair_bad_exits_non_zero_and_reports_each(work, tmp_path):
    run, pf, _ = work
    for f in (pf.parent / "images").iterdir():  # every image absent, as for RAIM pairs without their images
        f.unlink()
    out = tmp_path / "preds.jsonl"
    out.write_text("an earlier result\n")
    before = snapshot(tmp_path)
    res = idiff("answer", "predict", "--run", run, "--data", pf, "--out", out, "--skip-bad", "--device", "cpu")
    assert_refused(res, pf, "no pair could be predicted", tmp_path / "preds.bad.jsonl")
    assert out.read_text() == "an earlier result\n"
    bad = [json.loads(s) for s in _lines(tmp_path / "preds.bad.jsonl")]
    assert [b["line"] for b in bad] == [1, 2, 3, 4]
    assert all(b["id"] and "not found" in b["error"] for b in bad)
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before
    assert not (tmp_path / "preds.partial.jsonl").exists()


def test_skip_bad_keeps_input_order_and_writes_a_bad_report(work, tmp_path):
    run, pf, _ = work
    lines = _lines(pf)
    lines.insert(1, '{"images": ["x.png"')  # line 2: malformed JSON
    lines.insert(3, "[1, 2]")  # line 4: a JSON list
    pf.write_text("\n".join(lines) + "\n")
    (pf.parent / json.loads(lines[4])["images"][0]).unlink()  # line 5: its image is absent
    out = tmp_path / "preds.jsonl"
    res = idiff("answer", "predict", "--run", run, "--data", pf, "--out", out, "--skip-bad", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    rows = [json.loads(s) for s in _lines(out)]
    assert len(rows) == 6
    errors = [r.get("error") is not None for r in rows]
    assert errors == [False, True, False, True, True, False]
    assert [r["line"] for r in rows if r.get("error")] == [2, 4, 5]
    assert all(f"line {r['line']}" in r["error"] for r in rows if r.get("error"))
    ids = [p.id for p in read_pairs(pf, skip_bad=True)]
    assert [r["id"] for r in rows if r["id"] is not None] == ids  # the good and the unreadable, in order
    bad = [json.loads(s) for s in _lines(tmp_path / "preds.bad.jsonl")]
    assert [b["line"] for b in bad] == [2, 4, 5]
    assert bad[0]["id"] is None and bad[2]["id"] == ids[2]
    assert not (tmp_path / "preds.partial.jsonl").exists()


# --------------------------------------------------------------------------- 2. never unpickle
def _craft_pkl(run: Path, marker: Path) -> Path:
    target = run / "members" / "x.pkl"
    target.write_bytes(pickle.dumps(RunsCode(str(marker))))
    old = {"members": [{"name": "x", "kind": "pickle", "path": "members/x.pkl"}],
           "ensembler": {"name": "mean", "state": {}}}
    (run / "ensemble.json").write_text(json.dumps(old))
    return run / "ensemble.json"


def _craft_pt(run: Path, marker: Path) -> Path:
    target = run / "members" / "m" / "best.pt"
    torch.save({"model": RunsCode(str(marker))}, target)  # a pickled object that runs code when unpickled
    return target


def _craft_skops(run: Path, marker: Path) -> Path:
    import skops.io as sio  # alias: skops' documented short name

    target = run / "members" / "features.skops"
    sio.dump({"class": "FeatureMember", "model": RunsCode(str(marker))}, target)
    return target


@pytest.mark.parametrize("craft", [_craft_pkl, _craft_pt, _craft_skops], ids=["pkl", "best.pt", "skops"])
def test_a_crafted_run_is_refused_without_running_code(work, tmp_path, craft):
    run, pf, run_feat = work
    folder = run_feat if craft is _craft_skops else run
    marker = tmp_path / "code_ran"
    named = craft(folder, marker)
    before = snapshot(tmp_path)
    out = tmp_path / "preds.jsonl"
    res = idiff("answer", "predict", "--run", folder, "--data", pf, "--out", out, "--device", "cpu")
    assert_refused(res, named.name)
    assert str(named.resolve()) in res.stderr or str(named) in res.stderr, res.stderr
    assert not marker.exists()
    assert not out.exists()
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 4. no internal errors
def _spec_edit(edit):
    """A case that damages the copied run's ensemble.json with `edit(spec)`; the message names ensemble.json."""
    def case(run: Path, pf: Path, tmp: Path):
        spec = json.loads((run / "ensemble.json").read_text())
        edit(spec)
        (run / "ensemble.json").write_text(json.dumps(spec))
        return ["--run", run, "--data", pf, "--out", tmp / "p.jsonl"], ["ensemble.json"]
    return case


def _args(run_arg=None, data_arg=None, out_arg=None, extra=(), names=()):
    """A case from argument makers (each run, pf, tmp -> value) and the names its message must hold."""
    def case(run: Path, pf: Path, tmp: Path):
        r = run_arg(run, pf, tmp) if run_arg else run
        d = data_arg(run, pf, tmp) if data_arg else pf
        o = out_arg(run, pf, tmp) if out_arg else tmp / "p.jsonl"
        return ["--run", r, "--data", d, "--out", o, *extra], [n(run, pf, tmp) if callable(n) else n for n in names]
    return case


def _file(text: str):
    def make(run, pf, tmp):
        (tmp / "in.jsonl").write_text(text)
        return tmp / "in.jsonl"
    return make


def _empty_dir(run, pf, tmp):
    (tmp / "empty").mkdir(exist_ok=True)
    return tmp / "empty"


def _members_of(spec):
    return spec["members"][0]["models"][""]


PREDICT_CASES = {
    "data missing": _args(data_arg=lambda r, p, t: t / "nope.jsonl", names=["nope.jsonl"]),
    "data is a folder": _args(data_arg=_empty_dir, names=["empty", "folder"]),
    "data not JSON": _args(data_arg=_file("not json at all\n"), names=["in.jsonl", "line 1"]),
    "data line is a list": _args(data_arg=_file("[1, 2]\n"), names=["in.jsonl", "line 1", "object"]),
    "run folder empty": _args(run_arg=_empty_dir, names=["empty", "ensemble.json"]),
    "run is a file": _args(run_arg=lambda r, p, t: p, names=[lambda r, p, t: p.name, "ensemble.json"]),
    "out is a folder": _args(out_arg=_empty_dir, names=["empty", "--out"]),
    "out is the data": _args(out_arg=lambda r, p, t: p, names=["--out", lambda r, p, t: p.name]),
    "batch size 0": _args(extra=["--batch-size", "0"], names=["--batch-size"]),
    "device unknown": _args(extra=["--device", "gpu"], names=["--device"]),
    "spec without ensembler": _spec_edit(lambda s: s.pop("ensembler")),
    "spec ensembler a string": _spec_edit(lambda s: s.update(ensembler="mean")),
    "spec models a list": _spec_edit(lambda s: s["members"][0].update(models=["x"])),
    "spec weights a number": _spec_edit(lambda s: _members_of(s).update(weights=3)),
    "spec unknown setting": _spec_edit(lambda s: _members_of(s).update(settings={"bogus": 1})),
    "spec settings unlike weights": _spec_edit(lambda s: _members_of(s)["settings"].update(hidden=99)),
    "spec no members": _spec_edit(lambda s: s.update(members=[])),
    "spec a JSON list": _spec_edit(lambda s: s.clear()),
}


@pytest.mark.parametrize("name", list(PREDICT_CASES))
def test_predict_bad_arguments_name_the_problem(work, tmp_path, name):
    run, pf, _ = work
    args, names = PREDICT_CASES[name](run, pf, tmp_path)
    if name == "spec a JSON list":
        (run / "ensemble.json").write_text("[1, 2]\n")
    before = snapshot(tmp_path)
    res = idiff("answer", "predict", *args, "--device", "cpu") if "--device" not in args else \
        idiff("answer", "predict", *args)
    assert_refused(res, *names)
    assert "internal error" not in res.stderr, res.stderr
    assert snapshot(tmp_path) == before


def _bad_input(kind: str, tmp: Path) -> Path:
    """A bad input of `kind`: a missing file, a folder, a non-JSON file, a JSONL whose line is a list, an empty run."""
    if kind == "missing":
        return tmp / "missing.jsonl"
    if kind in ("folder", "empty run"):
        (tmp / "folder").mkdir(exist_ok=True)
        return tmp / "folder"
    (tmp / "bad.jsonl").write_text("not json\n" if kind == "not json" else "[1, 2]\n")
    return tmp / "bad.jsonl"


# every subcommand that reads a file, with {bad} where the bad input goes (ones that need a network are left out)
SUBCOMMANDS = {
    "data check": ["data", "check", "{bad}"],
    "score": ["score", "--pred", "{bad}", "--ref", "{bad}", "--no-semantic", "--out", "{tmp}/s.json"],
    "think generate": ["think", "generate", "--data", "{bad}", "--out", "{tmp}/g.jsonl", "--writer", "template"],
    "think export-swift": ["think", "export-swift", "--data", "{bad}", "--out", "{tmp}/sw.jsonl"],
    "think cues": ["think", "cues", "--data", "{bad}", "--out", "{tmp}/cues.jsonl", "--sources", "cv"],
    "think train": ["think", "train", "--data", "{bad}", "--out", "{tmp}/tt"],
    "export": ["export", "--run", "{tmp}", "--data", "{bad}", "--out", "{tmp}/e.jsonl", "--writer", "template"],
    "run": ["run", "--data", "{bad}", "--out", "{tmp}/rr", "--only", "02_train_answer_model"],
}
RUN_ARGS = {  # the subcommands that read a run folder, with the empty folder as --run
    "export": ["export", "--run", "{bad}", "--data", "{bad}/x.jsonl", "--out", "{tmp}/e.jsonl", "--writer", "template"],
    "think generate": ["think", "generate", "--run", "{bad}", "--data", "{bad}/x.jsonl", "--out", "{tmp}/g.jsonl"],
}


def idiff_in_process(capsys, *args: str | Path) -> subprocess.CompletedProcess:
    """`cli.main` in this process, shaped like `idiff`'s result: what the user sees, without a new interpreter.

    A subprocess per case paid about 7 s of imports (torch, transformers) for each of 34 cases; the
    entry point, its exit codes and its one-line messages are the same in process.
    """
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["idiff", *map(str, args)], code, out, err)


@pytest.mark.parametrize("command,kind", [(c, k) for c in SUBCOMMANDS for k in ("missing", "folder", "not json", "list")]
                         + [(c, "empty run") for c in RUN_ARGS])
def test_no_subcommand_leaks_an_internal_error(tmp_path, capsys, command, kind):
    bad = _bad_input(kind, tmp_path)
    template = RUN_ARGS[command] if kind == "empty run" else SUBCOMMANDS[command]
    before = snapshot(tmp_path)
    res = idiff_in_process(capsys, *[a.format(bad=bad, tmp=tmp_path) for a in template])
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    assert bad.name in res.stderr or "ensemble.json" in res.stderr or "thinking.json" in res.stderr, res.stderr
    assert snapshot(tmp_path) == before
