"""Issue 28: notebook 02's sentences follow what ran. No pretext text under a run without one, a drop
explained only where a rung dropped (its reason filled with the train split's counts), regularisation
and pretraining claims computed from the histories and the ladder, the worked pair's verdict from its
probabilities."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from idiff_lib.report import answer_narrative


def _wide(accs, lows=None, highs=None, extra=()):
    names = ["merged", "split", "local", "specialists", "ensemble"][:len(accs)]
    lows = lows or [a - 0.05 for a in accs]
    highs = highs or [a + 0.05 for a in accs]
    rows = [{"row": n, "kind": "rung", "overall_acc": a, "overall_lo": lo, "overall_hi": hi, "overall_n": 200}
            for n, a, lo, hi in zip(names, accs, lows, highs)]
    return pd.DataFrame(rows + list(extra))


def test_pretext_sentence_says_whether_it_ran():
    assert answer_narrative.pretext_sentence("finetune", 40, False, True).startswith("The pretext task ran 40 steps")
    heads = answer_narrative.pretext_sentence("heads", 2, False, False)
    assert heads.startswith("No pretext task ran") and "'heads'" in heads and "random weights" in heads
    assert "pretext_steps = 0" in answer_narrative.pretext_sentence("finetune", 0, True, False)
    assert "summary above" not in answer_narrative.pretext_sentence("finetune", 0, True, False)


def test_only_rungs_that_do_not_improve_get_a_sentence():
    wide = _wide([0.50, 0.66, 0.69, 0.72, 0.705])
    lines = answer_narrative.no_gain_sentences(wide)
    assert len(lines) == 1 and lines[0].startswith("ensemble scores 0.015 below specialists (3 of 200 test pairs)")
    assert "the intervals overlap, so this run does not show a real difference" in lines[0]
    apart = _wide([0.5, 0.9, 0.6], lows=[0.45, 0.85, 0.55], highs=[0.55, 0.95, 0.65])
    assert answer_narrative.no_gain_sentences(apart, n_test=10)[0].endswith("the intervals do not overlap.")
    assert "(3 of 10 test pairs)" in answer_narrative.no_gain_sentences(apart, n_test=10)[0]
    assert answer_narrative.no_gain_sentences(_wide([0.5, 0.6, 0.7])) == [], "every rung improves: nothing to explain"


def test_a_drop_reason_appears_only_under_the_rung_that_dropped():
    categories = ["person"] * 6 + ["scene"] * 2
    rises = _wide([0.50, 0.66, 0.69, 0.72, 0.705])  # specialists rise, the ensemble drops
    reasons = answer_narrative.drop_reasons(rises, categories)
    assert len(reasons) == 1 and reasons[0].startswith("Why ensemble may not improve")
    drops = answer_narrative.drop_reasons(_wide([0.50, 0.66, 0.69, 0.60, 0.70]), categories)
    assert drops[0].startswith("Why specialists") and "6 person and 2 scene of the 8 train pairs" in drops[0]


def test_regularisation_sentences_count_heads_below_chance():
    hist = {"m_views": [{"head": "all", "C": c, "val_loss": v} for c, v in ((0.01, 0.60), (0.1, 0.55), (1.0, 0.80))],
            "m_merged": [{"head": "all", "C": c, "val_loss": v} for c, v in ((0.01, 0.75), (0.1, 0.72), (1.0, 0.70))]}
    first, second = answer_narrative.regularisation_sentences(hist)
    assert first.startswith("1 of 2 heads reach a val log-loss below chance") and "m_views, reaches 0.550 at C = 0.1" in first
    assert second.startswith("1 of 2 heads do worse on val at the largest C"), "m_merged is best at its largest C"
    assert answer_narrative.regularisation_sentences({}) == []


def test_pretraining_sentences_compare_the_same_rung():
    wide = _wide([0.5, 0.66], extra=[{"row": "split (no pretraining)", "kind": "ablation", "overall_acc": 0.5,
                                      "overall_lo": 0.45, "overall_hi": 0.55}])
    (line,) = answer_narrative.pretraining_sentences(wide)
    assert line.startswith("split scores 0.660 [0.610, 0.710] with pretrained weights and 0.500 [0.450, 0.550]")
    assert "worth +0.160" in line and "do not overlap" in line
    assert answer_narrative.pretraining_sentences(_wide([0.5, 0.6])) == []


@pytest.mark.parametrize("p, expert, words", [(0.77, "A", "answers A; the expert answers A, so it is right"),
                                               (0.47, "A", "answers B; the expert answers A, so it is wrong"),
                                               (0.47, None, "unjudged")])
def test_worked_answer_sentence(p, expert, words):
    probs = pd.DataFrame({"model": ["m1", "m2", "m3", "ensemble"], "p_left": [0.6, 0.4, 0.5000001, p]})
    s = answer_narrative.worked_answer_sentence(probs, expert, "p_test_000")
    assert words in s and f"logit {math.log(p / (1 - p)):+.2f}" in s
    assert "Of 3 members, 1 pick A and 1 pick B; 1 sit at 0.500" in s, "a member shown as 0.500 picks no side"
