import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from idiff_lib.chain import runner as pipeline
from idiff_lib.core.errors import ParameterError


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
"""


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """Two steps: 01 writes a number, 02 reads it, announces it started, waits, and doubles it."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (tmp_path / "data").mkdir()
    _notebook(nbs / "01_first.ipynb", COMMON + "value: int = 3  # the number\n", """
        from pathlib import Path
        from idiff_lib.chain import runner as pipeline
        ctx = pipeline.notebook_context(globals(), "01_first")
        (ctx.step_dir / "value.txt").write_text(str(value))
        pipeline.save_metrics(ctx.step_dir, {"value": value})
    """)
    _notebook(nbs / "02_second.ipynb", COMMON + "wait_s: float = 0.0  # how long to work\n", """
        import time
        from idiff_lib.chain import runner as pipeline
        ctx = pipeline.notebook_context(globals(), "02_second")
        (ctx.step_dir / "started").write_text("yes")
        time.sleep(wait_s)
        value = int((ctx.upstream("01_first") / "value.txt").read_text())
        pipeline.save_metrics(ctx.step_dir, {"double": 2 * value})
    """)
    return tmp_path


def _run(chain: Path, **kw):
    return pipeline.run_chain("cpu", chain / "data", chain / "run", notebooks_dir=chain / "notebooks",
                              fig_dir=chain / "fig", log=lambda m: None, **kw)


def test_chain_runs_then_skips(chain):
    assert [r.status for r in _run(chain)] == ["ran", "ran"]
    assert pipeline.load_metrics(chain / "run", "02_second") == {"double": 6}
    for name in ("executed.ipynb", "params.yaml", "metrics.json", "step.json"):
        assert (chain / "run" / "01_first" / name).exists()
    assert [r.status for r in _run(chain)] == ["skipped", "skipped"]
    # a changed parameter reruns that step and everything after it
    assert [r.status for r in _run(chain, overrides={"value": 5})] == ["ran", "ran"]
    assert pipeline.load_metrics(chain / "run", "02_second") == {"double": 10}


def test_killed_step_resumes(chain):
    script = (f"from pathlib import Path; from idiff_lib.chain import runner as pipeline; "
              f"pipeline.run_chain('cpu', Path({str(chain / 'data')!r}), Path({str(chain / 'run')!r}), "
              f"notebooks_dir=Path({str(chain / 'notebooks')!r}), fig_dir=Path({str(chain / 'fig')!r}), "
              f"overrides={{'wait_s': 60.0}})")
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
    assert pipeline.load_metrics(chain / "run", "02_second") == {"double": 6}


def test_unknown_parameter_is_named_with_suggestion(chain):
    with pytest.raises(ParameterError, match=r"unknown parameter 'valeu'.*Did you mean one of: value"):
        pipeline.validate_params(chain / "notebooks" / "01_first.ipynb", {"valeu": 1})


def test_wrong_type_is_named(chain):
    with pytest.raises(ParameterError, match=r"parameter 'value' must be int, got str"):
        _run(chain, overrides={"value": "three"})


def test_wrong_type_injected_by_hand_is_caught_in_the_notebook():
    with pytest.raises(ParameterError, match="'epochs' must be int"):
        pipeline.notebook_context({"__annotations__": {"epochs": int}, "epochs": 1.5}, "02_x")


def test_failing_step_names_error_and_executed_copy(chain):
    _notebook(chain / "notebooks" / "03_broken.ipynb", COMMON, "raise RuntimeError('boom')\n")
    with pytest.raises(pipeline.StepFailed, match=r"(?s)03_broken failed.*RuntimeError: boom.*executed.ipynb"):
        _run(chain)


def test_select_steps(chain):
    _run(chain)
    results = _run(chain, only=["02"], force=True)
    assert [r.step for r in results] == ["02_second"]
    with pytest.raises(ParameterError, match="unknown step"):
        _run(chain, from_step="09")


def test_parse_overrides():
    assert pipeline.parse_overrides(["epochs=2", "lr=1e-4", "name=abc", "flag=true"]) == {
        "epochs": 2, "lr": 1e-4, "name": "abc", "flag": True}
    with pytest.raises(ParameterError):
        pipeline.parse_overrides(["epochs"])


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
