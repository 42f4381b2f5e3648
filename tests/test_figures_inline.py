"""Figures inline and quiet progress: the backend is not forced at import, bars are off in batch kernels,
and the text-line count that tests/test_chain.py applies to every executed notebook."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from idiff_lib.core import errors, paths, progress

MAX_TEXT_LINES = 300  # issue 19: each notebook's text output stays readable


def _python(code: str, **env: str) -> str:
    environ = {**os.environ, "PYTHONPATH": str(paths.PROJ_ROOT), **env}
    environ.pop("IDIFF_PROGRESS", None)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_importing_style_keeps_a_requested_display_backend():
    code = "import idiff_lib.report.style, matplotlib; print(matplotlib.get_backend())"
    assert _python(code, MPLBACKEND="module://matplotlib_inline.backend_inline").endswith("backend_inline")
    assert _python(code, MPLBACKEND="svg").lower() == "svg"


def test_importing_style_outside_jupyter_without_a_request_chooses_agg():
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", "import idiff_lib.report.style, matplotlib; "
                           "print(matplotlib.get_backend())"],
                          env={**env, "PYTHONPATH": str(paths.PROJ_ROOT)}, capture_output=True, text=True, check=True)
    assert done.stdout.strip().lower() == "agg"


class _Kernel:
    def __init__(self, allow_stdin: bool):
        self._allow_stdin = allow_stdin


class _Shell:
    def __init__(self, allow_stdin: bool):
        self.kernel = _Kernel(allow_stdin)


@pytest.mark.parametrize("allow_stdin, mode", [(False, "off"), (True, "widget")])
def test_progress_is_off_in_a_batch_kernel_and_a_widget_in_a_person_s(monkeypatch, allow_stdin, mode):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setattr("IPython.get_ipython", lambda: _Shell(allow_stdin))
    assert progress.progress_mode() == mode
    bar = progress.progress_bar(range(3), desc="x")
    assert bar.disable is (mode == "off") and list(bar) == [0, 1, 2]


def test_progress_outside_jupyter_is_text_and_the_environment_overrides(monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    assert progress.progress_mode() == "text"
    assert progress.progress_bar(range(2), disable=True).disable  # the caller's disable still wins
    monkeypatch.setenv(progress.PROGRESS_ENV, "off")
    assert progress.progress_bar(range(2)).disable
    monkeypatch.setenv(progress.PROGRESS_ENV, "loud")
    with pytest.raises(errors.ParameterError, match="IDIFF_PROGRESS"):
        progress.progress_mode()


def test_progress_under_papermill_is_off(tmp_path):
    """A real papermill kernel: the factory reports itself off."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from idiff_lib.core.progress import progress_mode\nprint(progress_mode())")])
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    env_before = os.environ.pop(progress.PROGRESS_ENV, None)
    try:
        papermill.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(paths.PROJ_ROOT),
                                   progress_bar=False)
    finally:
        if env_before is not None:
            os.environ[progress.PROGRESS_ENV] = env_before
    outputs = nbformat.read(out, as_version=4).cells[0].outputs
    assert "".join(o.get("text", "") for o in outputs).strip() == "off"


def text_output(nb: dict) -> list[str]:
    """The text lines an executed notebook shows in its outputs (streams, text results, tracebacks)."""
    lines = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if out.get("output_type") == "error":
                text = "\n".join(out.get("traceback", []))
            lines += text.splitlines()
    return lines


def text_output_lines(nb: dict) -> int:
    """How many lines `text_output` finds: what issue 19's limit counts."""
    return len(text_output(nb))


def test_a_saved_figure_has_the_same_bytes_every_time(tmp_path):
    """No creation date in the PDF: the same figure from the same commit is the same file in every clone."""
    code = ("import sys, matplotlib.pyplot as plt; from idiff_lib.report.style import save_figure; "
            "fig, ax = plt.subplots(); ax.plot([0, 1], [1, 0]); save_figure(fig, 'f', sys.argv[1])")
    digests = []
    for folder in ("a", "b"):
        environ = {**os.environ, "PYTHONPATH": str(paths.PROJ_ROOT)}
        environ.pop("SOURCE_DATE_EPOCH", None)
        subprocess.run([sys.executable, "-c", code, str(tmp_path / folder)], env=environ, check=True)
        digests.append({ext: (tmp_path / folder / f"f.{ext}").read_bytes() for ext in ("png", "pdf")})
        if folder == "a":
            import time
            time.sleep(1.1)  # a PDF date has one-second resolution
    assert digests[0] == digests[1]
