"""Issue 28: where each ladder row's answer came from is recorded per row, exactly. An S4 row whose
prompt carried a fallback verdict (no Answer Model prediction for the pair) records the fallback, not
"answer_model", so the counts and sentences of notebooks 03, 05 and 06 say how many verdicts were the
Answer Model's."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd

from idiff_lib.data.pairs import format_completion
from idiff_lib.report import narrative
from idiff_lib.report import thinking_narrative
from idiff_lib.scoring import controls
from idiff_lib.thinking.prompting import prompts, template_baseline
from idiff_lib.thinking.decode.generation import finish_completion, verdict_sources, with_verdict_sources
from idiff_lib.thinking.prompting.side_inputs import s4_answers


def _pairs():
    return [SimpleNamespace(id=f"p{i}", answer=a, category="person") for i, a in enumerate("ABAB")] + [
        SimpleNamespace(id="p4", answer=None, category="person")]  # no reference answer: the prior fallback


def _preds(tmp_path):
    path = tmp_path / "preds_test.jsonl"
    path.write_text(json.dumps({"id": "p0", "answer": "B", "p_left": 0.3}) + "\n")  # the Answer Model predicted p0 only
    return path


def test_verdict_sources_follow_the_rule_of_s4_answers(tmp_path):
    pairs, preds = _pairs(), _preds(tmp_path)
    answers, note = s4_answers(pairs, preds, "reference", prior="A")
    sources = verdict_sources(pairs, preds, "reference")
    assert sources == {"p0": "answer_model", "p1": "reference_fallback", "p2": "reference_fallback",
                       "p3": "reference_fallback", "p4": "prior_fallback"}
    for p in pairs:  # each source names the letter s4_answers put in the prompt
        expected = {"answer_model": "B", "reference_fallback": p.answer, "prior_fallback": "A"}[sources[p.id]]
        assert answers[p.id]["answer"] == expected, p.id
    assert "1 of 5 pairs" in note and "4 pairs use the reference fallback" in note
    assert set(verdict_sources(pairs, tmp_path / "missing.jsonl", "prior").values()) == {"prior_fallback"}
    assert set(sources.values()) <= set(controls.PROMPT_VERDICT_SOURCES)


def test_with_verdict_sources_relabels_only_the_prompts_verdict():
    def writer(part, _prompts):
        return [finish_completion("Face Noise: A is cleaner.</thinking>", "A") if p.id != "p1"
                else finish_completion("Face Noise: A is cleaner. <answer>B</answer>") for p in part]

    out = with_verdict_sources(writer, {"p0": "reference_fallback", "p1": "reference_fallback"})(
        [SimpleNamespace(id="p0"), SimpleNamespace(id="p1"), SimpleNamespace(id="p2")], {})
    assert [info["answer_source"] for _, info in out] == ["reference_fallback", "model", "answer_model"], \
        "p1 wrote its own answer; p2 has no recorded source, so it keeps the writer's"
    assert out[0][0] == finish_completion("Face Noise: A is cleaner.</thinking>", "A")[0], "the text is unchanged"


def test_the_template_writer_at_s4_records_the_fallback_too():
    pair = SimpleNamespace(id="p1", category="person")
    cues = {"p1": {"cv": "", "iqa": "", "evidence": "unavailable (test)"}}
    built = prompts.build_prompts([pair], "S4", cues=cues, answers={"p1": {"answer": "B"}},
                                  vocabulary=prompts.FALLBACK_VOCABULARY)
    writer = with_verdict_sources(template_baseline.writer(prompts.FALLBACK_VOCABULARY, "S4", "A", cues),
                                  {"p1": "reference_fallback"})
    assert writer([pair], built)[0][1]["answer_source"] == "reference_fallback"


def _rows(tmp_path, name, letters, sources):
    folder = tmp_path / "ladder"
    folder.mkdir(exist_ok=True)
    rows = [{"id": f"p{i}", "completion": format_completion("Global Overall: fine.", a), "answer_source": s}
            for i, (a, s) in enumerate(zip(letters, sources))]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_counts_and_sentences_name_the_fallback_verdicts(tmp_path):
    folder = _rows(tmp_path, "tiny_S4", "BABA", ["answer_model"] + ["reference_fallback"] * 3)
    _rows(tmp_path, "tiny_S0", "BBBB", ["fallback"] * 4)
    counts = narrative.ladder_answer_counts(folder, {"p0": "A", "p1": "A", "p2": "B", "p3": "A"})
    s4 = narrative.counts_by_row(counts)[("tiny", "S4")]
    assert s4["sources"] == {"answer_model": 1, "reference_fallback": 3} and narrative.copied_from_prompt(s4["sources"], 4)
    sentence = narrative.answer_count_sentence("tiny S4", s4, 0.75)
    assert "copied from the prompt" in sentence and "the Answer Model's for 1" in sentence
    assert "the reference answer (right by construction) for 3" in sentence
    assert controls.ACCURACY_COPIED_NOTE not in sentence, "not all verdicts were the Answer Model's"
    ladder = pd.DataFrame([{"system": "tiny", "stage": "S0", "accuracy": 0.25, "accuracy_ci_low": 0.0,
                            "accuracy_ci_high": 0.6},
                           {"system": "tiny", "stage": "S4", "accuracy": 0.75, "accuracy_ci_low": 0.4,
                            "accuracy_ci_high": 1.0}])
    table = thinking_narrative.accuracy_count_table(ladder, counts).set_index("stage")
    assert table.loc["S0", "constant"] == "B" and table.loc["S0", "answers from"] == "fallback 4"
    assert table.loc["S4", "answers from"] == "reference (fallback) 3, Answer Model 1"
    assert table.loc["S4", "95% interval"] == "[0.40, 1.00]" and (table.loc["S4", "A"], table.loc["S4", "B"]) == (2, 2)
