"""Bad inputs to ``idiff export``, ``idiff answer predict``, ``idiff run`` and the ``idiff`` entry point.

Each test runs the CLI as a user would (a subprocess) and checks the exit code, that the message
names the file / parameter, that no traceback reaches stderr and that no existing file changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from answer_fixtures import bare_member, make_pairs_file
from idiff_lib.answer.model import inputs
from idiff_lib.answer.experiments import ensemble, ensemblers, run_store
from idiff_lib.answer.train import training
from idiff_lib.core import layout
from idiff_lib.data.pairs import read_pairs



def _idiff(*args, cwd=None, env=None):
    """Run ``idiff ARGS`` in a subprocess; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "idiff_lib.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def _snapshot(*folders):
    """Every file under `folders` with its bytes, to check that nothing existing changed."""
    return {p: p.read_bytes() for f in folders for p in sorted(Path(f).rglob("*")) if p.is_file()}


def _refused(res, *names, code=2):
    assert res.returncode == code, res.stderr + res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    for name in names:
        assert str(name) in res.stderr, (name, res.stderr)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A chain run folder whose step 02 holds a one-member network ensemble, and its labelled pairs."""
    root = tmp_path_factory.mktemp("run14a")
    pf = make_pairs_file(root / "d", n=4, side=64, name="test_sft.jsonl")
    pairs = read_pairs(pf)
    cfg = bare_member(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40, epochs=1,
                      batch_size=4, hidden=8)
    items = inputs.load_items(pairs, cfg)
    step = layout.step_dir(root / "run", layout.ANSWER_STEP)
    training.train_member(cfg, items, (), step / "members" / "m", progress=False)
    net = ensemble.network_member("m", {"": step / "members" / "m"})
    run_store.save_answer_run(step, [net], ensemblers.make_ensembler("mean"))
    return root / "run", pf


@pytest.fixture
def run_copy(trained, tmp_path):
    """A private copy of the trained run (for tests that damage it) and the pairs file."""
    import shutil

    run, pf = trained
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", pf


# --------------------------------------------------------------------------- 1. export carries the model's output
@pytest.mark.parametrize("labelled", [True, False])
def test_export_writes_the_models_answers_not_the_input(trained, tmp_path, labelled):
    run, pf = trained
    if not labelled:
        pf = make_pairs_file(tmp_path / "u", n=4, side=64, labelled=False, name="test.jsonl")
    out = tmp_path / "s.jsonl"
    res = _idiff("export", "--run", run, "--data", pf, "--out", out, "--writer", "template")
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() != pf.read_bytes()
    answers = {r["id"]: r["answer"] for r in map(json.loads, (tmp_path / "s.answers.jsonl").read_text().splitlines())}
    rationales = {r["id"]: r["completion"] for r in map(json.loads, (tmp_path / "s.rationales.jsonl").read_text().splitlines())}
    submitted = read_pairs(out)
    assert [p.id for p in submitted] == [p.id for p in read_pairs(pf)]
    for p in submitted:
        assert p.answer == answers[p.id]
        assert p.thinking in rationales[p.id]
    if labelled:
        summary = json.loads(res.stdout)
        refs = {p.id: p.answer for p in read_pairs(pf)}
        assert summary["accuracy"] == round(sum(p.answer == refs[p.id] for p in submitted) / len(submitted), 4)


# --------------------------------------------------------------------------- 2. export's side files belong to one export
def test_export_side_files_are_not_reused_across_runs_or_data(trained, tmp_path):
    run, pf = trained
    out = tmp_path / "s.jsonl"
    assert _idiff("export", "--run", run, "--data", pf, "--out", out, "--writer", "template").returncode == 0
    answers = tmp_path / "s.answers.jsonl"
    # a stale side file: another run's answers for the same ids (every verdict flipped)
    flipped = [{**r, "answer": "B" if r["answer"] == "A" else "A"} for r in map(json.loads, answers.read_text().splitlines())]
    answers.write_text("".join(json.dumps(r) + "\n" for r in flipped))
    manifest = json.loads((tmp_path / "s.export.json").read_text())
    (tmp_path / "s.export.json").write_text(json.dumps({**manifest, "ensemble": "another run"}))
    res = _idiff("export", "--run", run, "--data", pf, "--out", out, "--writer", "template")
    assert res.returncode == 0, res.stderr
    assert "removed" in json.loads(res.stdout)["note"]
    again = {r["id"]: r["answer"] for r in map(json.loads, answers.read_text().splitlines())}
    assert all(again[r["id"]] != r["answer"] for r in flipped)  # recomputed, not the stale rows
    assert {p.id: p.answer for p in read_pairs(out)} == again
    # other data with the same ids (its content differs): the side files are recomputed too
    other = pf.with_name("other.jsonl")
    other.write_text(pf.read_text().replace("A is cleaner", "A looks cleaner"))
    res = _idiff("export", "--run", run, "--data", other, "--out", out, "--writer", "template")
    assert res.returncode == 0 and "removed" in json.loads(res.stdout)["note"], res.stderr
    # the same export again reuses them (no note)
    res = _idiff("export", "--run", run, "--data", other, "--out", out, "--writer", "template")
    assert res.returncode == 0 and "note" not in json.loads(res.stdout), res.stderr


# --------------------------------------------------------------------------- 3. / 4. output paths checked first
def _bad_out(tmp_path, pf, kind):
    if kind == "input":
        return pf
    if kind == "folder":
        (tmp_path / "a_folder").mkdir()
        return tmp_path / "a_folder"
    (tmp_path / "a_file").write_text("x")  # under a file: no folder can be made there
    return tmp_path / "a_file" / "s.jsonl"


@pytest.mark.parametrize("command", ["export", "answer"])
@pytest.mark.parametrize("kind", ["input", "folder", "under_a_file"])
def test_a_bad_out_is_refused_before_any_work(trained, tmp_path, command, kind):
    run, pf = trained
    out = _bad_out(tmp_path, pf, kind)
    before = _snapshot(pf.parent, tmp_path, run)
    args = (["export", "--writer", "template"] if command == "export" else ["answer", "predict"])
    res = _idiff(*args, "--run", run, "--data", pf, "--out", out)
    _refused(res, out.name, "--out")
    assert _snapshot(pf.parent, tmp_path, run) == before


@pytest.mark.parametrize("damage", ["empty_spec", "truncated_spec", "truncated_weights"])
@pytest.mark.parametrize("command", ["export", "answer"])
def test_a_corrupt_run_folder_is_named_with_the_fix(run_copy, tmp_path, damage, command):
    run, pf = run_copy
    step = layout.step_dir(run, layout.ANSWER_STEP)
    target = step / ("members/m/best.pt" if damage == "truncated_weights" else layout.ENSEMBLE_FILE)
    data = target.read_bytes()
    target.write_bytes(b"" if damage == "empty_spec" else data[: len(data) // 2])
    before = _snapshot(run, pf.parent)
    args = (["export", "--writer", "template"] if command == "export" else ["answer", "predict"])
    res = _idiff(*args, "--run", run, "--data", pf, "--out", tmp_path / "o" / "s.jsonl")
    _refused(res, target.name, "02")
    assert _snapshot(run, pf.parent) == before
    assert not (tmp_path / "o" / "s.jsonl").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into a read-only folder")
def test_out_in_a_read_only_folder_is_refused_before_any_work(trained, tmp_path):
    run, pf = trained
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        res = _idiff("export", "--writer", "template", "--run", run, "--data", pf, "--out", locked / "s.jsonl")
        _refused(res, "locked", "--out")
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o755)


# --------------------------------------------------------------------------- 7. Ctrl-C and internal errors
_SLOW_COMMAND = """
import signal, sys, time
# A job started in the background inherits SIGINT as ignored; restore Python's own handler, as a terminal has it.
signal.signal(signal.SIGINT, signal.default_int_handler)
import idiff_lib.cli.export as cmd  # alias: the command module under test
def slow(args):
    print("ready", flush=True)
    time.sleep(120)
cmd._cli_export = slow
from idiff_lib.cli import main
sys.exit(main(["export", "--run", "r", "--data", "d.jsonl", "--out", "o.jsonl"]))
"""


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    import signal

    proc = subprocess.Popen([sys.executable, "-c", _SLOW_COMMAND], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0 and "interrupted" in err and "rerun" in err


def test_an_internal_error_prints_one_line_and_the_log_path(tmp_path, monkeypatch, capsys):
    from idiff_lib import cli
    import idiff_lib.cli.export as cmd  # alias: the command module under test
    from idiff_lib.core import paths

    def broken(args):
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(cmd, "_cli_export", broken)
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")
    code = cli.main(["export", "--run", "r", "--data", "d.jsonl", "--out", "o.jsonl"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    logs = list((tmp_path / "cache" / "idiff" / "logs").glob("*.log"))
    assert len(logs) == 1 and str(logs[0]) in err and "internal error" in err
    assert "Traceback" in logs[0].read_text() and "ZeroDivisionError: a bug" in logs[0].read_text()


# --------------------------------------------------------------------------- 5. a rerun keeps trained work; --status
def _toy(chain, fn="run_chain", **kw):
    from idiff_lib.chain import runner, status
    from test_pipeline import REGISTRY

    call = runner.run_chain if fn == "run_chain" else status.chain_status
    extra = {"log": lambda m: None} if fn == "run_chain" and "log" not in kw else {}
    return call("cpu", chain / "data", chain / "run", notebooks_dir=chain / "notebooks", registry=REGISTRY,
                fig_dir=chain / "fig", **extra, **kw)


def test_a_settings_change_moves_the_old_step_aside_never_deletes_it(toy_chain):
    _toy(toy_chain)
    step = toy_chain / "run" / "01_first"
    (step / "checkpoint.pt").write_text("trained with value=3")
    logs = []
    _toy(toy_chain, overrides={"value": 5}, log=logs.append)
    kept = list((toy_chain / "run" / ".superseded").glob("01_first-*"))
    assert len(kept) == 1 and (kept[0] / "checkpoint.pt").read_text() == "trained with value=3"
    assert (kept[0] / "value.txt").read_text() == "3" and (step / "value.txt").read_text() == "5"
    assert any(str(kept[0]) in line for line in logs)
    assert len(list((toy_chain / "run" / ".superseded").glob("02_second-*"))) == 1  # upstream changed


def test_the_data_fingerprint_is_the_content_not_the_mtime(toy_chain):
    _toy(toy_chain)
    data = toy_chain / "data" / "train_sft.jsonl"
    st = data.stat()
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))  # touched, same content
    assert [s.state for s in _toy(toy_chain, "status")] == ["up to date", "up to date"]
    assert [r.status for r in _toy(toy_chain)] == ["skipped", "skipped"]
    data.write_text("abd\n")  # other content, same size and mtime (its ctime changes)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
    first, second = _toy(toy_chain, "status")
    assert first.state == "out of date" and first.reasons == ["data changed"]
    assert second.reasons == ["data changed", "upstream step changed"]


def test_status_says_why_each_step_is_out_of_date(toy_chain):
    assert [s.line() for s in _toy(toy_chain, "status")] == ["01_first: never run", "02_second: never run"]
    _toy(toy_chain)
    assert [s.state for s in _toy(toy_chain, "status")] == ["up to date", "up to date"]
    first, second = _toy(toy_chain, "status", overrides={"wait_s": 1.0})
    assert first.state == "up to date" and second.reasons == ["parameters changed"]
    nb = toy_chain / "notebooks" / "01_first.ipynb"
    nb.write_text(nb.read_text().replace("the number", "the value"))
    first, second = _toy(toy_chain, "status")
    assert first.reasons == ["notebook changed"] and second.reasons == ["upstream step changed"]
    (toy_chain / "run" / "01_first" / "step.json").unlink()  # as if interrupted
    assert _toy(toy_chain, "status")[0].state == "interrupted"


def test_run_status_on_the_command_line(tmp_path):
    out = tmp_path / "run"
    res = _idiff("run", "--status", "--profile", "tiny", "--out", out)
    assert res.returncode == 0, res.stderr
    from idiff_lib.chain.runner import available_steps

    assert res.stdout.strip().splitlines() == [f"{step}: never run" for step in available_steps()]
    assert not out.exists()


# --------------------------------------------------------------------------- 6. --param checked before any step
@pytest.mark.parametrize("param, names", [
    ("no_such_key=1", ["no_such_key", "Known parameters"]),
    ("epochs_per_stage=abc", ["epochs_per_stage", "03_tune_thinking_model"]),
    ("worked_pair=p_test_nope", ["worked_pair", "p_test_nope", "Valid ids include: p_test_000"]),
])
def test_a_bad_param_is_refused_before_the_first_step(tmp_path, param, names):
    out = tmp_path / "run"
    res = _idiff("run", "--profile", "tiny", "--out", out, "--param", param)
    _refused(res, *names)
    assert not out.exists()
