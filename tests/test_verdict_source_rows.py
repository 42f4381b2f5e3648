"""Issue 28: every rationale row records where its answer came from. A row answered with its prompt's
verdict names that verdict's source (`generation.with_verdict_sources`), so a fallback verdict is never
counted as the Answer Model's: in `idiff export` (chain/export.py) as in `idiff think generate`."""

from __future__ import annotations

import json

from answer_fixtures import make_pairs_file

from idiff_lib.chain import export
from idiff_lib.core import layout, storage
from idiff_lib.data.pairs import read_pairs
from idiff_lib.scoring.controls import PROMPT_VERDICT_SOURCES

MODEL, _, PRIOR = PROMPT_VERDICT_SOURCES


def test_export_rows_name_a_fallback_verdict_as_such(tmp_path, monkeypatch):
    """An answers side file that misses a pair (cut by an interruption) gives that pair's S4 prompt the
    prior's verdict: its row says so, the others say the Answer Model's."""
    data = make_pairs_file(tmp_path / "d", n=3, side=64)
    pairs = read_pairs(data)
    run = tmp_path / "run"
    step = layout.step_dir(run, layout.ANSWER_STEP)
    step.mkdir(parents=True)
    (step / layout.ENSEMBLE_FILE).write_text("{}")  # the export checks that a trained run is there
    cut = pairs[1].id

    def predict_answers(run_dir, ps, path, batch_size=16, device=None):
        rows = {p.id: {"id": p.id, "answer": "B", "p_left": 0.2} for p in ps}
        storage.write_jsonl(path, [r for pid, r in rows.items() if pid != cut])
        return rows

    monkeypatch.setattr(export, "predict_answers", predict_answers)
    monkeypatch.setattr(export, "cues_for", lambda ps, stage, **kw: ({p.id: {"cv": "", "iqa": ""} for p in ps}, ""))
    out = tmp_path / "sub.jsonl"
    export.export(run, data, out, writer="template", stage="S4", device="cpu", progress=False)
    sources = {r["id"]: r["answer_source"] for r in storage.read_jsonl_rows(export.side_file(out, "rationales"))}
    assert sources == {p.id: PRIOR if p.id == cut else MODEL for p in pairs}


def test_think_generate_rows_record_the_verdicts_source(tmp_path, monkeypatch):
    from idiff_lib import cli
    from idiff_lib.cli import think

    data = make_pairs_file(tmp_path / "d", n=2, side=64)
    pairs = read_pairs(data)
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": p.id, "answer": "A", "p_left": 0.9}) + "\n" for p in pairs))
    out = tmp_path / "r.jsonl"
    args = ["think", "generate", "--writer", "template", "--data", str(data), "--answers", str(answers), "--stage", "S4"]
    assert cli.main([*args, "--out", str(out)]) == 0
    assert {r["answer_source"] for r in storage.read_jsonl_rows(out)} == {MODEL}
    # the rule of verdict_sources decides each row's source: a pair it names a fallback is recorded as one
    rule = think.verdict_sources
    monkeypatch.setattr(think, "verdict_sources", lambda ps, path, fallback: {**rule(ps, path, fallback), pairs[0].id: PRIOR})
    assert cli.main([*args, "--out", str(tmp_path / "r2.jsonl")]) == 0
    assert [r["answer_source"] for r in storage.read_jsonl_rows(tmp_path / "r2.jsonl")] == [PRIOR, MODEL]
