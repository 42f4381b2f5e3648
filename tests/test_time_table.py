"""The chain's time table (`idiff_lib.chain.timing`): every step attempt recorded, a stopped one as stopped."""

from __future__ import annotations

import json

import pytest

from idiff_lib.chain import runner, timing
from idiff_lib.core import layout
from idiff_lib.core.errors import DataError


def _run(chain, **kw):
    from test_pipeline import REGISTRY

    return runner.run_chain("cpu", chain / "data", chain / "run", notebooks_dir=chain / "notebooks", registry=REGISTRY,
                            fig_dir=chain / "fig", log=lambda m: None, **kw)


def test_every_step_that_ran_has_wall_cpu_and_peak_memory(toy_chain):
    _run(toy_chain)
    rows = timing.time_table(toy_chain / "run")
    assert [r["step"] for r in rows] == ["01_first", "02_second"]
    for r in rows:
        assert r["status"] == "ran" and r["wall_s"] > 0 and r["cpu_s"] > 0
        assert r["peak_rss_mib"] > 10  # the notebook kernel is a Python process of tens of MiB at least
        assert r["machine"]["cores"] >= 1 and r["machine"]["ram_gib"] > 0
        marker = json.loads((toy_chain / "run" / r["step"] / layout.STEP_MARKER).read_text())
        assert marker["cpu_seconds"] == r["cpu_s"] and marker["peak_rss_mib"] == r["peak_rss_mib"]
    table = timing.format_time_table(rows)
    assert "| 01_first | ran |" in table and "**total** | 2 ran" in table and "Machine:" in table
    _run(toy_chain)  # up to date: nothing new is recorded
    assert len((toy_chain / "run" / layout.TIMINGS_FILE).read_text().splitlines()) == 2


@pytest.mark.parametrize("exc, status", [(KeyboardInterrupt, "interrupted"), (runner.StepFailed("boom"), "failed")])
def test_a_stopped_step_is_recorded_as_stopped_not_as_a_time(toy_chain, monkeypatch, exc, status):
    def stop(*args, **kwargs):
        raise exc

    monkeypatch.setattr(runner, "_execute", stop)
    with pytest.raises(type(exc) if isinstance(exc, Exception) else exc):
        _run(toy_chain)
    (row,) = timing.time_table(toy_chain / "run")
    assert row["status"] == status and row["wall_s"] is None and row["cpu_s"] is None
    assert row["stopped_after_s"] is not None
    assert f"{status} after" in timing.format_time_table([row])


def test_the_wall_time_comes_from_a_monotonic_clock(monkeypatch):
    ticks = iter([100.0, 103.5])
    monkeypatch.setattr(timing.time, "monotonic", lambda: next(ticks))
    monkeypatch.setattr(timing.time, "time", lambda: 0.0)  # a wall clock that jumped back changes nothing
    with timing.StepMeter(sample_seconds=0.01) as meter:
        pass
    assert meter.row("s", "ran")["wall_s"] == 3.5


def test_a_damaged_timings_file_names_itself(tmp_path):
    (tmp_path / layout.TIMINGS_FILE).write_text('{"step": "01", "status": "ran"}\n["not a row"]\n')
    with pytest.raises(DataError) as err:
        timing.time_table(tmp_path)
    assert layout.TIMINGS_FILE in str(err.value) and "delete the file" in str(err.value)
