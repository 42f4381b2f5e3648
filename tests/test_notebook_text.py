"""Issue 28: a notebook's Markdown quotes no number that a run's settings or results decide. Times and
counts of pairs, steps or sequences are printed by the library from the run (e.g.
`thinking_narrative.training_time_sentence`, `narrative.time_sentence`), never typed beside them, and
no setting's comment promises a time budget it does not measure."""

from __future__ import annotations

import json
import re

import pytest

from idiff_lib.core import paths

NOTEBOOKS = sorted((paths.PROJ_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIME = re.compile(r"\b\d+(?:\.\d+)?[ -](?:minutes?|min|seconds?|hours?|s)\b")  # "35 minutes", "3.5 s", "15-minute"
COUNT = re.compile(r"\b\d+ (?:train |test |val |evenly spaced )?(?:pairs|steps|epochs|sequences|prompts|completions|runs)\b")


def _markdown(path) -> list[tuple[str, str]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(c.get("id", "?"), "".join(c["source"])) for c in cells if c["cell_type"] == "markdown"]


def test_the_patterns_catch_the_quotes_they_stand_for():
    assert TIME.findall("two epochs cost 35 minutes; a sequence about 3.5 s; the 15-minute budget") == [
        "35 minutes", "3.5 s", "15-minute"]
    assert COUNT.findall("trains on 40 pairs (80 sequences) and writes 16 test pairs") == [
        "40 pairs", "80 sequences", "16 test pairs"]
    assert not TIME.findall("NTIRE 2026, S0 → S4, BLEU-4, 95% interval") and not COUNT.findall("S4 pairs")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_quotes_no_time_or_count_a_run_decides(path):
    quoted = [(cid, m.group(0)) for cid, text in _markdown(path) for m in [*TIME.finditer(text), *COUNT.finditer(text)]]
    assert not quoted, f"{path.name}: print these from the run's settings or records instead: {quoted}"


def test_no_setting_comment_promises_a_time_budget():
    """A comment may say what a value measured to cost ("about 3 min on 2 cores"), not that it fits a budget
    of so many minutes: no step enforces one, and the runs' times are in ``timings.jsonl``."""
    comments = [(f.relative_to(paths.PROJ_ROOT), line.split("#", 1)[1].strip())
                for f in sorted((paths.PROJ_ROOT / "idiff_lib").rglob("settings.py"))
                for line in f.read_text(encoding="utf-8").splitlines() if "#" in line]
    promised = [(f, c) for f, c in comments if "budget" in c and TIME.search(c)]
    assert not promised, promised
