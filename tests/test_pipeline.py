import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ast
import dataclasses
from typing import ClassVar

import nbformat
import pytest
import yaml

from idiff_lib.chain import context, runner
from idiff_lib.chain.steps import STEP_SETTINGS
from idiff_lib.core import paths
from idiff_lib.core.errors import IdiffError, ParameterError
from idiff_lib.core.step_settings import CELL_PARAMS, COMMON_PARAMS, PROFILES, StepSettings


def _notebook(path: Path, params: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(textwrap.dedent(params))
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(textwrap.dedent(body))]
    nbformat.write(nb, path)


COMMON = """\
profile: str = "cpu"  # profile
data_dir: str = ""  # data
run_dir: str = ""  # run folder
step_dir: str = ""  # step folder
fig_dir: str = ""  # figures
overrides: dict = {}  # settings changed
"""


@dataclasses.dataclass
class FirstSettings(StepSettings):
    STEP: ClassVar[str] = "01_first"
    value: int = 3  # the number


@dataclasses.dataclass
class SecondSettings(StepSettings):
    STEP: ClassVar[str] = "02_second"
    wait_s: float = 0.0  # how long to work


@dataclasses.dataclass
class BrokenSettings(StepSettings):
    STEP: ClassVar[str] = "03_broken"


REGISTRY = {"01_first": FirstSettings, "02_second": SecondSettings, "03_broken": BrokenSettings}


@pytest.fixture(autouse=True)
def fixed_code_fingerprint(monkeypatch):
    """The library's code is the same in every run of a test (other edits may land while it runs)."""
    monkeypatch.setattr(runner, "_code_fingerprint", lambda: "code")


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    return write_toy_chain(tmp_path)


def write_toy_chain(tmp_path: Path) -> Path:
    """Two steps: 01 writes a number, 02 reads it, announces it started, waits, and doubles it."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (tmp_path / "data").mkdir()
    _notebook(nbs / "01_first.ipynb", COMMON + "value: int = 3  # the number\n", """
        from pathlib import Path
        from idiff_lib.chain import context
        ctx = context.notebook_context(globals(), "01_first")
        value = ctx.params["value"]  # a step the library has no settings class for: its cell's own parameter
        (ctx.step_dir / "value.txt").write_text(str(value))
        context.save_metrics(ctx.step_dir, {"value": value})
    """)
    _notebook(nbs / "02_second.ipynb", COMMON + "wait_s: float = 0.0  # how long to work\n", """
        import time
        from idiff_lib.chain import context
        ctx = context.notebook_context(globals(), "02_second")
        (ctx.step_dir / "started").write_text("yes")
        time.sleep(ctx.params["wait_s"])
        value = int((ctx.upstream("01_first") / "value.txt").read_text())
        context.save_metrics(ctx.step_dir, {"double": 2 * value})
    """)
    return tmp_path


def _run(chain: Path, **kw):
    return runner.run_chain("cpu", chain / "data", chain / "run", notebooks_dir=chain / "notebooks",
                              fig_dir=chain / "fig", log=lambda m: None, registry=REGISTRY, **kw)


def test_chain_runs_then_skips(chain):
    assert [r.status for r in _run(chain)] == ["ran", "ran"]
    assert context.load_metrics(chain / "run", "02_second") == {"double": 6}
    for name in ("executed.ipynb", "params.yaml", "metrics.json", "step.json"):
        assert (chain / "run" / "01_first" / name).exists()
    assert [r.status for r in _run(chain)] == ["skipped", "skipped"]
    # a changed parameter reruns that step and everything after it
    assert [r.status for r in _run(chain, overrides={"value": 5})] == ["ran", "ran"]
    assert context.load_metrics(chain / "run", "02_second") == {"double": 10}


def test_killed_step_resumes(chain):
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from test_pipeline import REGISTRY; "
              f"from pathlib import Path; from idiff_lib.chain import runner; "
              f"runner._code_fingerprint = lambda: 'code'; "
              f"runner.run_chain('cpu', Path({str(chain / 'data')!r}), Path({str(chain / 'run')!r}), "
              f"notebooks_dir=Path({str(chain / 'notebooks')!r}), fig_dir=Path({str(chain / 'fig')!r}), "
              f"overrides={{'wait_s': 60.0}}, registry=REGISTRY)")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = chain / "run" / "02_second" / "started"
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert started.exists(), "step 02 never started"
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, mid-step
    proc.wait()
    assert (chain / "run" / "01_first" / "step.json").exists()
    assert not (chain / "run" / "02_second" / "step.json").exists()
    results = _run(chain, overrides={"wait_s": 0.0})
    # 01 is unchanged and skipped; 02 (its parameter changed, and it never finished) runs
    assert [r.status for r in results] == ["skipped", "ran"]
    assert context.load_metrics(chain / "run", "02_second") == {"double": 6}


def test_unknown_parameter_is_refused_before_any_step_runs(chain):
    with pytest.raises(ParameterError, match=r"unknown parameter 'valeu'.*Did you mean one of: value.*Known parameters"):
        _run(chain, overrides={"valeu": 1})
    assert not (chain / "run" / "01_first").exists()


def test_a_key_only_an_unselected_step_knows_is_refused(chain):
    with pytest.raises(ParameterError, match=r"unknown parameter 'wait_s' for step\(s\) 01_first"):
        _run(chain, only=["01"], overrides={"wait_s": 1.0})


def test_wrong_type_for_a_later_step_is_refused_before_the_first_runs(chain):
    with pytest.raises(ParameterError, match=r"02_second.*parameter 'wait_s' must be float, got str"):
        _run(chain, overrides={"wait_s": "long"})
    assert not (chain / "run" / "01_first").exists()


def test_wrong_type_is_named(chain):
    with pytest.raises(ParameterError, match=r"parameter 'value' must be int, got str"):
        _run(chain, overrides={"value": "three"})


def test_params_yaml_records_every_setting(chain):
    _run(chain, overrides={"value": 4})
    recorded = yaml.safe_load((chain / "run" / "02_second" / "params.yaml").read_text())
    assert recorded["wait_s"] == 0.0 and "value" not in recorded
    assert set(COMMON_PARAMS) <= set(recorded)
    assert yaml.safe_load((chain / "run" / "01_first" / "params.yaml").read_text())["value"] == 4


def test_a_step_without_settings_class_is_named(chain):
    with pytest.raises(IdiffError, match="02_second has no settings class"):
        runner.run_chain("cpu", chain / "data", chain / "run", notebooks_dir=chain / "notebooks",
                           log=lambda m: None, registry={"01_first": FirstSettings})


def test_wrong_type_injected_by_hand_is_caught_in_the_notebook():
    with pytest.raises(ParameterError, match="'epochs' must be int"):
        context.notebook_context({"__annotations__": {"epochs": int}, "epochs": 1.5}, "02_x")


def test_failing_step_names_error_and_executed_copy(chain):
    _notebook(chain / "notebooks" / "03_broken.ipynb", COMMON, "raise RuntimeError('boom')\n")
    with pytest.raises(runner.StepFailed, match=r"(?s)03_broken failed.*RuntimeError: boom.*executed.ipynb"):
        _run(chain)


def test_select_steps(chain):
    _run(chain)
    results = _run(chain, only=["02"], force=True)
    assert [r.step for r in results] == ["02_second"]
    with pytest.raises(ParameterError, match="unknown step"):
        _run(chain, from_step="09")


def test_parse_overrides():
    assert runner.parse_overrides(["epochs=2", "lr=1e-4", "name=abc", "flag=true"]) == {
        "epochs": 2, "lr": 1e-4, "name": "abc", "flag": True}
    with pytest.raises(ParameterError):
        runner.parse_overrides(["epochs"])


def test_rerun_with_other_settings_clears_the_step_but_a_resume_keeps_it(chain):
    _run(chain)
    step = chain / "run" / "01_first"
    (step / "checkpoint.pt").write_text("made with value=3")
    (step / "step.json").unlink()  # as if interrupted: same fingerprint, so the folder is kept
    _run(chain)
    assert (step / "checkpoint.pt").exists()
    _run(chain, overrides={"value": 5})  # other parameters: nothing made with value=3 may be reused
    assert not (step / "checkpoint.pt").exists()
    assert (step / "value.txt").read_text() == "5"


def test_threads_are_applied_once_by_the_context(tmp_path):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        ns = {"__annotations__": {"threads": int, "run_dir": str}, "threads": 1, "run_dir": str(tmp_path)}
        context.notebook_context(ns, "02_x")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        ns["threads"] = 0  # 0 leaves torch's own choice
        context.notebook_context(ns, "02_x")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("step", runner.available_steps())
def test_every_notebook_has_a_settings_class(step):
    assert STEP_SETTINGS[step].STEP == step


@pytest.mark.parametrize("step", runner.available_steps())
def test_parameters_cell_repeats_no_setting(step):
    """Each default is written once, in the settings class: the cell holds the chain's parameters and `overrides`."""
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{step}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    names = [n.target.id for n in ast.parse(cell.source).body if isinstance(n, ast.AnnAssign)]
    assert names == list(CELL_PARAMS)
    assert not set(names) & {f.name for f in dataclasses.fields(STEP_SETTINGS[step])}


@pytest.mark.parametrize("step", runner.available_steps())
@pytest.mark.parametrize("profile", PROFILES)
def test_the_notebook_builds_the_settings_the_chain_records(step, profile, tmp_path, monkeypatch):
    """What the notebook is given (the folders, its profile and its own overrides) builds what params.yaml records."""
    monkeypatch.setattr(context, "apply_threads", lambda threads: None)  # not this test process's threads
    cls = STEP_SETTINGS[step]
    first = dataclasses.fields(cls)[0]
    changed = {first.name: getattr(cls.for_profile(profile), first.name)}  # a no-op override, typed as the field
    folders = {"profile": profile, "data_dir": str(tmp_path), "run_dir": str(tmp_path / "run"),
               "step_dir": str(tmp_path / "run" / step), "fig_dir": str(tmp_path / "fig")}
    given = runner.notebook_params(step, folders, {**changed, "no_step_has_this": 1})
    assert set(given) == set(CELL_PARAMS) and given["overrides"] == changed
    ctx = context.notebook_context({"__annotations__": dict(CELL_PARAMS), **given}, step)
    assert ctx.params == runner.step_params(step, profile, folders, changed)
    assert ctx.settings == cls.for_profile(profile)


def test_a_setting_injected_as_a_plain_variable_is_refused_with_the_way_to_pass_it(tmp_path, monkeypatch):
    """``papermill -p cam_pairs 0`` sets a variable the notebook would never read: say so."""
    monkeypatch.setattr(context, "apply_threads", lambda threads: None)
    ns = {"__annotations__": dict(CELL_PARAMS), "profile": "cpu", "run_dir": str(tmp_path), "fig_dir": str(tmp_path),
          "overrides": {}, "cam_pairs": 0}
    with pytest.raises(ParameterError, match=r"cam_pairs set as notebook variables.*overrides = \{'cam_pairs': 0\}"):
        context.notebook_context(ns, "04_analyse_ensemble")
    ns["cam_pairs"] = "a later cell's variable of another type"  # not a setting's value: left alone
    assert context.notebook_context(ns, "04_analyse_ensemble").settings == STEP_SETTINGS["04_analyse_ensemble"]()


def test_overrides_set_in_the_notebook_are_checked_and_noted(tmp_path, monkeypatch):
    monkeypatch.setattr(context, "apply_threads", lambda threads: None)
    ns = {"__annotations__": dict(CELL_PARAMS), "profile": "tiny", "run_dir": str(tmp_path), "fig_dir": str(tmp_path),
          "overrides": {"cam_pairs": 0}}
    ctx = context.notebook_context(ns, "04_analyse_ensemble")
    assert ctx.settings.cam_pairs == 0 and ctx.params["cam_pairs"] == 0
    note = ctx.settings_note()
    assert "AnalysisSettings" in note and "cam_pairs = 0 (overrides)" in note and "(tiny profile)" in note
    ns["overrides"] = {"cam_pair": 0}
    with pytest.raises(ParameterError, match="unknown parameter 'cam_pair'.*cam_pairs"):
        context.notebook_context(ns, "04_analyse_ensemble")
    ns["overrides"] = {"cam_pairs": "none"}
    with pytest.raises(ParameterError, match="'cam_pairs' must be int"):
        context.notebook_context(ns, "04_analyse_ensemble")


@pytest.mark.parametrize("step", runner.available_steps())
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_builds_valid_settings(step, profile):
    cls = STEP_SETTINGS[step]
    settings = cls.for_profile(profile)
    assert isinstance(settings, cls)
    overlay = cls.profile_overlay(profile)
    assert {k: getattr(settings, k) for k in overlay} == overlay


@pytest.mark.parametrize("step", runner.available_steps())
def test_profile_yaml_has_no_cpu_values(step):
    path = paths.PROJ_ROOT / "idiff_lib" / "configs" / "profiles" / f"{step}.yaml"
    table = yaml.safe_load(path.read_text()) or {}
    assert not table.get("cpu"), "the cpu values are the settings class's defaults"
    assert set(table) <= set(PROFILES)
