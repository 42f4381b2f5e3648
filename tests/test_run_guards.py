"""Guards of ``idiff run`` (issue 27): folders, the chain's own keys, the run lock, typed and counted
settings, pruning ``.superseded/``, a damaged ``metrics.json``, the code fingerprint and Ctrl-C.

Most tests drive the two toy notebooks of `test_pipeline` (a kernel each, a few seconds); the CLI
ones check the exit code and that the message is one line with no traceback.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idiff_lib import cli
from idiff_lib.chain import context, folders, runner
from idiff_lib.chain.status import chain_status
from idiff_lib.chain.steps import STEP_SETTINGS
from idiff_lib.core import layout
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.core.step_settings import CHAIN_FLAGS, check_type

TESTS = Path(__file__).parent


@pytest.fixture
def chain(toy_chain):
    """The toy chain (conftest's `toy_chain`)."""
    return toy_chain


@pytest.fixture
def no_step_runs(monkeypatch):
    """A refused command must refuse before any notebook runs: running one fails the test at once."""
    def ran(nb, *args):
        pytest.fail(f"step {Path(nb).stem} ran")

    monkeypatch.setattr(runner, "_execute", ran)


def _run(chain: Path, out: Path | None = None, fig: Path | None = None, **kw):
    from test_pipeline import REGISTRY

    kw.setdefault("log", lambda m: None)
    return runner.run_chain("cpu", chain / "data", out or chain / "run", notebooks_dir=chain / "notebooks",
                            fig_dir=fig or chain / "fig", registry=REGISTRY, **kw)


def _status(chain: Path):
    from test_pipeline import REGISTRY

    return chain_status("cpu", chain / "data", chain / "run", notebooks_dir=chain / "notebooks",
                        fig_dir=chain / "fig", registry=REGISTRY)


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(err: str, *names: str) -> None:
    assert "Traceback" not in err, err
    assert err.strip().count("\n") == 0, err
    for name in names:
        assert name in err, (name, err)


# --------------------------------------------------------------------------- 1. --out / --fig-dir and --data
@pytest.mark.parametrize("out, fig, words", [
    ("data", "fig", ["--out", "is the data folder"]),
    ("data/run", "fig", ["--out", "is inside the data folder"]),
    (".", "fig", ["--out", "holds the data folder"]),
    ("run", "data/figures", ["--fig-dir", "is inside the data folder"]),
    ("data_link/run", "fig", ["--out", "is inside the data folder"]),  # the same folder through a link
])
def test_out_or_fig_dir_in_the_data_folder_is_refused_and_the_data_untouched(chain, out, fig, words):
    (chain / "data_link").symlink_to(chain / "data")
    before = _snapshot(chain / "data")
    with pytest.raises(ParameterError) as err:
        _run(chain, chain / out, chain / fig)
    for word in words + ["--data", "fix:"]:
        assert word in str(err.value)
    assert "\n" not in str(err.value)
    assert _snapshot(chain / "data") == before
    assert not (chain / "data" / "run").exists() and not (chain / "data" / "figures").exists()


def test_out_equal_to_data_on_the_command_line(tmp_path):
    """The issue's command: ``idiff run --data D --out D`` exits 2 with one line, D unchanged."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "train_sft.jsonl").write_text("{}\n")
    before = _snapshot(data)
    env = {**os.environ, "IDIFF_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "idiff_lib.cli", "run", "--profile", "tiny", "--data", str(data),
                          "--out", str(data), "--only", "01", "--fig-dir", str(tmp_path / "f")],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert res.returncode == 2, res.stderr
    _one_line_error(res.stderr, "--out", "--data", str(data), "fix:")
    assert _snapshot(data) == before and not (tmp_path / "f").exists()


# --------------------------------------------------------------------------- 2. the chain's own keys
@pytest.mark.parametrize("key", ["step_dir", "run_dir", "data_dir", "fig_dir", "profile"])
def test_the_chain_keys_are_refused_in_param_naming_the_flag(chain, key):
    before = _snapshot(chain / "data")
    with pytest.raises(ParameterError, match=f"--param {key}: .*set by the chain.*{CHAIN_FLAGS[key]}") as err:
        _run(chain, overrides={key: str(chain / "data")})
    assert f"fix: pass {CHAIN_FLAGS[key]}" in str(err.value)
    assert _snapshot(chain / "data") == before and not (chain / "run").exists()


def test_known_parameters_no_longer_list_the_chain_keys(chain):
    with pytest.raises(ParameterError, match="Known parameters: value, wait_s") as err:
        _run(chain, overrides={"valeu": 1})
    assert "step_dir" not in str(err.value)


# --------------------------------------------------------------------------- 3. one run per run folder
def _hold_lock_script(run_dir: Path) -> str:
    return (f"import time; from pathlib import Path; from idiff_lib.chain.folders import run_lock\n"
            f"with run_lock(Path({str(run_dir)!r})):\n"
            f"    print('ready', flush=True)\n"
            f"    time.sleep(120)\n")


def test_a_second_run_on_the_same_out_is_refused_naming_the_holder(chain):
    """A run is under way in a subprocess; a second one is refused, --status still reads; a killed run frees it."""
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); from test_pipeline import REGISTRY; "
              f"from pathlib import Path; from idiff_lib.chain import runner; "
              f"runner._code_fingerprint = lambda: 'code'; "
              f"runner.run_chain('cpu', Path({str(chain / 'data')!r}), Path({str(chain / 'run')!r}), "
              f"notebooks_dir=Path({str(chain / 'notebooks')!r}), fig_dir=Path({str(chain / 'fig')!r}), "
              f"overrides={{'wait_s': 60.0}}, registry=REGISTRY)")
    env = {**os.environ, "IDIFF_CACHE_DIR": str(chain / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = chain / "run" / "02_second" / "started"
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert started.exists(), "the first run never reached step 02"
        assert (chain / "run" / layout.RUN_LOCK).read_text().strip() == str(proc.pid)
        with pytest.raises(ParameterError) as err:
            _run(chain, overrides={"wait_s": 0.0})
        message = str(err.value)
        assert f"PID {proc.pid}" in message and "in use" in message and "fix:" in message and "\n" not in message
        assert [s.state for s in _status(chain)] == ["up to date", "interrupted"]  # --status needs no lock
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: the operating system releases the lock
        proc.wait()
    assert [r.status for r in _run(chain, overrides={"wait_s": 0.0})] == ["skipped", "ran"]
    assert (chain / "run" / layout.RUN_LOCK).read_text() == ""  # released: no PID left behind


def test_the_lock_error_on_the_command_line_is_one_line(tmp_path, capsys, no_step_runs):
    run_dir, data = tmp_path / "run", tmp_path / "d"
    data.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _hold_lock_script(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        code = cli.main(["run", "--profile", "tiny", "--data", str(data), "--out", str(run_dir), "--only", "01",
                         "--fig-dir", str(tmp_path / "f")])
        err = capsys.readouterr().err
        assert code == 2
        _one_line_error(err, f"PID {proc.pid}", str(run_dir), "fix:")
        assert not (run_dir / layout.EXPLORE_STEP).exists()
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- 4. typed lists and dicts
@pytest.mark.parametrize("step, override, words", [
    (layout.ANSWER_STEP, {"backbones": [1]}, ["'backbones'", "list[str]", "item 0 is int"]),
    (layout.ANSWER_STEP, {"checkpoints": {"resnet10t": 3}}, ["'checkpoints'", "dict[str, str]", "value 3 is int"]),
    (layout.ANSWER_STEP, {"scratch_rows": "split"}, ["'scratch_rows'", "list[str]", "got str"]),
    (layout.THINKING_STEP, {"stages": ["S0", None]}, ["'stages'", "list[str]", "item 1 is NoneType"]),
])
def test_list_and_dict_items_are_checked_against_the_settings_types(step, override, words):
    with pytest.raises(ParameterError) as err:
        runner.step_params(step, "tiny", {}, override)
    for word in words + ["fix:"]:
        assert word in str(err.value)


def test_check_type_accepts_matching_items():
    check_type("x", ["a", "b"], list[str], "here")
    check_type("x", {"a": "b"}, dict[str, str], "here")
    check_type("x", [1, 2.5], list[float], "here")  # an int is a float
    with pytest.raises(ParameterError, match="item 0 is bool"):
        check_type("x", [True], list[int], "here")


def test_a_mistyped_list_item_on_the_command_line_is_one_line(tmp_path, capsys, no_step_runs):
    code = cli.main(["run", "--profile", "tiny", "--out", str(tmp_path / "run"), "--param", "backbones=[1]"])
    assert code == 2
    _one_line_error(capsys.readouterr().err, "backbones", "list[str]")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 5. counts are never negative
def _int_fields(cls):
    hints = cls.field_annotations()
    return [f for f in dataclasses.fields(cls) if hints[f.name] is int]


@pytest.mark.parametrize("step", sorted(STEP_SETTINGS))
def test_every_int_setting_refuses_a_negative_value(step):
    cls = STEP_SETTINGS[step]
    for f in _int_fields(cls):
        if f.default < 0:  # a sentinel (grpo_max_steps = -1: run the epochs)
            continue
        with pytest.raises(ParameterError, match=f.name):
            cls.from_params({f.name: -1})


@pytest.mark.parametrize("cls_step, name, value, ok", [
    (layout.ANSWER_STEP, "epochs", -1, False),
    (layout.ANSWER_STEP, "epochs", 0, False),
    (layout.ANSWER_STEP, "batch_size", 0, False),
    (layout.ANSWER_STEP, "max_pairs", 0, True),  # 0: all pairs
    (layout.ANSWER_STEP, "pretext_steps", 0, True),  # 0: no pretext task
    (layout.ANALYSIS_STEP, "cam_pairs", 0, True),  # 0: none explained
    (layout.ANALYSIS_STEP, "bins", 0, False),
    (layout.SCORING_STEP, "limit", 0, True),  # 0: every pair
    (layout.SCORING_STEP, "bootstrap", -5, False),
    (layout.EXPLORE_STEP, "grid_pairs", -1, False),
    (layout.THINKING_STEP, "final_test_limit", 0, True),  # 0: the whole split
    (layout.THINKING_STEP, "max_steps", 0, True),  # 0: off
    (layout.THINKING_STEP, "grpo_max_steps", -1, True),  # -1: run the epochs
])
def test_counts_where_zero_means_all_or_off_stay_allowed(cls_step, name, value, ok):
    cls = STEP_SETTINGS[cls_step]
    if ok:
        assert getattr(cls.from_params({name: value}), name) == value
    else:
        with pytest.raises(ParameterError, match=f"'{name}' must be >= "):
            cls.from_params({name: value})


def test_negative_epochs_on_the_command_line_is_one_line(tmp_path, capsys, no_step_runs):
    code = cli.main(["run", "--profile", "tiny", "--out", str(tmp_path / "run"), "--param", "epochs=-1"])
    assert code == 2
    _one_line_error(capsys.readouterr().err, "'epochs'", ">= 1", "fix:")


# --------------------------------------------------------------------------- 6. pruning .superseded/
def _superseded(run_dir: Path, names_sizes: dict[str, int]) -> None:
    for name, size in names_sizes.items():
        folder = run_dir / folders.SUPERSEDED_DIR / name
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "weights.pt").write_bytes(b"x" * size)


STAMPS = ["20260101T000000Z", "20260101T000000Z-2", "20260102T000000Z", "20260103T000000Z", "20260104T000000Z"]


def test_prune_keeps_the_newest_per_step_and_says_what_it_freed(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _superseded(run_dir, {**{f"01_a-{s}": 1000 for s in STAMPS}, "02_b-20260101T000000Z": 7})
    (run_dir / folders.SUPERSEDED_DIR / "notes.txt").write_text("not ours")
    (run_dir / folders.SUPERSEDED_DIR / "kept by hand").mkdir()
    note = folders.superseded_note(run_dir)
    assert note and "6 superseded step folders (5.0 kB)" in note and "--prune-superseded" in note
    assert cli.main(["run", "--prune-superseded", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    left = sorted(p.name for p in (run_dir / folders.SUPERSEDED_DIR).iterdir())
    assert left == ["01_a-20260102T000000Z", "01_a-20260103T000000Z", "01_a-20260104T000000Z",
                    "02_b-20260101T000000Z", "kept by hand", "notes.txt"]
    assert "removed" in out and "01_a-20260101T000000Z-2" in out and "2 folder(s) removed, 2.0 kB freed" in out
    assert folders.superseded_note(run_dir) is None  # nothing beyond 3 per step: the run says nothing
    assert cli.main(["run", "--prune-superseded", "--out", str(run_dir), "--keep", "0"]) == 0
    assert sorted(p.name for p in (run_dir / folders.SUPERSEDED_DIR).iterdir()) == ["kept by hand", "notes.txt"]


def test_a_run_reports_superseded_folders_but_never_deletes_them(tmp_path, monkeypatch, capsys):
    import idiff_lib.cli.run as cmd  # alias: the command module under test

    run_dir = tmp_path / "run"
    _superseded(run_dir, {f"01_a-{s}": 10 for s in STAMPS})
    monkeypatch.setattr(cmd, "run_chain", lambda *a, **k: [])
    assert cli.main(["run", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "5 superseded step folders (50 B)" in out and f"--prune-superseded --out {run_dir}" in out
    assert len(list((run_dir / folders.SUPERSEDED_DIR).iterdir())) == 5


def test_prune_flags_are_checked(tmp_path, capsys):
    assert cli.main(["run", "--out", str(tmp_path), "--keep", "2"]) == 2
    _one_line_error(capsys.readouterr().err, "--keep", "--prune-superseded")
    assert cli.main(["run", "--prune-superseded", "--out", str(tmp_path), "--keep", "-1"]) == 2
    _one_line_error(capsys.readouterr().err, "--keep -1")
    assert cli.main(["run", "--prune-superseded", "--out", str(tmp_path / "none")]) == 2
    _one_line_error(capsys.readouterr().err, "not a run folder")


def test_prune_waits_for_no_run_it_is_refused_while_one_holds_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    _superseded(run_dir, {f"01_a-{s}": 10 for s in STAMPS})
    proc = subprocess.Popen([sys.executable, "-c", _hold_lock_script(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(ParameterError, match=f"PID {proc.pid}"):
            folders.prune_superseded(run_dir, log=lambda m: None)
    finally:
        proc.kill()
        proc.wait()
    assert len(list((run_dir / folders.SUPERSEDED_DIR).iterdir())) == 5


# --------------------------------------------------------------------------- 7. a damaged metrics.json
def test_a_damaged_metrics_json_names_the_file_and_the_step_to_rerun(chain):
    _run(chain)
    metrics = chain / "run" / "01_first" / layout.METRICS_FILE
    metrics.write_text('{"value": 3')  # cut short
    with pytest.raises(DataError) as err:
        context.load_metrics(chain / "run", "01_first")
    assert str(metrics) in str(err.value) and "not valid JSON" in str(err.value)
    assert "idiff run --from 01_first" in str(err.value)
    first, second = _status(chain)
    assert first.state == "out of date" and "idiff run --from 01_first" in first.line()
    assert second.state == "up to date"
    assert [r.status for r in _run(chain)] == ["ran", "skipped"]  # a run redoes the damaged step
    assert context.load_metrics(chain / "run", "01_first") == {"value": 3}


def test_metrics_that_are_not_an_object_are_refused(chain, tmp_path):
    step = tmp_path / "run2" / "01_first"
    step.mkdir(parents=True)
    (step / layout.METRICS_FILE).write_text("[1, 2]")
    with pytest.raises(DataError, match="not a JSON object"):
        context.load_metrics(tmp_path / "run2", "01_first")
    (step / layout.METRICS_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="not valid JSON"):
        context.load_metrics(tmp_path / "run2", "01_first")


# --------------------------------------------------------------------------- 8. the code fingerprint
MODULE = '''\
"""A module."""

RATE = 0.5  # why


class Model:
    """A model."""

    def forward(self, x):
        """Scale x."""
        # a comment
        return x * RATE


def only_docstring():
    """Nothing else."""
'''


def test_code_fingerprint_ignores_docstrings_and_comments_not_code(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "configs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text(MODULE)
    (pkg / "configs" / "a.yaml").write_text("x: 1\n")
    base = runner._code_fingerprint(pkg)

    def with_module(text: str) -> str:
        (pkg / "model.py").write_text(text)
        return runner._code_fingerprint(pkg)

    for same in (MODULE.replace('"""A model."""', '"""A better model.\n\n    Longer.\n    """'),
                 MODULE.replace("# a comment", "# another comment, longer"),
                 MODULE.replace("RATE = 0.5  # why", "RATE = 0.5\n\n\n# moved comment"),
                 MODULE.replace('"""Nothing else."""', '"""Still nothing else."""'),
                 MODULE.replace('"""A module."""', "# no docstring now")):
        assert with_module(same) == base, same
    for changed in (MODULE.replace("x * RATE", "x + RATE"), MODULE.replace("0.5", "0.25"),
                    MODULE.replace('"""Nothing else."""', '"""Nothing else."""\n    return 1'),
                    MODULE + "\nNAME = 'a string that is code, not a docstring'\n"):
        assert with_module(changed) != base, changed
    with_module(MODULE)
    (pkg / "configs" / "a.yaml").write_text("x: 2\n")
    assert runner._code_fingerprint(pkg) != base  # configs count by content
    (pkg / "configs" / "a.yaml").write_text("x: 1\n")
    (pkg / "broken.py").write_text("def (:\n")  # does not parse: hashed by content
    broken = runner._code_fingerprint(pkg)
    assert broken != base and runner._code_fingerprint(pkg) == broken


# --------------------------------------------------------------------------- 9. Ctrl-C during a step
_CTRL_C = """
import functools, signal, sys
from pathlib import Path
# A job started in the background inherits SIGINT as ignored; restore Python's own handler, as a terminal has it.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from test_pipeline import REGISTRY
import idiff_lib.cli.run as cmd  # alias: the command module under test
from idiff_lib.chain import context, folders, runner
runner._code_fingerprint = lambda: "code"
cmd.run_chain = functools.partial(runner.run_chain, notebooks_dir=Path({nbs!r}), registry=REGISTRY)
from idiff_lib.cli import main
sys.exit(main(["run", "--data", {data!r}, "--out", {run!r}, "--fig-dir", {fig!r}, "--param", "wait_s=120.0"]))
"""


def test_ctrl_c_during_a_step_prints_one_line_no_kernel_noise(chain):
    """Ctrl-C as a terminal sends it (to the whole process group) while a notebook cell runs.

    Before, the kernel's own log reached the terminal: a warning at its start and, as it was shut
    down mid-cell, a ``zmq`` traceback.
    """
    script = _CTRL_C.format(tests=str(TESTS), nbs=str(chain / "notebooks"), data=str(chain / "data"),
                            run=str(chain / "run"), fig=str(chain / "fig"))
    env = {**os.environ, "IDIFF_CACHE_DIR": str(chain / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    started = chain / "run" / "02_second" / "started"
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert started.exists(), proc.communicate()[1] if proc.poll() is not None else "step 02 never started"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    _one_line_error(err, "interrupted", "rerun")
    assert "zmq" not in err and "IPKernelApp" not in err
    assert (chain / "run" / "02_second" / layout.KERNEL_LOG).exists()  # the kernel's messages are kept there


def test_a_dead_kernel_names_its_log(chain, monkeypatch):
    import papermill
    from nbclient.exceptions import DeadKernelError

    def dies(*args, **kwargs):
        raise DeadKernelError("Kernel died")

    monkeypatch.setattr(papermill, "execute_notebook", dies)
    with pytest.raises(runner.StepFailed, match=f"kernel died.*{layout.KERNEL_LOG}"):
        _run(chain)

