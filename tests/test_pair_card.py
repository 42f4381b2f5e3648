"""Issue 28: the worked pair to the end. Notebook 06's pair card gives each branch's verdict on the pair
(the Answer Model's probability, the Thinking Model's S0-S4 answers and lines marked against the
ground truth) and says each contradiction in words: a rationale whose lines argue against its own
answer, a prompt cue against the truth."""

from __future__ import annotations

import json

import yaml

from idiff_lib.core import layout
from idiff_lib.data.pairs import format_completion, make_pair
from idiff_lib.scoring import worked_pair

TRUTH = [{"region": "Face", "attribute": "Sharpness", "verdict": "A"},
         {"region": "Global", "attribute": "Noise", "verdict": "B"}]
PAIR = make_pair(["p_test_000_merged_c0.jpg", "p_test_000_merged_c1.jpg"],
                 format_completion("Face Sharpness: Image A (Left) is sharper than Image B (Right).\n"
                                   "Global Overall: Image A (Left) is better overall.", "A"))
AGAINST = format_completion("Face Sharpness: Image B (Right) is sharper than Image A (Left).\n"
                            "Global Noise: Image B (Right) is cleaner than Image A (Left).\n"
                            "Global Overall: Image A (Left) is better overall.", "A")
AGREES = format_completion("Face Sharpness: Image A (Left) is sharper than Image B (Right).\n"
                           "Global Overall: Image A (Left) is better overall.", "A")


def test_a_rationale_whose_lines_pick_the_other_side_is_named():
    assert worked_pair.lines_against_answer(AGAINST) == "2 of its 2 aspect lines that pick a side pick B, yet it answers A"
    assert worked_pair.lines_against_answer(AGREES) is None
    overall = format_completion("Global Overall: Image B (Right) is better overall.", "A")
    assert worked_pair.lines_against_answer(overall) == "its Overall line names B while it answers A"
    assert worked_pair.lines_against_answer("no answer at all") is None


def test_pair_card_marks_every_line_and_says_each_contradiction():
    prompts = {"S1": "Template:\nFace Sharpness: ...", "S2": "Template:\nFace Sharpness: ...\n"
               "Hand-crafted CV cues (A vs B):\nGlobal Noise: Image A is cleaner than Image B."}
    card = worked_pair.pair_card(PAIR, TRUTH, {"answer": "B", "p_left": 0.47}, {"S0": None, "S3": AGREES, "S4": AGAINST}, prompts)
    verdicts = card.verdicts.set_index(["branch", "stage"])
    assert verdicts.loc[("Answer Model", ""), "note"] == "p_left = 0.470"
    assert verdicts.loc[("Answer Model", ""), "against the expert"] == "✗ wrong"
    assert verdicts.loc[("Thinking Model", "S0"), "note"] == "not written"
    assert verdicts.loc[("Thinking Model", "S4"), "against the expert"] == "✓ right"
    assert verdicts.loc[("Thinking Model", "S4"), "lines right"] == "1 of 2"
    s4 = card.lines[card.lines["stage"] == "S4"]
    assert list(s4["mark"]) == ["✗ wrong", "✓ right", "· not judged"] and list(s4["truth"]) == ["A", "B", ""]
    text = " ".join(card.sentences)
    assert "The Answer Model answers B; the expert answers A." in text
    assert "S4 rationale argues against its own answer: 2 of its 2 aspect lines" in text
    assert "S3 rationale argues" not in text and "S3 rationale has" not in text
    assert ("The S2 prompt's line \"Global Noise: Image A is cleaner than Image B.\" favours A on global noise, "
            "where the ground truth favours B.") in text
    clean = worked_pair.pair_card(PAIR, TRUTH, {"answer": "A", "p_left": 0.8}, {"S3": AGREES})
    assert clean.sentences[0].startswith("No contradiction found")


def test_load_pair_card_reads_the_run(tmp_path):
    answer, thinking = tmp_path / layout.ANSWER_STEP, tmp_path / layout.THINKING_STEP
    (thinking / "ladder").mkdir(parents=True)
    answer.mkdir()
    (answer / layout.TEST_PREDICTIONS_FILE).write_text(json.dumps({"id": PAIR.id, "answer": "A", "p_left": 0.8}) + "\n")
    (thinking / layout.METRICS_FILE).write_text(json.dumps({"final_system": "tiny_S4"}))
    (thinking / layout.PARAMS_FILE).write_text(yaml.safe_dump({"stages": ["S0", "S4"]}))
    (thinking / "ladder" / "tiny_S4.jsonl").write_text(json.dumps({"id": PAIR.id, "completion": AGAINST}) + "\n")
    (thinking / worked_pair.WORKED_PROMPTS_FILE).write_text(json.dumps({"id": PAIR.id, "prompts": {"S0": "x"}}))
    card = worked_pair.load_pair_card(tmp_path, worked_pair.WorkedPair(PAIR, None))  # no meta/: nothing is judged against the truth
    assert list(card.verdicts["stage"]) == ["", "S0", "S4"] and list(card.verdicts["answer"]) == ["A", "none", "A"]
    assert set(card.lines["mark"]) == {"· not judged"}
    assert any("argues against its own answer" in s for s in card.sentences)
