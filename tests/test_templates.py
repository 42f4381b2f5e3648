"""Rationale templates: mined from the public rationales (or the fallback), composed, never copied."""

from __future__ import annotations

import numpy as np
import pytest

from idiff_lib.core.vocabulary import Comparison, mine_lines, raim_vocabulary, write_line, write_rationale
from idiff_lib.data.raim_rationales import mine_raim_folder, raim_lines
from idiff_lib.core import ontology
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import parse_completion
from idiff_lib.scoring.verdicts import read_verdict

COMPARISONS = [("Face", "Texture", "A", 0.5, "denoise_smear"), ("Global", "Noise", "B", 0.2, "luma_noise"),
               ("Hair", "Artifacts", "A", 0.1, "oversharpen"), ("Clothing", "Sharpness", "similar", 0.0)]


def test_mining_the_public_rationales(raim_dir):
    vocab = mine_raim_folder(raim_dir)
    assert vocab.source != "fallback" and vocab.n_lines > 200
    assert vocab.headings["Global Sharpness"] > 10
    assert sum(vocab.counts["side"].values()) > 100
    assert vocab.counts["shape"]["winner_first"] > 0 and vocab.counts["shape"]["similar"] > 0
    assert vocab.counts["term:Texture"]["smearing"] > 0


def test_the_committed_counts_write_without_the_public_rationales(tmp_path):
    vocab = raim_vocabulary()
    assert vocab.n_lines > 0
    text = write_rationale("person", COMPARISONS, "A", 0, vocabulary=vocab)
    assert parse_completion(text).answer == "A"
    with pytest.raises(DataError, match="train_sft_1536.jsonl"):
        mine_raim_folder(tmp_path)


def test_mine_lines_classifies_shapes():
    vocab = mine_lines([
        "Face Noise: Image A (Left) is cleaner, while Image B (Right) shows heavy noise.",
        "Hair Texture: Image B/Right suffers from smearing, whereas Image A/Left keeps detail.",
        "Global Sharpness: Both images show similar clarity.",
        "Clothing Texture: Image A shows finer detail compared to Image B.",
    ])
    assert vocab.counts["shape"] == {"winner_first": 1, "loser_first": 1, "similar": 1, "comparative": 1}
    assert vocab.counts["side"] == {"paren": 2, "slash": 2, "bare": 2}


@pytest.mark.parametrize("seed", range(12))
def test_rationale_shape_and_agreement(seed):
    rng = np.random.default_rng(seed)
    answer = "A" if seed % 2 else "B"
    regions = ontology.REFERENCE_PERSON_REGIONS if seed % 3 else ontology.REFERENCE_SCENE_REGIONS
    category = "person" if seed % 3 else "scene"
    comps = [(str(rng.choice(regions)), str(rng.choice(ontology.REFERENCE_ATTRIBUTES)), str(rng.choice(["A", "B", "similar"])),
              float(rng.uniform(0, 1))) for _ in range(int(rng.integers(1, 9)))]
    comps.append(("Global", "Sharpness", answer, 0.3))
    parsed = parse_completion(write_rationale(category, comps, answer, rng))
    assert parsed.answer == answer and not parsed.problems
    lines = parsed.lines
    assert 4 <= len(lines) <= 7
    assert lines[-1].startswith("Global Overall:") and f"Image {answer}" in lines[-1]
    for line in lines[:-1]:
        region, attribute = line.split(":", 1)[0].split(" ", 1)
        assert region in regions and attribute in ontology.REFERENCE_ATTRIBUTES


def test_line_verdicts_read_back_with_the_rationale_parser():
    vocab = raim_vocabulary()
    agree = total = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        for c in (Comparison("Face", "Texture", "A", 0.4, "denoise_smear"),
                  Comparison("Global", "Noise", "B", 0.2, "luma_noise")):
            line = write_line(c, vocab, "paren", rng)
            verdict, _ = read_verdict(line.split(":", 1)[1])
            agree += verdict == c.verdict
            total += 1
    assert agree / total >= 0.9


def test_no_public_sentence_is_copied(raim_dir):
    public = {ln.split(":", 1)[-1].strip().lower() for ln in raim_lines(raim_dir)}
    for seed in range(30):
        text = write_rationale("person", COMPARISONS, "A", seed)
        for line in parse_completion(text).lines:
            assert line.split(":", 1)[-1].strip().lower() not in public


def test_bad_inputs_are_refused():
    with pytest.raises(ParameterError, match="not a scene region"):
        write_rationale("scene", [("Face", "Texture", "A", 0.3)], "A", 0)
    with pytest.raises(ParameterError, match="attribute"):
        write_rationale("person", [("Face", "Colour", "A", 0.3)], "A", 0)
    with pytest.raises(ParameterError, match="answer"):
        write_rationale("person", [("Face", "Texture", "A", 0.3)], "C", 0)
    with pytest.raises(ParameterError, match="favours the answer"):
        write_rationale("person", [("Face", "Texture", "B", 0.3)], "A", 0)
