"""The Thinking Model's aspect evidence: ranking, the prompt block, reading it back, swaps and the filled template."""

from types import SimpleNamespace

import pytest

from idiff_lib.data import pairs
from idiff_lib.scoring.meta_verdicts import pair_counts
from idiff_lib.thinking.prompting import evidence, prompts, template_baseline
from idiff_lib.thinking.train.encoding import swap_sides_text

HEADS = {"aspects": {"Face Sharpness": 0.9, "Global Texture": 0.3, "Hair Noise": 0.52, "Background Noise": 0.99},
         "defects": {"defocus": 0.6, "luma_noise": -0.02}}


def test_ranking_keeps_the_content_regions_strongest_first_with_the_losers_defect():
    ranked = evidence.rank_aspects("person", HEADS, lines=3, presence_weight=1.0)
    assert [v.heading for v in ranked] == ["Face Sharpness", "Global Texture", "Hair Noise"]  # no scene region
    face, texture, _ = ranked
    assert (face.winner, face.confidence, face.cause) == ("A", 0.9, "defocus")  # A - B severity > 0: A is worse
    assert (texture.winner, texture.confidence, texture.cause) == ("B", 0.7, None)  # B wins: no defect seen on A
    assert evidence.rank_aspects("person", HEADS, lines=1, presence_weight=0.0)[0].heading == "Face Sharpness"


def test_ranking_weighs_the_defect_gaps():
    heads = {"aspects": {"Global Noise": 0.8, "Global Sharpness": 0.7}, "defects": {"defocus": -0.9}}
    assert evidence.rank_aspects("scene", heads, lines=1, presence_weight=0.0)[0].heading == "Global Noise"
    assert evidence.rank_aspects("scene", heads, lines=1, presence_weight=1.0)[0].heading == "Global Sharpness"


def test_presence_heads_choose_the_aspects_and_leave_out_the_unlikely():
    heads = {"aspects": {"Global Noise": 0.95, "Global Sharpness": 0.6, "Global Texture": 0.3},
             "presence": {"Global Noise": 0.1, "Global Sharpness": 0.9, "Global Texture": 0.5},
             "defects": {"defocus": -0.9}}
    ranked = evidence.rank_aspects("scene", heads, lines=3, presence_weight=2.0)
    assert [v.heading for v in ranked] == ["Global Sharpness", "Global Texture", "Global Noise"]
    kept = evidence.rank_aspects("scene", heads, lines=3, presence_weight=2.0, min_presence=0.3)
    assert [v.heading for v in kept] == ["Global Sharpness", "Global Texture"]  # Noise: p 0.1 of differing
    none = {**heads, "presence": {k: 0.0 for k in heads["presence"]}}
    assert len(evidence.rank_aspects("scene", none, lines=3, presence_weight=2.0, min_presence=0.3)) == 1  # the strongest
    taught = evidence.rank_aspects("scene", heads, lines=1, presence_weight=2.0, min_presence=0.3,
                                   order=["Global Noise", "Global Texture"])
    assert [v.heading for v in taught] == ["Global Noise", "Global Texture"]  # a reference's aspects, as written


def test_block_reads_back_and_swaps_with_the_sides():
    ranked = evidence.rank_aspects("person", HEADS, lines=3, presence_weight=1.0)
    block = evidence.evidence_block(ranked)
    assert block.splitlines()[0] == "Face Sharpness: Image B (Right) better (p 0.90; Image A (Left) shows defocus)" \
        or block.splitlines()[0] == "Face Sharpness: Image A (Left) better (p 0.90; Image B (Right) shows defocus)"
    assert evidence.parse_evidence(block) == ranked
    swapped = evidence.parse_evidence(swap_sides_text(block))
    assert [v.winner for v in swapped] == ["B", "A", "B"]
    assert [v.heading for v in swapped] == [v.heading for v in ranked]


def test_missing_evidence_says_unavailable_and_reads_as_nothing():
    text = evidence.evidence_block(None, "no aspect heads in 02_train_answer_model")
    assert text == "unavailable (no aspect heads in 02_train_answer_model)"
    assert evidence.parse_evidence(text) == []
    pair = SimpleNamespace(id="p1", category="person")  # what the evidence and the prompts read of a pair
    blocks = evidence.pair_evidence([pair], None, lines=4, presence_weight=1.0)
    assert blocks["p1"].startswith("unavailable (no aspect heads in this run")
    assert evidence.pair_evidence([pair], {}, lines=4, presence_weight=1.0)["p1"].startswith(
        "unavailable (no head output for this pair")


def test_evidence_answer_is_the_confidence_weighted_vote():
    v = [evidence.AspectVerdict("Global", "Noise", "A", 0.6), evidence.AspectVerdict("Face", "Texture", "B", 0.95)]
    assert evidence.evidence_answer(v) == "B"
    assert evidence.evidence_answer([], prior="B") == "B"


@pytest.mark.parametrize("answer", ["A", "B"])
def test_filled_template_states_each_line_and_the_answer(answer):
    v = [evidence.AspectVerdict("Face", "Sharpness", "A", 0.9, "defocus"),
         evidence.AspectVerdict("Global", "Noise", "A", 0.8)]
    text = evidence.evidence_rationale("person", v, answer, seed=3)
    parsed = pairs.parse_completion(text)
    assert parsed.answer == answer
    comparisons = [{"region": "Face", "attribute": "Sharpness", "verdict": "A"},
                   {"region": "Global", "attribute": "Noise", "verdict": "A"}]
    counts = pair_counts(parsed.thinking, comparisons)
    assert (counts["covered"], counts["right"]) == (2, 2)  # both lines read back as written
    assert parsed.lines[-1].startswith("Global Overall:")
    assert evidence.evidence_rationale(None, v, answer) is None


def test_template_writer_fills_from_the_prompts_evidence_at_s3_and_s4():
    pair = SimpleNamespace(id="p1", category="person")  # what the evidence and the prompts read of a pair
    block = "Face Sharpness: Image B (Right) better (p 0.93; Image A (Left) shows defocus)"
    cues = {"p1": {"cv": "", "iqa": "", "evidence": block}}
    vocabulary = prompts.FALLBACK_VOCABULARY
    for stage, answer, source in (("S3", None, "evidence"), ("S4", "A", "answer_model")):
        built = prompts.build_prompts([pair], stage, cues=cues, answers={"p1": {"answer": answer}} if answer else {},
                                      vocabulary=vocabulary)
        assert block in built["p1"].user
        completion, info = template_baseline.writer(vocabulary, stage, "A", cues)([pair], built)[0]
        assert info["answer_source"] == source
        assert pairs.parse_completion(completion).answer == ("B" if stage == "S3" else "A")
        assert "Face Sharpness: " in completion


def test_training_pairs_follow_their_reference_aspects_with_the_heads_verdicts():
    thinking = ("Hair Noise: Image A (Left) is cleaner.\nFace Sharpness: Image B (Right) is sharper.\n"
                "Skin Texture: Image A (Left) keeps texture.\nGlobal Overall: Image A (Left) is better overall.")
    assert evidence.reference_headings(thinking) == ["Hair Noise", "Face Sharpness", "Skin Texture"]
    pair = SimpleNamespace(id="t1", category="person", thinking=thinking)
    taught = evidence.pair_evidence([pair], {"t1": HEADS}, lines=4, presence_weight=1.0, follow_reference=["t1"])
    lines = taught["t1"].splitlines()
    # the reference's order; Skin Texture has no head and is left out; Face Sharpness keeps the head's own verdict (A)
    assert [ln.split(":")[0] for ln in lines] == ["Hair Noise", "Face Sharpness"]
    assert lines[1].startswith("Face Sharpness: Image A (Left) better (p 0.90")
    ranked = evidence.pair_evidence([pair], {"t1": HEADS}, lines=4, presence_weight=1.0)
    assert ranked["t1"].splitlines()[0].startswith("Face Sharpness")  # not followed: the ranking


def test_evidence_agreement_counts_the_lines_that_say_what_the_evidence_says():
    block = evidence.evidence_block([evidence.AspectVerdict("Face", "Texture", "B", 0.8),
                                     evidence.AspectVerdict("Global", "Noise", "A", 0.7)])
    rationale = ("Face Texture: Image B (Right) keeps finer texture detail, while Image A (Left) shows smearing.\n"
                 "Global Noise: Image A (Left) shows heavy noise, while Image B (Right) is clean.\n"
                 "Global Sharpness: Image A (Left) is sharper.\nGlobal Overall: Image B (Right) is better overall.")
    got = evidence.evidence_agreement({"p1": rationale, "p2": rationale}, {"p1": block})
    assert got == {"evidence_agreement": 0.5, "n_lines_on_evidence": 2}  # p2 has no block; Sharpness no line
    assert evidence.evidence_agreement({"p1": ""}, {"p1": block})["evidence_agreement"] is None
