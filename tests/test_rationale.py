"""The structured aspect parser: headings, vocabularies, verdicts, coverage of the real rationales."""

from __future__ import annotations

import pytest

from idiff_lib.core import paths
from idiff_lib.core import ontology
from idiff_lib.scoring import parser
from idiff_lib.scoring import verdicts
from idiff_lib.data.pairs import read_pairs


@pytest.mark.parametrize("heading, regions, attributes", [
    ("Face Texture", ("face",), ("texture",)),
    ("Global Sharpness", ("global",), ("sharpness",)),
    ("Clothing (White Shirt) Sharpness", ("clothing",), ("sharpness",)),
    ("Face Skin Texture", ("face",), ("texture",)),
    ("Hair Edge Quality", ("hair",), ("edges",)),
    ("Background [Noise]", ("background",), ("noise",)),
    ("Face, Neck, Clothing", ("face", "body", "clothing"), ()),
    ("Body/Arm Contrast and Sharpness", ("body",), ("contrast", "sharpness")),
    ("Building (Architecture) Texture", ("building",), ("texture",)),
    ("Flower (Petals) Sharpness", ("vegetation",), ("sharpness",)),
    ("Mid-to-Dark Tones Noise", ("tones",), ("noise",)),
    ("Global Perceived Clarity", ("global",), ("sharpness",)),
    ("Global Naturalness", ("global",), ("realism",)),
    ("Text Edge Definition", ("text",), ("edges",)),
    ("Noise", (), ("noise",)),
    ("Global Color", ("global",), ("color",)),
    ("Global Colour", ("global",), ("color",)),
])
def test_normalise_heading(heading, regions, attributes):
    assert ontology.normalise_heading(heading) == (regions, attributes)


def test_parse_line_fields_and_defaults():
    a = parser.parse_line("Face Texture: Image A (Left) keeps fine pores, while Image B (Right) looks waxy.")
    assert (a.region, a.attribute, a.verdict) == ("face", "texture", "A")
    assert a.heading == "Face Texture" and a.text.startswith("Image A") and a.known
    # Region only: the attribute is read from the sentence; attribute only: the region is global.
    hair = parser.parse_line("Hair: Image B shows heavy smearing in the strands; Image A keeps them.")
    assert (hair.region, hair.attribute, hair.attribute_source, hair.verdict) == ("hair", "artifacts", "text", "A")
    noise = parser.parse_line("Noise: Image A displays heavy, coarse noise, while Image B is cleaner.")
    assert (noise.region, noise.attribute, noise.verdict) == ("global", "noise", "B")
    # A bare "Global:" is the overall judgement.
    assert parser.parse_line("Global: Image A looks better overall.").attribute == "overall"
    # Bullets, numbering and markdown bold are tolerated.
    for line in ("- Face Sharpness: Image B is sharper.", "2. **Face Sharpness**: Image B is sharper."):
        a = parser.parse_line(line)
        assert (a.region, a.attribute, a.verdict) == ("face", "sharpness", "B")
    multi = parser.parse_line("Face, Hair: Image B shows smearing, Image A does not.")
    assert multi.keys == {("face", "artifacts"), ("hair", "artifacts")} and multi.verdict == "A"
    vague = parser.parse_line("Face, Hair: Image A is cleaner than Image B.")
    assert (vague.attribute, vague.attribute_source, vague.known) == ("overall", "default", False)


@pytest.mark.parametrize("line", ["", "   ", "Image A is better.", "no heading here",
                                  "This is a very long sentence that happens to hold a colon somewhere: yes"])
def test_lines_without_heading_are_none(line):
    assert parser.parse_line(line) is None


@pytest.mark.parametrize("text, verdict", [
    ("Image A (Left) exhibits significant noise in the shirt, while Image B (Right) appears cleaner.", "B"),
    ("Image B/Right preserves hair strands with greater clarity compared to Image A/Left.", "B"),
    ("Image A/Left presents smooth and natural hair, whereas Image B/Right displays jagged strands.", "A"),
    ("The left image is sharper than the right image.", "A"),
    ("The right image has less noise.", "B"),
    ("Image B shows no halos, while Image A has visible halos.", "B"),
    ("Image A does not show any smearing, whereas Image B does.", "A"),
    ("Image A is not as sharp as Image B.", "B"),
    ("Image A (Left) shows no noticeable smearing artifacts compared to Image B (Right).", "A"),
    ("Image B (Right) displays severe smearing in facial details, while Image A (Left) maintains sharper features.", "A"),
    ("Both images show similar levels of sharpness in the shirt.", "similar"),
    ("Both Image A and Image B exhibit comparable facial clarity.", "similar"),
    ("No significant difference is observed between Image A and Image B.", "similar"),
    ("Neither image shows noise.", "similar"),
    ("Image A (Left) has an advantage in skin quality, while Image B (Right) excels in hair detail.", "mixed"),
    ("Despite Image B's superior sharpness in hair, the evaluator selects Image A (Left).", "A"),
    ("Image A clearly exhibits higher sharpness. Although no blurring is applied, the excessive sharpness "
     "appears unnatural and undesirable. Therefore, we prefer Image B (Right).", "B"),
    ("A is better than B.", "A"),
    ("The texture is rendered.", None),
])
def test_read_verdict(text, verdict):
    assert verdicts.read_verdict(text)[0] == verdict


def test_parse_rationale_accepts_a_whole_completion():
    text = ("<thinking>\nFace Texture: Image A (Left) is richer.\nnot an aspect line\n"
            "Global Noise: Image B (Right) is noisier.\n</thinking>\n<answer>A</answer>")
    aspects = parser.parse_rationale(text)
    assert [a.key for a in aspects] == [("face", "texture"), ("global", "noise")]
    assert [a.verdict for a in aspects] == ["A", "A"]
    assert parser.unparsed_lines(text) == ["not an aspect line"]
    assert parser.overall_verdict(aspects) == "A"
    assert parser.parse_rationale("") == [] and parser.parse_rationale(None) == []


def test_overall_verdict_prefers_a_conclusion_line():
    aspects = parser.parse_rationale("Face Texture: Image A is sharper.\nHair Noise: Image A is cleaner.\n"
                                "Global Overall: Image B is preferred overall.")
    assert parser.overall_verdict(aspects) == "B"
    tie = parser.parse_rationale("Face Texture: Image A is sharper.\nHair Noise: Image B is cleaner.")
    assert parser.overall_verdict(tie) is None


def test_parsed_names_come_from_the_ontology():
    text = ("Face Skin Texture: Image A (Left) keeps pores, while Image B (Right) looks waxy.\n"
            "Background [Noise]: Image B is noisier than Image A.\n"
            "Global Colour: both images are similar.\n"
            "Global Overall: Image A is better overall.")
    aspects = parser.parse_rationale(text)
    assert [a.key for a in aspects] == [("face", "texture"), ("background", "noise"), ("global", "color"),
                                        ("global", "overall")]
    for a in aspects:
        assert set(a.regions) <= set(ontology.REGIONS) and set(a.attributes) <= set(ontology.ATTRIBUTES)
        assert a.verdict is None or a.verdict in ontology.VERDICTS


def _real_pairs():
    folder = paths.raim_dir()
    if folder is None:
        pytest.skip("the public RAIM-PIQA rationales are not here (../shared/raim_piqa)")
    return read_pairs(folder / "train_sft_1536.jsonl")


def test_coverage_of_the_real_rationales():
    """Target of issue 7: >= 95% of the real lines get a known region and attribute."""
    pairs = _real_pairs()
    report = parser.coverage(p.thinking for p in pairs)
    assert report.lines > 250
    assert report.known_fraction >= 0.95, report.unknown
    # Almost every real line states a preference or a similarity.
    assert report.verdicts.get("none", 0) / report.lines < 0.05


def test_real_rationales_mostly_agree_with_their_answers():
    """A proxy for the verdict reader: the experts' rationales favour the answer they chose."""
    pairs = _real_pairs()
    agree = sum(parser.overall_verdict(parser.parse_rationale(p.thinking)) == p.answer for p in pairs)
    assert agree / len(pairs) >= 0.85


# Hand labels of the verdict of 80 real lines ("pair id:line index" -> verdict), read by a person
# from ../shared/raim_piqa/train_sft_1536.jsonl (the text is read there, never copied here).
# TUNED: the first 40 random lines, looked at while the lexicon was refined.
# HELD_OUT: 40 more random lines labelled afterwards; the reader got 37/40 on them (34/34 of the
# A/B lines) before one fix to "Both Image A (Left) and Image B (Right)".
TUNED = {
    "p_054:0": "similar", "p_025:1": "B", "p_066:2": "B", "p_007:0": "A", "p_011:2": "A", "s_013:0": "B",
    "p_016:0": "A", "p_061:1": "B", "s_023:0": "B", "p_008:1": "B", "s_008:0": "B", "p_036:0": "B",
    "p_005:0": "A", "p_013:0": "A", "p_071:3": "A", "p_069:3": "B", "p_011:0": "A", "p_040:1": "B",
    "p_013:2": "A", "s_016:1": "A", "p_070:1": "B", "p_009:0": "A", "s_019:0": "B", "p_021:1": "mixed",
    "p_037:2": "B", "p_009:1": "A", "s_022:1": "B", "s_023:1": "B", "p_066:3": "B", "p_007:1": "mixed",
    "p_037:1": "B", "p_006:2": "A", "s_017:2": "A", "p_022:3": "A", "p_047:3": "A", "p_024:0": "B",
    "s_014:1": "B", "p_020:1": "A", "s_020:0": "A", "p_050:3": "B",
}
HELD_OUT = {
    "s_009:0": "B", "s_011:1": "A", "s_025:3": "similar", "s_023:2": "B", "p_038:2": "A", "p_037:0": "A",
    "s_014:0": "similar", "p_038:0": "A", "p_020:2": "A", "s_007:2": "A", "p_059:1": "B", "p_014:0": "A",
    "p_007:3": "mixed", "p_053:0": "A", "s_000:3": "B", "s_007:1": "A", "p_067:0": "B", "p_061:0": "mixed",
    "p_002:1": "B", "p_058:1": "B", "p_039:1": "A", "p_043:2": "A", "p_064:1": "A", "p_070:2": "B",
    "p_059:3": "B", "p_064:0": "A", "p_017:1": "A", "p_060:1": "B", "p_000:3": "B", "s_002:0": "B",
    "p_051:0": "A", "p_004:0": "similar", "p_003:2": "mixed", "p_002:0": "B", "s_022:0": "B", "s_006:1": "B",
    "p_025:2": "B", "p_058:2": "B", "p_001:2": "A", "p_074:0": "A",
}


@pytest.mark.parametrize("labels, minimum", [(TUNED, 0.9), (HELD_OUT, 0.9)], ids=["tuned", "held_out"])
def test_verdicts_against_hand_labels(labels, minimum):
    pairs = {p.id: p for p in _real_pairs()}
    right = 0
    for key, verdict in labels.items():
        pid, index = key.split(":")
        aspect = parser.parse_line(pairs[pid].thinking.splitlines()[int(index)])
        right += aspect.verdict == verdict
    assert right / len(labels) >= minimum
    ab = {k: v for k, v in labels.items() if v in ("A", "B")}
    ab_right = sum(parser.parse_line(pairs[k.split(":")[0]].thinking.splitlines()[int(k.split(":")[1])]).verdict == v
                   for k, v in ab.items())
    assert ab_right / len(ab) >= 0.95
