"""The whole notebook chain on tiny parameters: interrupted, resumed, the same results; then the export.

This is the demo's path (`idiff run`) end to end on the embedded benchmark, at the tiny profile.
"""

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TINY_CHAIN_OVERRIDES, tiny_chain_cmd
from test_figures_inline import MAX_TEXT_LINES, text_output_lines

from idiff_lib.chain import context, runner
from idiff_lib.chain.export import export, side_file
from idiff_lib.core import layout, paths
from idiff_lib.data import pairs
from idiff_lib.report import html_report

# One xdist worker takes every test of this module (make test: --dist loadgroup), so the session's
# tiny run is made once, by the worker that reads it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tiny_chain")]

# Values that differ between two runs by construction (timings, paths); everything else must match.
VOLATILE = ("seconds", "train_seconds", "html_report", "source", "elapsed", "pairs_per_s", "time")


def _stable(obj, base: Path):
    """`obj` without its volatile values, floats rounded, and the run's folder `base` written as ``BASE``."""
    if isinstance(obj, dict):
        return {k: _stable(v, base) for k, v in obj.items() if not any(w in k for w in VOLATILE)}
    if isinstance(obj, list):
        return [_stable(v, base) for v in obj]
    if isinstance(obj, float):
        return "NaN" if math.isnan(obj) else round(obj, 6)  # an undefined value is the same in both runs
    if isinstance(obj, str):
        return obj.replace(str(base), "BASE")
    return obj


# About 3.5 min on 2 cores (one core: the other xdist worker has the other) besides the session's tiny run (conftest.tiny_run, the uninterrupted
# reference): a second chain, killed in step 03 and resumed. Steps 01-02 run again in the new folder
# (a step's parameters name its folder); the kill and the resume are in step 03 only. It is the only
# end-to-end check that a resumed demo gives the same results.
@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("chain")
    resumed = base / "resumed" / "run"
    proc = subprocess.Popen(tiny_chain_cmd(resumed, base / "resumed" / "figures"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = resumed / "03_tune_thinking_model" / "params.yaml"
    deadline = time.monotonic() + 300
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started.exists(), "the chain never reached step 03"
    time.sleep(3.0)  # into step 03's work
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, mid-step
    proc.wait()
    assert not (resumed / "03_tune_thinking_model" / "step.json").exists(), "step 03 finished before the kill"
    results = runner.run_chain("tiny", out=resumed, fig_dir=base / "resumed" / "figures", log=lambda _: None,
                                 overrides=TINY_CHAIN_OVERRIDES)
    return tiny_run, resumed, results


def test_interrupted_chain_resumes_with_the_same_results(runs):
    reference, resumed, results = runs
    status = {r.step: r.status for r in results}
    assert status["01_explore_pairs"] == status["02_train_answer_model"] == "skipped"
    assert all(status[s] == "ran" for s in status if s[:2] >= "03")
    for step in ("02_train_answer_model", "03_tune_thinking_model", "04_analyse_ensemble", "05_score_rationales"):
        assert (_stable(context.load_metrics(resumed, step), resumed.parent)
                == _stable(context.load_metrics(reference, step), reference.parent)), step


def test_no_step_of_the_tiny_chain_is_many_times_slower_than_its_committed_time(tiny_run):
    """A regression guard from the time table every run records: each step within `factor` x its committed time."""
    from idiff_lib.chain import timing

    committed = json.loads((Path(__file__).parent / "tiny_chain_times.json").read_text())
    rows = {r["step"]: r for r in timing.time_table(tiny_run)}
    assert set(rows) == set(committed["steps"]), "the time table lacks a step"
    for step, seconds in committed["steps"].items():
        bound = max(committed["factor"] * seconds, committed["floor_s"])
        assert rows[step]["status"] == "ran" and rows[step]["wall_s"] <= bound, \
            f"{step}: {rows[step]['wall_s']} s against a committed {seconds} s (bound {bound:.0f} s)"


def test_report_step_writes_tables_figures_and_html(tiny_run):
    run = tiny_run
    figs = run.parent / "figures"
    for name in ("06_table_a_answer_ladder.md", "06_table_a_answer_ladder.tex", "06_table_b_thinking_ladder.md",
                 "06_table_b_thinking_ladder.tex", "06_answer_ladder.png", "06_answer_ladder.pdf",
                 "06_thinking_ladder.png", "06_thinking_ladder.pdf"):
        assert (figs / name).stat().st_size > 0, name
    assert "+ backbone ensemble" in (figs / "06_table_a_answer_ladder.md").read_text()
    index = run / "06_report_figures" / "html" / "index.html"
    text = index.read_text()
    assert "result-table" in text and "02_train_answer_model.html" in text
    assert (index.parent / "03_tune_thinking_model.html").exists()
    # Figures appear inline in the executed notebooks, so the HTML pages carry them (issue 19).
    assert "data:image/png;base64" in (index.parent / "02_train_answer_model.html").read_text()
    assert "this report" in text and "not finished" not in text
    table_b = html_report.thinking_table(run)
    assert set(table_b["system"]) >= {"template"} and len(table_b) >= 5


def test_every_executed_notebook_shows_figures_and_stays_short(tiny_run):
    """Issue 19: figures inline (``image/png`` outputs) and at most 300 lines of text per notebook."""
    run = tiny_run
    for executed in sorted(run.glob(f"*/{layout.EXECUTED_NOTEBOOK}")):
        nb = json.loads(executed.read_text(encoding="utf-8"))
        images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
        assert images > 0, f"{executed.parent.name}: no figure inline"
        assert text_output_lines(nb) <= MAX_TEXT_LINES, (executed.parent.name, text_output_lines(nb))
    # Step 02 of the uninterrupted run: every figure it saved is inline exactly once.
    nb = json.loads((run / layout.ANSWER_STEP / layout.EXECUTED_NOTEBOOK).read_text(encoding="utf-8"))
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    saved = sorted((run.parent / "figures").glob("02_*.png"))
    assert saved and images == len(saved), (images, [p.name for p in saved])


def test_export_writes_one_completion_per_pair_in_input_order(tiny_run, tmp_path):
    run = tiny_run
    data = paths.DEMO_DIR / "test_unlabeled.jsonl"
    out = tmp_path / "submission.jsonl"
    summary = export(run, data, out, limit=5, progress=False)
    assert summary["pairs"] == 5 and summary["stage"] == "S4"
    inputs = pairs.read_pairs(data, limit=5)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["images"] for r in rows] == [p.image_refs for p in inputs]
    answers = {json.loads(line)["id"]: json.loads(line)["answer"] for line in side_file(out, "answers").read_text().splitlines()}
    for pair, row in zip(inputs, rows):
        completion = row["messages"][-1]["content"]
        assert row["messages"][-1]["role"] == "assistant"
        parsed = pairs.parse_completion(completion)
        assert parsed.answer == answers[pair.id], "the verdict is the Answer Model's"
        assert completion.startswith("<thinking>") and completion.rstrip().endswith("</answer>")
    back = pairs.read_pairs(out)  # the submission reads back as labelled RAIM SFT pairs
    assert [p.id for p in back] == [p.id for p in inputs] and all(p.shape == "sft" for p in back)

    # a rerun reuses the side files (resumable) and gives the same submission
    before = out.read_text()
    export(run, data, out, limit=5, progress=False)
    assert out.read_text() == before


def test_export_without_a_trained_run_names_the_fix(tmp_path):
    from idiff_lib.core.errors import DataError

    with pytest.raises(DataError, match=r"(?s)no trained Answer Model.*idiff run"):
        export(tmp_path, paths.DEMO_DIR / "test_unlabeled.jsonl", tmp_path / "s.jsonl")


def test_every_cell_of_every_notebook_ran_without_error(tiny_run):
    """What nbval checked by running the notebooks a second time: each code cell of each step ran, none failed.

    The session's tiny run executed the same notebooks at the same parameters in fresh kernels
    (papermill), so this reads its executed copies instead of running the chain again.
    """
    steps = runner.available_steps()
    executed = {p.parent.name: p for p in tiny_run.glob(f"*/{layout.EXECUTED_NOTEBOOK}")}
    assert sorted(executed) == steps
    for step, path in executed.items():
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{step}: a code cell did not run"
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{step}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
