"""Golden strings for the Thinking Model's prompt stages S0..S4, and the template mining."""

import pytest

from idiff_lib.data import pairs
from idiff_lib.core import ontology, paths
from idiff_lib.thinking.prompting import prompts
from idiff_lib.core import vocabulary
from idiff_lib.data import raim_rationales
from idiff_lib.core.errors import DataError, ParameterError

HEAD = ("<image><image>\nPlease compare the following image pairs. The first pair is the global view, "
        "followed by detailed crops.")
PERSON_TEMPLATE = (
    "Expert template for a person photo: write one line per region and attribute, as \"Region Attribute: "
    "comparison of Image A (Left) and Image B (Right)\", covering:\n"
    "Face Texture: ...\nFace Sharpness: ...\nHair Texture: ...\nClothing Texture: ...\nGlobal Sharpness: ...\n"
    "Global Noise: ...\nGlobal Overall: which image is better overall and why."
)
CV = "Hand-crafted CV cues (A vs B):\nGlobal Noise: Image A is noisier than Image B."
IQA = "IQA-model cues (A vs B):\nMUSIQ: Image B scores higher."
EVIDENCE_LINE = "Face Sharpness: Image A (Left) better (p 0.91; Image B (Right) shows defocus)"
EVIDENCE = ("Answer Model evidence per aspect (strongest first; p = the head's confidence):\n" + EVIDENCE_LINE)
ANSWER = ("Answer Model verdict: Image B (Right) is better (confidence 0.83). Explain this verdict in the "
          "rationale; the conclusion will be <answer>B</answer>.")
GOLDEN = {
    "S0": HEAD,
    "S1": f"{HEAD}\n\n{PERSON_TEMPLATE}",
    "S2": f"{HEAD}\n\n{PERSON_TEMPLATE}\n\n{CV}",
    "S3": f"{HEAD}\n\n{PERSON_TEMPLATE}\n\n{CV}\n\n{IQA}\n\n{EVIDENCE}",
    "S4": f"{HEAD}\n\n{PERSON_TEMPLATE}\n\n{CV}\n\n{IQA}\n\n{EVIDENCE}\n\n{ANSWER}",
}


@pytest.mark.parametrize("stage", prompts.STAGES)
def test_golden_prompt_per_stage(stage):
    p = prompts.build_prompt(stage, "person", cv_cues="Global Noise: Image A is noisier than Image B.",
                             iqa_cues="MUSIQ: Image B scores higher.", evidence=EVIDENCE_LINE, answer="B",
                             p_answer=0.83)
    assert p.system == pairs.SYSTEM_PROMPT
    assert p.user == GOLDEN[stage]
    assert p.answer == ("B" if stage == "S4" else None)


def test_s0_is_the_challenge_baseline():
    p = prompts.build_prompt("S0", "scene", cv_cues="ignored", answer="A")
    assert (p.system, p.user) == (pairs.SYSTEM_PROMPT, pairs.USER_PROMPT)


def test_scene_template_covers_required_regions_and_missing_cues_are_said():
    p = prompts.build_prompt("S2", "scene")
    for region in ("Background", "Building", "Vegetation", "Edges"):
        assert f"\n{region} " in p.user
    assert p.user.endswith("Hand-crafted CV cues (A vs B):\n(not measured for this pair)")


def test_missing_evidence_is_said_unavailable_never_filled():
    p = prompts.build_prompt("S3", "person")
    assert p.user.endswith("(strongest first; p = the head's confidence):\nunavailable (no evidence given for this pair)")
    assert "Image A (Left) better" not in p.user


def test_s4_requires_an_answer_and_unknown_stage_suggests():
    with pytest.raises(ParameterError, match="S4 needs"):
        prompts.build_prompt("S4", "person")
    with pytest.raises(ParameterError, match="Did you mean"):
        prompts.build_prompt("S5", "person")


def test_chat_messages_turn_placeholders_into_image_items():
    msgs = prompts.build_prompt("S1", "person").chat_messages()
    content = msgs[1]["content"]
    assert [c["type"] for c in content] == ["image", "image", "text"]
    assert content[2]["text"].startswith("Please compare")
    assert msgs[0]["content"][0]["text"] == pairs.SYSTEM_PROMPT


def test_template_heading_maps_synonyms():
    assert ontology.template_heading("Building (Architecture) Sharpness") == "Building Sharpness"
    assert ontology.template_heading("Leaf Texture") == "Vegetation Texture"
    assert ontology.template_heading("Face Skin Texture") == "Face Texture"
    assert ontology.template_heading("Global Overall") is None


def test_mined_templates_have_4_to_7_lines_covering_regions():
    texts = [("person", "Face Texture: a\nHair Sharpness: b\nFace Texture: c\nGlobal Noise: d"),
             ("scene", "Leaf Texture: a\nBackground Noise: b\nBackground Noise: c")]
    voc = vocabulary.mine_vocabulary(texts)
    person, scene = voc.templates["person"], voc.templates["scene"]
    assert person[:3] == ("Face Texture", "Hair Sharpness", "Clothing Texture")
    assert scene[:4] == ("Background Noise", "Building Sharpness", "Vegetation Texture", "Edges Sharpness")
    for h in (person, scene):
        assert vocabulary.MIN_LINES <= len(h) <= vocabulary.MAX_LINES - 1


def test_committed_counts_are_the_public_raim_rationales_ones():
    voc = prompts.load_vocabulary()  # the default reads only the committed counts
    assert voc.source == "100 public RAIM-PIQA rationales"
    assert voc.templates["person"][0] == "Face Texture"  # the most frequent heading of person pairs
    assert voc.heading_counts["person"]["Face Texture"] >= 30
    if paths.raim_dir() is None:
        pytest.skip("the public RAIM-PIQA rationales are not available")
    mined = prompts.load_vocabulary(raim_dir=paths.raim_dir())
    assert mined == voc, "re-mine the counts: idiff think mine-vocabulary --raim-dir ../shared/raim_piqa"
    assert [list(c) for c in mined.counts.values()] == [list(c) for c in voc.counts.values()]  # same draw order


def test_counts_file_round_trips_and_holds_no_sentence(tmp_path):
    if paths.raim_dir() is None:
        pytest.skip("the public RAIM-PIQA rationales are not available")
    out = raim_rationales.remine_raim_vocabulary(paths.raim_dir(), tmp_path / "counts.json")
    assert out.read_text() == vocabulary.RAIM_VOCABULARY_FILE.read_text()
    stored = vocabulary.RAIM_VOCABULARY_FILE.read_text(encoding="utf-8").lower()
    for line in raim_rationales.raim_lines(paths.raim_dir()):
        body = line.split(":", 1)[-1].strip().lower()
        assert len(body) < 40 or body not in stored


def test_train_split_counts_add_to_the_public_ones():
    text = pairs.format_completion("Hair Sharpness: a\nHair Sharpness: b\nHair Sharpness: c", "A")
    labelled = [pairs.make_pair(["p_001_merged_c0.jpg", "p_001_merged_c1.jpg"], text)]
    base = prompts.load_vocabulary()
    voc = prompts.load_vocabulary(labelled)
    assert voc.source == "100 public RAIM-PIQA rationales + 1 labelled pairs"
    assert voc.heading_counts["person"]["Hair Sharpness"] == base.heading_counts["person"].get("Hair Sharpness", 0) + 3


def test_nothing_outside_the_repository_is_read_by_default(monkeypatch):
    def refuse(folder):
        raise AssertionError(f"read {folder}")

    monkeypatch.setattr(raim_rationales, "raim_texts", refuse)
    prompts_vocabulary = prompts.load_vocabulary()
    assert prompts_vocabulary.templates["person"]
    from idiff_lib.thinking.model.tiny import rationale_corpus

    labelled = [pairs.make_pair(["p_001_merged_c0.jpg", "p_001_merged_c1.jpg"],
                                pairs.format_completion("Face Noise: Image A is noisier.", "B"))]
    corpus = rationale_corpus(labelled)
    assert [t for t in corpus if t.startswith("<thinking>")] == [labelled[0].completion]  # no RAIM rationale


def test_a_raim_folder_without_the_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="train_sft_1536.jsonl"):
        prompts.load_vocabulary(raim_dir=tmp_path)


def test_s3_and_s4_name_the_iqa_sources_under_the_heading():
    kw = dict(cv_cues="Global Noise: Image A is noisier than Image B.", iqa_cues="MUSIQ: Image B scores higher.",
              iqa_sources="PIQE (LIQE, QALIGN: no weights)", answer="B", p_answer=0.83)
    line = "IQA-model cues (A vs B):\nIQA cues from: PIQE (LIQE, QALIGN: no weights)\nMUSIQ: Image B scores higher."
    for stage in ("S3", "S4"):
        assert line in prompts.build_prompt(stage, "person", **kw).user
    assert prompts.build_prompt("S2", "person", **kw).user == GOLDEN["S2"], "S2 has no IQA block"
    empty = prompts.build_prompt("S3", "person", iqa_sources="none (LIQE: no weights)").user
    assert "IQA-model cues (A vs B):\nIQA cues from: none (LIQE: no weights)\n(not measured for this pair)\n\n" in empty
