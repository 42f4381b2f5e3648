"""benchmarks/suite_durations.py: a JUnit report becomes the node ids and seconds that mark slow tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import conftest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import suite_durations


def test_a_junit_report_becomes_node_ids_and_seconds(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text('<testsuites><testsuite name="pytest">'
                      '<testcase classname="tests.test_views" name="test_one" time="0.012"/>'
                      '<testcase classname="tests.test_chain" name="test_two[a-b 1,000]" time="61.7"/>'
                      "</testsuite></testsuites>")
    out = tmp_path / "durations.json"
    assert suite_durations.main([str(report), "--out", str(out)]) == 0
    tests = json.loads(out.read_text())["tests"]
    assert tests == {"tests/test_views.py::test_one": 0.01, "tests/test_chain.py::test_two[a-b 1,000]": 61.7}


def test_the_committed_durations_name_tests_that_exist():
    """A stale file would mark nothing: most of its node ids must still be test modules of this folder."""
    measured = conftest.measured_durations()
    if not measured:
        return
    modules = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    known = sum(node.split("::")[0].split("/")[-1] in modules for node in measured)
    assert known >= 0.9 * len(measured), f"only {known} of {len(measured)} measured tests are in a module here"
