import json

import pytest

from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import (
    category_from_id,
    format_completion,
    make_pair,
    pair_id,
    parse_completion,
    read_pairs,
    summarise,
    write_pairs,
)


@pytest.mark.parametrize("name", ["train_sft_1536.jsonl", "train_grpo_1536.jsonl"])
def test_public_files_parse_and_round_trip(raim_dir, tmp_path, name):
    src = raim_dir / name
    pairs = read_pairs(src)
    assert summarise(pairs) == {"pairs": 100, "labelled": 100, "category": {"person": 75, "scene": 25},
                                "answer": {"A": 59, "B": 41}}
    assert all(not p.problems for p in pairs)
    write_pairs(pairs, tmp_path / "out.jsonl")
    original = [json.loads(line) for line in src.read_text().splitlines()]
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == original


def test_grpo_converts_to_the_sft_file(raim_dir, tmp_path):
    write_pairs(read_pairs(raim_dir / "train_grpo_1536.jsonl"), tmp_path / "sft.jsonl", shape="sft")
    want = [json.loads(line) for line in (raim_dir / "train_sft_1536.jsonl").read_text().splitlines()]
    assert [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()] == want


def test_ids_and_categories():
    assert pair_id("data/1536/images/p_000_merged_c0.jpg") == "p_000"
    assert pair_id("x/s_012_merged_c1.png") == "s_012"
    assert pair_id("shot7_A.jpg") == "shot7"
    assert category_from_id("p_000") == "person" and category_from_id("s_1") == "scene"
    assert category_from_id("shot7") is None


@pytest.mark.parametrize("text, answer, problems", [
    ("<thinking>\nFace Noise: A cleaner.\n</thinking>\n<answer>A</answer>", "A", ()),
    ("  <THINKING> x </Thinking>   <answer> b </ANSWER> ", "B", ()),
    ("<thinking> x <answer>A</answer>", "A", ("missing </thinking>",)),
    ("just text <answer>B</answer>", "B", ("missing <thinking>",)),
    ("<thinking>x</thinking>", None, ("missing <answer>",)),
    ("<thinking>x</thinking><answer>C</answer>", None, ("answer 'C' is not A or B",)),
    ("", None, ("empty completion",)),
])
def test_parse_completion_tolerates_and_reports(text, answer, problems):
    parsed = parse_completion(text)
    assert parsed.answer == answer
    assert parsed.problems == problems


def test_two_answers_are_reported():
    parsed = parse_completion("<thinking>x</thinking><answer>A</answer><answer>B</answer>")
    assert parsed.answer == "A" and "2 <answer> tags, the first one counts" in parsed.problems[0]


def test_format_completion_parses_back():
    text = format_completion(["Face Noise: A is cleaner.", "Global Overall: A wins."], "A")
    assert parse_completion(text).lines == ["Face Noise: A is cleaner.", "Global Overall: A wins."]


def test_unlabeled_and_separate_layout(tmp_path):
    rec = {"images": ["shot_A.jpg", "shot_B.jpg"], "messages": [{"role": "user", "content": "?"}]}
    (tmp_path / "t.jsonl").write_text(json.dumps(rec) + "\n")
    (pair,) = read_pairs(tmp_path / "t.jsonl")
    assert pair.shape == "test" and pair.answer is None and pair.layout == "separate" and pair.id == "shot"


def test_image_paths_resolve_against_parents_and_data_root(tmp_path):
    (tmp_path / "data/1536/images").mkdir(parents=True)
    (tmp_path / "data/1536/images/p_000_merged_c0.jpg").write_bytes(b"x")
    (tmp_path / "ann").mkdir()
    rec = {"images": ["data/1536/images/p_000_merged_c0.jpg", "data/1536/images/p_000_merged_c1.jpg"]}
    (tmp_path / "ann/t.jsonl").write_text(json.dumps(rec) + "\n")
    (pair,) = read_pairs(tmp_path / "ann/t.jsonl")
    assert pair.images[0] == tmp_path / "data/1536/images/p_000_merged_c0.jpg"
    assert pair.images[1] is None
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "p_000_merged_c1.jpg").write_bytes(b"x")
    (pair,) = read_pairs(tmp_path / "ann/t.jsonl", data_root=other)
    assert pair.images[1] == other / "p_000_merged_c1.jpg"


def _write(tmp_path, lines):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines))
    return path


def test_malformed_json_names_file_and_line(tmp_path, pair_folder):
    good = (pair_folder / "pairs.jsonl").read_text().splitlines(keepends=True)
    path = _write(pair_folder, [good[0], "{not json\n", good[2]])
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert err.value.line == 2 and "bad.jsonl" in str(err.value) and "fix:" in str(err.value)


def test_answer_not_a_or_b(tmp_path):
    rec = {"images": ["p_1_merged_c0.jpg", "p_1_merged_c1.jpg"], "solution": "<thinking>x</thinking><answer>C</answer>"}
    path = _write(tmp_path, [json.dumps(rec) + "\n"])
    with pytest.raises(DataError, match="line 1.*not A or B"):
        read_pairs(path)


def test_missing_image_is_a_data_error(tmp_path):
    rec = {"images": ["p_1_merged_c0.jpg", "p_1_merged_c1.jpg"]}
    path = _write(tmp_path, [json.dumps(rec) + "\n"])
    with pytest.raises(DataError, match="image not found.*p_1_merged_c0.jpg"):
        read_pairs(path, require_images=True)


def test_skip_bad_reports_and_keeps_going(tmp_path, pair_folder):
    good = (pair_folder / "pairs.jsonl").read_text().splitlines(keepends=True)
    path = _write(pair_folder, [good[0], "{not json\n", good[1]])
    with pytest.warns(UserWarning, match="skipped bad sample"):
        pairs = read_pairs(path, skip_bad=True)
    assert [p.id for p in pairs] == ["p_000", "p_001"]
    assert len(pairs.skipped) == 1 and pairs.skipped[0].line == 2


def test_make_pair_writes_all_shapes(tmp_path):
    pair = make_pair(["p_9_merged_c0.jpg", "p_9_merged_c1.jpg"], format_completion("Face Noise: A.", "A"))
    assert pair.to_record("grpo")["solution"].endswith("<answer>A</answer>")
    assert pair.to_record("sft")["messages"][-1]["role"] == "assistant"
    assert "solution" not in pair.to_record("test") and len(pair.to_record("test")["messages"]) == 2


def test_majority_answer_is_the_commonest_letter_first_met_on_a_tie_and_the_default_without_answers():
    from idiff_lib.data.pairs import majority_answer

    def pair(i, answer):
        return make_pair([f"p_{i}_merged_c0.jpg", f"p_{i}_merged_c1.jpg"], format_completion("Face Noise: A.", answer))

    assert majority_answer([pair(0, "A"), pair(1, "B"), pair(2, "B")]) == "B"
    assert majority_answer([pair(0, "B"), pair(1, "A")]) == "B"  # a tie: the first met
    assert majority_answer([], default="B") == "B"

