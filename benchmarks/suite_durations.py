"""Write tests/test_durations.json from a JUnit XML report of a full ``make test`` run.

    PYTEST_ADDOPTS="--junitxml=build/junit.xml" make test
    .venv/bin/python benchmarks/suite_durations.py build/junit.xml

The file records each test's measured seconds (the machine and the run are in its header). The test
session reads it (tests/conftest.py) and marks every test at or over `SLOW_SECONDS` as ``slow``, so
``make test-fast`` (``-m "not slow"``) runs the unit tests that finish in well under a second. A
test missing from the file (a new one) is not marked; add it by rerunning this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import xml.etree.ElementTree as ET  # alias: the standard library's documented short name
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "test_durations.json"


def node_id(case: ET.Element) -> str:
    """The pytest node id of a JUnit test case (``tests/test_x.py::test_y[param]``)."""
    module = case.get("classname", "").replace(".", "/")
    return f"{module}.py::{case.get('name')}"


def durations(report: Path) -> dict[str, float]:
    """Node id -> seconds of every test case in the report (setup, call and teardown together)."""
    root = ET.parse(report).getroot()
    return {node_id(c): round(float(c.get("time", 0.0)), 2) for c in root.iter("testcase")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="the JUnit XML report of a full make test run")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    times = durations(args.report)
    if not times:
        parser.error(f"{args.report}: no test cases in the report. fix: give the --junitxml file of a make test run")
    doc = {"about": "seconds of each test in one full make test run (setup, call, teardown); "
                    "tests/conftest.py marks those at or over its SLOW_SECONDS as slow",
           "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
           "tests": dict(sorted(times.items()))}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"{len(times)} tests, {sum(t >= 1.0 for t in times.values())} at or over 1 s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
