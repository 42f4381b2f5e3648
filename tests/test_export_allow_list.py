"""No gold leaves through ``idiff export``: the submission is built from an allow-list, whatever the input's shape.

A property test (hypothesis) varies the record's shape: the assistant role's letter case and place,
extra top-level keys (``answer``, ``meta``, ``label``, ``solution``, others), extra keys inside
messages. Every gold text carries a canary; no submitted record may hold one, nor any key outside
`SUBMISSION_FIELDS` and ``messages``. One end-to-end export over a file of such records checks the
submission and its side files the same way.
"""

from __future__ import annotations

import json

import pytest
from answer_fixtures import make_pairs_file, train_tiny_answer_run
from hypothesis import given, settings
from hypothesis import strategies

from idiff_lib.chain import export
from idiff_lib.core import layout
from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import format_completion, parse_record, read_pairs

CANARY = "GOLD-CANARY"
GOLD_TEXT = format_completion(f"Global Overall: Image A (Left) is better {CANARY}.", "A")
ROLE_SPELLINGS = ["assistant", "Assistant", "ASSISTANT", " assistant ", "aSSistant"]
EXTRA_KEYS = ["answer", "meta", "label", "notes", "score", "preference"]


def _base_record() -> dict:
    return {"images": ["images/p_000_merged_c0.png", "images/p_000_merged_c1.png"],
            "messages": [{"role": "system", "content": "You compare two images."},
                         {"role": "user", "content": "<image><image>\nCompare them."}]}


@strategies.composite
def records(draw) -> dict:
    """A RAIM record with gold in some of the places a hostile or careless file may put it."""
    rec = _base_record()
    shape = draw(strategies.sampled_from(["sft", "grpo", "both", "test"]))
    if shape in ("sft", "both"):
        message = {"role": draw(strategies.sampled_from(ROLE_SPELLINGS)), "content": GOLD_TEXT}
        if draw(strategies.booleans()):
            message["reasoning"] = f"{CANARY} hidden in a message key"
        rec["messages"].insert(draw(strategies.integers(0, 2)), message)
    if shape in ("grpo", "both"):
        rec["solution"] = GOLD_TEXT
    for key in draw(strategies.lists(strategies.sampled_from(EXTRA_KEYS), unique=True, max_size=4)):
        rec[key] = draw(strategies.sampled_from([CANARY, {"answer": CANARY}, [CANARY], "A"]))
    if draw(strategies.booleans()):
        rec["messages"][1]["weight"] = CANARY  # an extra key on the user turn
    if draw(strategies.booleans()):
        rec["id"] = "p_000"
    return rec


def _gold_free(record: dict) -> None:
    text = json.dumps(record)
    assert CANARY not in text, text
    assert set(record) <= set(export.SUBMISSION_FIELDS) | {"messages"}, set(record)
    roles = [m["role"] for m in record["messages"]]
    assert roles[-1] == "assistant" and set(roles[:-1]) <= {"system", "user"}, roles
    assert all(set(m) == {"role", "content"} for m in record["messages"])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(records())
def test_a_submitted_record_holds_nothing_of_the_input_answer(rec):
    pair = parse_record(rec)
    blind = export.blind_pair(pair)
    assert blind.completion is None and blind.answer is None and not blind.thinking
    assert CANARY not in json.dumps(blind.record)
    submitted = export.submission_record(pair, format_completion("Global Overall: model text.", "B"))
    _gold_free(submitted)
    assert submitted["images"] == rec["images"]
    # the submission reads back as a labelled pair whose answer is the model's
    assert parse_record(submitted).answer == "B"


@pytest.mark.parametrize("role", ["Assistant", "ASSISTANT"])
def test_an_assistant_role_in_any_case_is_the_answer(role):
    rec = _base_record()
    rec["messages"].append({"role": role, "content": GOLD_TEXT})
    pair = parse_record(rec)
    assert pair.shape == "sft" and pair.answer == "A"


@pytest.mark.parametrize("messages, needle", [
    ([{"role": "expert", "content": GOLD_TEXT}], "role 'expert'"),
    ([{"content": "no role"}], "role None"),
    (["a bare string"], "role 'a bare string'"),
    ("not a list", "'messages' must be a list"),
])
def test_a_message_without_a_known_role_is_refused_naming_the_line(tmp_path, messages, needle):
    rec = _base_record()
    rec["messages"] = rec["messages"] + messages if isinstance(messages, list) else messages
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(_base_record() | {"images": ["a_c0.png", "a_c1.png"]}) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert needle in str(err.value) and "line 2" in str(err.value) and str(path) in str(err.value)


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    """A tiny Answer run (step 02 only) and a file of the shapes that leaked before: mixed-case roles, gold keys."""
    root = tmp_path_factory.mktemp("leak")
    pf = make_pairs_file(root / "d", n=4, side=64, name="test_sft.jsonl")
    run = root / "run"
    train_tiny_answer_run(layout.step_dir(run, layout.ANSWER_STEP), read_pairs(pf))
    rows = [json.loads(line) for line in pf.read_text().splitlines()]
    for i, rec in enumerate(rows):
        assistant = rec["messages"][-1]
        assistant["role"] = ROLE_SPELLINGS[i % len(ROLE_SPELLINGS)]
        assistant["content"] = assistant["content"].replace("cleaner.", f"cleaner {CANARY}.")
        rec.update(answer=f"A {CANARY}", meta={"gold": CANARY}, label=CANARY)
        if i % 2:
            rec["solution"] = assistant["content"]
    hostile = root / "d" / "hostile.jsonl"
    hostile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run, hostile


def test_export_of_hostile_records_leaks_no_gold(run_and_data, tmp_path):
    run, data = run_and_data
    out = tmp_path / "sub.jsonl"
    summary = export.export(run, data, out, writer="template", stage="S1", device="cpu", progress=False)
    assert summary["pairs"] == 4 and summary["labelled"] == 4  # the accuracy is printed, not written
    for line in out.read_text().splitlines():
        _gold_free(json.loads(line))
    for kind in ("answers", "rationales"):
        text = export.side_file(out, kind).read_text()
        assert CANARY not in text
        assert all("label" not in json.loads(line) for line in text.splitlines())
    assert CANARY not in export.export_manifest(out).read_text()


def test_export_uses_the_runs_saved_cue_thresholds_not_its_train_split(tmp_path, monkeypatch):
    """An export at S2+ computes features for the exported pairs only when the run saved its thresholds."""
    from idiff_lib.thinking.prompting import side_inputs

    run = tmp_path / "run"
    step = layout.step_dir(run, layout.THINKING_STEP)
    step.mkdir(parents=True)
    (step / side_inputs.CUE_THRESHOLDS_FILE).write_text(json.dumps({"cv.sharpness.global": {"threshold": 0.1}}))
    pairs = read_pairs(make_pairs_file(tmp_path / "d", n=2, side=64))
    seen = {}

    def fake_feature_cues(ps, calibration_ids=None, **kw):
        seen.update(ids=[p.id for p in ps], calibration=calibration_ids, thresholds=kw.get("thresholds"))
        return {p.id: {"cv": "", "iqa": ""} for p in ps}, "note"

    monkeypatch.setattr(side_inputs, "feature_cues", fake_feature_cues)
    monkeypatch.setattr(export, "training_pairs", lambda run_dir: pytest.fail("the train split was read"))
    export.cues_for(pairs, "S2", run_dir=run, progress=False)
    assert seen["ids"] == [p.id for p in pairs]
    assert seen["thresholds"] == {"cv.sharpness.global": {"threshold": 0.1}}


def test_a_corrupt_thresholds_file_names_itself(tmp_path):
    from idiff_lib.features import cue_text

    path = tmp_path / "cue_thresholds.json"
    path.write_text("{not json")
    with pytest.raises(DataError) as err:
        cue_text.load_thresholds(path)
    assert str(path) in str(err.value) and "idiff run --from 03" in str(err.value)
