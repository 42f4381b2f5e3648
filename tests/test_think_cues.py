"""`idiff think cues`: the cue file that --cues reads, its IQA sources line, and its bad inputs."""

import json

import pytest

from idiff_lib import cli
from idiff_lib.cli.think import _cues_arg, cue_sources_arg
from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import read_pairs
from idiff_lib.features import iqa
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.prompting.side_inputs import iqa_sources_of, iqa_sources_text

NO_WEIGHTS = "PIQE (" + ", ".join(m.upper() if len(m) <= 6 else m for m in iqa.LEARNED_METRICS) + ": no weights)"


@pytest.fixture
def no_learned_weights(tmp_path, monkeypatch):
    """An empty torch hub and no Hub downloads: the learned IQA metrics are left out, PIQE runs."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(iqa, "default_weights_dir", lambda: tmp_path / "no_weights")


def test_cues_file_reads_back_and_s3_prompts_name_the_iqa_sources(pair_folder, tmp_path, no_learned_weights, capsys):
    out = tmp_path / "cues" / "cues.jsonl"
    with pytest.warns(UserWarning, match="left out"):
        assert cli.main(["think", "cues", "--data", str(pair_folder / "pairs.jsonl"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 cue rows" in printed and "IQA metrics used: piqe;" in printed
    assert "thresholds calibrated on 3 pairs" in printed and "calibrated on these pairs" in printed
    cues = _cues_arg(str(out))
    assert set(cues) == {"p_000", "p_001", "s_000"}
    assert all(set(row) == {"id", "cv", "iqa", "iqa_sources"} for row in cues.values())
    assert iqa_sources_of(cues) == NO_WEIGHTS
    assert any(row["cv"] for row in cues.values()), "the noisy side gives hand-crafted cue lines"
    pairs = read_pairs(pair_folder / "pairs.jsonl")
    s3 = prompts.build_prompts(pairs, "S3", cues=cues)["p_000"].user
    assert f"IQA-model cues (A vs B):\nIQA cues from: {NO_WEIGHTS}\n" in s3
    assert "IQA cues from" not in prompts.build_prompts(pairs, "S2", cues=cues)["p_000"].user
    assert not list(out.parent.glob(".*.tmp")), "written atomically: no temporary file left"


def test_cues_calibrate_on_another_file_and_write_only_the_data_pairs(pair_folder, tmp_path, capsys):
    lines = (pair_folder / "pairs.jsonl").read_text().splitlines(keepends=True)
    (pair_folder / "test.jsonl").write_text("".join(lines[:2]))
    out = tmp_path / "cues.jsonl"
    assert cli.main(["think", "cues", "--data", str(pair_folder / "test.jsonl"), "--calibrate",
                     str(pair_folder / "pairs.jsonl"), "--out", str(out), "--sources", "cv"]) == 0
    printed = capsys.readouterr().out
    assert "thresholds calibrated on 3 pairs" in printed and "calibrated on these pairs" not in printed
    rows = storage.read_jsonl_rows(out)
    assert [r["id"] for r in rows] == ["p_000", "p_001"]
    assert all(r["iqa"] == "" and "iqa_sources" not in r for r in rows), "no IQA source: no IQA cues, no sources line"


def test_cues_bad_inputs_name_the_file_or_the_flag(pair_folder, tmp_path, no_learned_weights, capsys):
    out = tmp_path / "cues.jsonl"
    assert cli.main(["think", "cues", "--data", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    assert cli.main(["think", "cues", "--data", str(pair_folder / "pairs.jsonl"), "--calibrate",
                     str(tmp_path / "train_missing.jsonl"), "--out", str(out)]) == 2
    assert "train_missing.jsonl" in capsys.readouterr().err
    assert cli.main(["think", "cues", "--data", str(pair_folder / "pairs.jsonl"), "--out", str(out),
                     "--sources", "cv,iqq"]) == 2
    assert "Did you mean one of: iqa" in capsys.readouterr().err
    assert cli.main(["think", "cues", "--data", str(pair_folder / "pairs.jsonl"), "--out", str(out),
                     "--strict-iqa"]) == 2
    assert "weights not found offline" in capsys.readouterr().err
    assert not out.exists(), "nothing written on a failure"


def test_cue_sources_arg():
    assert cue_sources_arg("iqa, cv,iqa") == ("iqa", "cv")
    for bad in ("", " , ", "cv,sift"):
        with pytest.raises(ParameterError, match="--sources"):
            cue_sources_arg(bad)


def test_iqa_sources_phrase_and_mixed_cue_files():
    assert iqa_sources_text(["piqe", "musiq"]) == "PIQE, MUSIQ"
    assert iqa_sources_text([], ["liqe", "qalign", "topiq_nr"]) == "none (LIQE, QALIGN, topiq_nr: no weights)"
    assert iqa_sources_of({}) == "" and iqa_sources_of({"a": {"cv": "x"}}) == ""
    assert iqa_sources_of({"a": {"iqa_sources": "PIQE"}, "b": {"iqa_sources": "PIQE"}}) == "PIQE"
    with pytest.raises(DataError, match="different IQA sources"):
        iqa_sources_of({"a": {"iqa_sources": "PIQE"}, "b": {"iqa_sources": "PIQE, LIQE"}})


def test_cue_rows_written_by_hand_still_read(tmp_path):
    """Cue files without iqa_sources (written before the field existed) give prompts without the line."""
    f = tmp_path / "old.jsonl"
    f.write_text(json.dumps({"id": "p", "cv": "c", "iqa": "Global PIQE: A 1 vs B 2 (A better)"}) + "\n")
    p = prompts.build_prompts(read_pairs_stub(), "S3", cues=_cues_arg(str(f)))["p"]
    assert "IQA-model cues (A vs B):\nGlobal PIQE" in p.user


def read_pairs_stub():
    from types import SimpleNamespace

    return [SimpleNamespace(id="p", category="person")]


def test_notebook_cues_say_the_left_out_metrics_in_the_note_not_as_warnings(pair_folder, no_learned_weights):
    """Notebook 03 (warn_left_out=False): one note line names what was left out; no warning reaches the student."""
    import warnings

    from idiff_lib.thinking.prompting.side_inputs import feature_cues

    pairs = read_pairs(pair_folder / "pairs.jsonl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cues, note = feature_cues(pairs, progress=False, warn_left_out=False)
    assert not [w for w in caught if "left out" in str(w.message)]
    assert "left out (no weights or code here): " in note and "`idiff think cues` names the files to fetch" in note
    assert set(cues) == {p.id for p in pairs}
