"""Issue 19 part 2: the worked pair, the shuffled-reference floor, wrong-side labels, the S0 control,
the cluster bootstrap over photos and the computed "What this shows" sentences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from idiff_lib.answer.experiments import analysis
from idiff_lib.answer.experiments.ensemble import Ensemble, FeatureMemberAdapter
from idiff_lib.answer.experiments.ensemblers import LogisticStacking
from idiff_lib.core import layout, paths
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data import meta, views
from idiff_lib.data.datasets import load_split
from idiff_lib.data.pairs import format_completion, make_pair
from idiff_lib.data.swap import write_swapped_pair
from idiff_lib.report import html_report
from idiff_lib.report import ladder_plot, narrative, thinking_narrative
from idiff_lib.scoring import system_scores
from idiff_lib.scoring import controls, scorers, stats, worked_pair
from idiff_lib.thinking.decode import evaluation
from idiff_lib.thinking.prompting import prompts

DEMO = paths.DEMO_DIR


def _pair(pid: str, thinking: str, answer: str):
    return make_pair([f"{pid}_merged_c0.jpg", f"{pid}_merged_c1.jpg"], format_completion(thinking, answer))


# ------------------------------------------------------------------ derangement and the floor
@pytest.mark.parametrize("n", [2, 3, 5, 17, 100])
def test_derangement_moves_every_index_and_is_deterministic(n):
    order = controls.derangement(n, seed=3)
    assert sorted(order) == list(range(n))
    assert all(i != j for i, j in enumerate(order))
    assert order == controls.derangement(n, seed=3)
    if n > 3:
        assert order != controls.derangement(n, seed=4)


def test_derangement_refuses_fewer_than_two():
    with pytest.raises(DataError, match="at least two"):
        controls.derangement(1)


def test_shuffled_references_give_each_pair_another_pairs_reference():
    refs = [_pair(f"p_{i}", f"Face Noise: Image A is cleaner number {i}.", "A") for i in range(6)]
    rows = controls.shuffled_reference_predictions(refs, seed=0)
    assert [r["id"] for r in rows] == [p.id for p in refs]
    own = {p.id: p.completion for p in refs}
    assert all(r["completion"] != own[r["id"]] for r in rows)
    assert sorted(r["completion"] for r in rows) == sorted(own.values())


def test_floor_row_scores_the_demo_references_between_zero_and_the_ceiling():
    refs = list(load_split(DEMO, "test"))[:30]
    floor = system_scores.floor_row(refs, bootstrap=50, seed=0)
    assert floor["stage"] == controls.FLOOR_STAGE and floor["system"] == controls.FLOOR_SYSTEM
    assert 0 < floor["bleu4"] < 99 and 0 < floor["rouge_l"] < 1
    ceiling = scorers.score([{"id": p.id, "completion": p.completion} for p in refs], refs, bootstrap=50).metrics
    assert floor["rouge_l"] < ceiling["rouge_l"]["f"]


# ------------------------------------------------------------------ wrong side labels
@pytest.mark.parametrize("text, expected", [
    ("Image A (Left) is sharper than Image B (Right).", 0),
    ("Image A on the left; Image B on the right.", 0),
    ("Image A (Right) is sharper than Image B (Left).", 2),
    ("Image A/Right keeps texture, Image B on the left is noisy.", 2),
    ("The left image (Image B) is softer.", 1),
    ("image b (left) and IMAGE A (RIGHT)", 2),
    ("", 0),
])
def test_wrong_side_labels(text, expected):
    assert controls.wrong_side_labels(text) == expected


def test_wrong_side_scorer_counts_rationales():
    refs = [_pair("p_0", "Face Noise: Image A (Left) is cleaner.", "A"),
            _pair("p_1", "Face Noise: Image B (Right) is cleaner.", "B")]
    preds = [{"id": "p_0", "completion": format_completion("Face Noise: Image A (Right) is cleaner.", "A")},
             {"id": "p_1", "completion": format_completion("Face Noise: Image B (Right) is cleaner.", "B")}]
    result = scorers.score(preds, refs, bootstrap=20)
    assert result.metrics["wrong_side"]["rate"] == 0.5 and result.metrics["wrong_side"]["rationales"] == 1
    assert list(result.per_sample["wrong_side"]) == [1, 0]
    assert system_scores.summary_row(result.metrics)["wrong_side_rate"] == 0.5


# ------------------------------------------------------------------ cluster bootstrap
def _clustered(k=8, m=25, seed=0):
    rng = np.random.default_rng(seed)
    cluster_means = rng.uniform(0.1, 0.9, k)  # strongly correlated within a photo
    values = np.concatenate([(rng.random(m) < cm).astype(float) for cm in cluster_means])
    labels = np.repeat([f"photo{i}" for i in range(k)], m)
    return values, labels


def test_cluster_bootstrap_is_wider_than_the_pair_bootstrap_on_clustered_data():
    values, labels = _clustered()
    pair = stats.cluster_bootstrap_mean(values, None, n_boot=2000, seed=1)
    clus = stats.cluster_bootstrap_mean(values, labels, n_boot=2000, seed=1)
    assert pair["value"] == clus["value"] == pytest.approx(values.mean())
    assert clus["n_clusters"] == 8 and pair["n_clusters"] == len(values)
    assert (clus["ci_high"] - clus["ci_low"]) > 1.5 * (pair["ci_high"] - pair["ci_low"])
    assert clus["method"] == "cluster bootstrap over photos"


def test_cluster_bootstrap_with_singleton_clusters_matches_the_pair_bootstrap_width():
    values, _ = _clustered()
    singles = stats.cluster_bootstrap_mean(values, [str(i) for i in range(len(values))], n_boot=4000, seed=2)
    plain = stats.bootstrap_mean(values, n_boot=4000, seed=2)
    assert singles["ci_high"] - singles["ci_low"] == pytest.approx(plain["ci_high"] - plain["ci_low"], abs=0.02)


def test_cluster_bootstrap_edge_cases():
    assert stats.cluster_bootstrap_mean([], None)["value"] is None
    out = stats.cluster_bootstrap_mean([1.0, float("nan"), 0.0], ["a", "b", "b"], n_boot=10)
    assert out["n"] == 2 and out["n_clusters"] == 2
    with pytest.raises(ValueError, match="cluster labels"):
        stats.cluster_bootstrap_mean([1.0, 0.0], ["a"])


def test_score_intervals_resample_photos_when_given():
    refs = [_pair(f"p_{i}", "Face Noise: Image A is cleaner.", "A") for i in range(40)]
    preds = [{"id": p.id, "completion": format_completion("Face Noise: Image A is cleaner.", "A" if i < 20 else "B")}
             for i, p in enumerate(refs)]
    photos = {p.id: f"photo{i // 20}" for i, p in enumerate(refs)}  # two photos: one all right, one all wrong
    by_photo = scorers.score(preds, refs, clusters=photos, bootstrap=500).metrics
    by_pair = scorers.score(preds, refs, bootstrap=500).metrics
    wide, narrow = by_photo["accuracy"]["overall"], by_pair["accuracy"]["overall"]
    assert wide["n_clusters"] == 2 and wide["ci_high"] - wide["ci_low"] > narrow["ci_high"] - narrow["ci_low"]
    assert by_photo["settings"]["intervals"] == stats.CLUSTER_CI_CAPTION
    assert "ci_low" in by_photo["rouge_l"] and "sentence_ci_low" in by_photo["bleu4"]


def test_photo_clusters_from_meta_and_fallback(tmp_path):
    ids = [p.id for p in load_split(DEMO, "test")]
    photos = meta.photo_clusters(DEMO, "test", ids + ["not_in_meta"])
    assert len(set(photos[i] for i in ids)) < len(ids) / 5, "demo test pairs share a few photos"
    assert photos["not_in_meta"] == "pair:not_in_meta"
    assert meta.split_meta(tmp_path, "test") == {}
    assert meta.photo_clusters(tmp_path, "test", ["x"]) == {"x": "pair:x"}


def test_answer_accuracy_table_uses_the_photos():
    values, labels = _clustered()
    p = np.where(values > 0.5, 0.9, 0.1)
    y = np.ones(len(p))
    cats = ["person"] * len(p)
    by_pair = analysis.accuracy_table(p, y, cats)["overall"]
    by_photo = analysis.accuracy_table(p, y, cats, clusters=labels)["overall"]
    assert by_photo["acc"] == by_pair["acc"] and by_photo["hi"] - by_photo["lo"] > by_pair["hi"] - by_pair["lo"]


# ------------------------------------------------------------------ worked pair
def test_worked_pair_default_is_a_tradeoff_pair_of_the_demo():
    worked = worked_pair.WorkedPair.load(DEMO)
    row = meta.split_meta(DEMO, "test")[worked.id]
    assert row["tradeoff"] is True and worked.meta == row and worked.pair == worked_pair.resolve_worked_pair(DEMO)
    assert worked.comparisons == meta.split_comparisons(DEMO, "test")[worked.id]
    assert "trade-off" in worked.truth_sentence()
    truth = worked.ground_truth()
    assert {"A", "B"} <= set(truth["side"]) and truth["severity"].notna().all()


def test_a_worked_pair_without_meta_says_so_from_its_reference():
    pair = _pair("p_1", "Face Noise: Image A is cleaner than Image B.\nHair Sharpness: Image B is sharper than Image A.", "A")
    worked = worked_pair.WorkedPair(pair, None)
    assert worked.comparisons is None and worked.ground_truth().empty
    assert "gives aspects to both A and B" in worked.truth_sentence()


def test_worked_pair_rule_without_meta_reads_the_references():
    one_sided = _pair("p_0", "Face Noise: Image A is cleaner than Image B.\nGlobal Overall: Image A is better.", "A")
    mixed = _pair("p_1", "Face Noise: Image A is cleaner than Image B.\nHair Sharpness: Image B is sharper than Image A.", "A")
    assert worked_pair.choose_worked_pair([one_sided, mixed]) == "p_1"
    assert worked_pair.choose_worked_pair([one_sided]) == "p_0"
    assert worked_pair.choose_worked_pair([one_sided, mixed], {"p_0": {"tradeoff": True}}) == "p_0"
    with pytest.raises(ParameterError):
        worked_pair.choose_worked_pair([])


def test_worked_pair_explicit_id_is_checked():
    some = list(load_split(DEMO, "test"))[5].id
    assert worked_pair.resolve_worked_pair(DEMO, some).id == some
    with pytest.raises(ParameterError, match="Valid ids include: p_test_000") as err:
        worked_pair.resolve_worked_pair(DEMO, "p_test_9999")
    assert "worked_pair" in str(err.value) and "\n" not in str(err.value)


def test_line_by_line_and_pair_scores():
    ref = _pair("p_0", "Face Noise: Image A (Left) is cleaner than Image B (Right).\n"
                       "Hair Sharpness: Image B (Right) is sharper than Image A (Left).", "A")
    cand = format_completion("Face Noise: Image B is cleaner, while Image A shows heavy noise.\n"
                             "Global Overall: Image B (Left) is better than Image A (Right).", "B")
    table = worked_pair.line_by_line(cand, ref)
    assert list(table["aspect"]) == ["face noise", "hair sharpness", "global overall"]
    assert not table.loc[0, "agree"] and table.loc[1, "candidate verdict"] == "absent"
    assert table.loc[2, "reference verdict"] == "absent" and table.loc[2, "reference line"] == ""
    assert list(table["wrong side labels"]) == [0, 0, 2]
    self_scores = worked_pair.pair_scores(ref.completion, ref)
    assert self_scores["ROUGE-L F"] == pytest.approx(1.0) and self_scores["wrong side labels"] == 0
    assert worked_pair.pair_scores(cand, ref)["ROUGE-L F"] < 1.0


def test_swapped_pair_exchanges_the_halves(tmp_path):
    pair = worked_pair.resolve_worked_pair(DEMO)
    swapped = write_swapped_pair(pair, tmp_path)
    assert swapped.answer == {"A": "B", "B": "A"}[pair.answer] and swapped.id != pair.id
    a, b = views.split_merged(views.load_rgb(pair.image_path(0)))
    a2, b2 = views.split_merged(views.load_rgb(swapped.image_path(0)))
    assert np.array_equal(a2, b) and np.array_equal(b2, a)


# ------------------------------------------------------------------ accuracy copied from the prompt
def test_answer_in_prompt_stages_match_the_prompts():
    for stage in prompts.STAGES:
        p = prompts.build_prompt(stage, "person", answer="A")
        assert (p.answer is not None) == (stage in controls.ANSWER_IN_PROMPT_STAGES)
        assert (controls.accuracy_source(stage) == controls.ACCURACY_COPIED_NOTE) == (p.answer is not None)


# ------------------------------------------------------------------ sentences
LADDER = [{"system": "tiny", "stage": f"S{k}", "rouge_l": 0.30 + 0.02 * k, "bleu4": 0.20 + 0.01 * k,
           "accuracy": 0.5 if k < 4 else 0.8, "wrong_side_rate": 0.9} for k in range(5)]
LADDER += [{"system": "tiny-S0-5ep", "stage": "S0", "rouge_l": 0.36, "bleu4": 0.23, "accuracy": 0.49, "wrong_side_rate": 0.0}]
FLOOR = {"system": controls.FLOOR_SYSTEM, "stage": controls.FLOOR_STAGE, "rouge_l": 0.35, "bleu4": 0.225,
         "wrong_side_rate": 0.0}


def test_floor_and_wrong_side_sentences():
    s = narrative.text_floor_sentence(pd.DataFrame(LADDER + [FLOOR]), "rouge_l")
    assert s.startswith("3 of 6 ladder rows") and "(0.350)" in s and "+0.030" in s and "no interval" in s
    w = controls.wrong_side_sentence(LADDER + [FLOOR])
    assert "tiny S0" in w and "90%" in w and "1 of 6 rows never" in w
    assert narrative.text_floor_sentence(pd.DataFrame(LADDER), "rouge_l") == "", "no floor row: nothing to say"


def test_ladder_accuracy_and_control_sentences():
    lines = narrative.ladder_accuracy_sentences(pd.DataFrame(LADDER))
    assert lines[0] == "tiny S0's accuracy is 0.50, at chance (0.50); no interval was computed for it."
    assert "tiny S4's accuracy is 0.80, above chance" in lines[4]
    c = thinking_narrative.control_sentence(LADDER, "tiny", "tiny-S0-5ep")
    assert "S0 trained as long as S4 0.360" in c and "training alone accounts for 75%" in c
    assert "No interval was computed" in c, "a split of point values says that it is not shown to be real"
    longer = [r if r["system"] != "tiny-S0-5ep" else {**r, "rouge_l": 0.5} for r in LADDER]
    assert "gain is more training" in thinking_narrative.control_sentence(longer, "tiny", "tiny-S0-5ep")
    flat = [{**r, "rouge_l": 0.3} for r in LADDER]
    assert "no gain to split" in thinking_narrative.control_sentence(flat, "tiny", "tiny-S0-5ep")
    assert "not trained" in thinking_narrative.control_sentence(LADDER[:5], "tiny", "tiny-S0-5ep")


class _Net:
    def __init__(self, name):
        self.name = name


def test_ensemble_sentences():
    stack = LogisticStacking()
    stack.coef = np.array([0.3, 0.2, 1.25])
    ens = Ensemble([_Net("resnet"), _Net("convnext"), FeatureMemberAdapter(None, None, "features")], stack)
    assert analysis.member_weights(ens) == {"resnet": 0.3, "convnext": 0.2, "features": 1.25}
    s = analysis.ensemble_weight_sentence(ens)
    assert "5.0× the networks' mean" in s and "mostly the feature member" in s
    probs = np.array([[0.9, 0.2], [0.2, 0.3], [0.6, 0.7], [0.4, 0.45]])
    labels = np.array([1.0, 1.0, 1.0, 0.0])
    w = analysis.all_wrong_sentence(probs, labels)
    assert "wrong on 1 of 4" in w and "share 0.5" in w and "about what chance predicts" in w
    c = analysis.calibration_sentence(np.full(20, 0.51), np.r_[np.ones(10), np.zeros(10)], "convnext")
    assert "because its p stays near 0.5" in c and "mean |p − 0.5| = 0.01" in c


def test_worked_pair_rationales_table(tmp_path):
    ref = _pair("p_0", "Face Noise: Image A (Left) is cleaner.", "A")
    f = tmp_path / "tiny_S0.jsonl"
    f.write_text(json.dumps({"id": "p_0", "completion": format_completion("Face Noise: Image A (Right) is cleaner.", "A")}) + "\n")
    table = evaluation.worked_pair_rationales({"S0": f, "S1": tmp_path / "missing.jsonl"}, ref)
    assert list(table["stage"]) == ["S0", "S1", "reference"]
    assert table.loc[0, "wrong side labels"] == 1 and table.loc[1, "answer"] == "not generated"


# ------------------------------------------------------------------ Table B and the ladder figures
def test_table_b_and_figures_show_the_floor_and_the_copied_accuracy(tmp_path):
    (tmp_path / layout.SCORING_STEP).mkdir()
    rows = [{**r, "accuracy_ci_low": 0.4, "accuracy_ci_high": 0.6, "aspect_f1": 0.5, "consistency": 0.9}
            for r in LADDER + [{**FLOOR, "accuracy": 0.5}]]
    pd.DataFrame(rows).to_csv(tmp_path / layout.SCORING_STEP / layout.SCORING_LADDER_FILE, index=False)
    b = html_report.thinking_table(tmp_path)
    assert b.iloc[-1]["system"] == controls.FLOOR_SYSTEM and b.iloc[-1]["BLEU-4"] == "0.225"
    s4 = b[b["stage"].str.startswith("S4")].iloc[0]
    assert s4["accuracy [95% CI]"].endswith("†") and s4["wrong side"] == "0.90"
    assert "†" not in b[b["stage"].str.startswith("S3")].iloc[0]["accuracy [95% CI]"]
    assert stats.CLUSTER_CI_CAPTION in html_report.TABLE_B_NOTE
    fig = html_report.thinking_ladder_plot(tmp_path).figure
    assert any("floor" in t.get_text() for t in fig.axes[1].get_legend().get_texts())
    fig = ladder_plot.plot_ladder(ladder_plot.stage_ladder_panels(pd.DataFrame(rows), ("rouge_l", "accuracy"))).figure
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert ladder_plot.TEXT_FLOOR_LABEL in labels and controls.FLOOR_SYSTEM not in labels
    assert fig.axes[1].get_title().endswith(f"{', '.join(controls.ANSWER_IN_PROMPT_STAGES)}: copied from the prompt")


def test_worked_pair_probabilities_swap_to_one_minus_p(tmp_path):
    from answer_fixtures import make_pairs_file, train_tiny_answer_run
    from idiff_lib.answer.experiments.run_store import load_answer_run
    from idiff_lib.data.pairs import read_pairs

    pairs = read_pairs(make_pairs_file(tmp_path / "data", n=8))
    ens = load_answer_run(train_tiny_answer_run(tmp_path / "run", list(pairs)), device="cpu")
    table = analysis.worked_pair_probabilities(ens, pairs[0], tmp_path / "worked")
    assert list(table["model"]) == [*ens.names, "ensemble"]
    assert np.allclose(table["p_left"] + table["p_left (swapped)"], 1.0, atol=1e-4), "the head is antisymmetric"
    assert (table["|difference|"] < 1e-4).all()
