"""Structure-constrained decoding: the Overall line and <answer> agree, through transformers' generate."""

import pytest
import torch

from idiff_lib.data import pairs
from idiff_lib.thinking.decode.generation import AgreementConstraint
from test_small_vlm import _tiny_parts


@pytest.fixture(scope="module")
def tok():
    return _tiny_parts()[1]


def _run(constraint, tok, written: str, steps: int = 40) -> str:
    """Feed `written` as the model's own text, then let the constraint force what it must (else stop)."""
    prompt = tok("You compare two photos.", add_special_tokens=False).input_ids
    ids = prompt + tok(written, add_special_tokens=False).input_ids
    forced = []
    for _ in range(steps):
        allowed = constraint(0, torch.tensor(ids))
        if len(allowed) != 1:
            break
        token = int(allowed[0])
        if token == tok.eos_token_id:
            break
        ids.append(token)
        forced.append(token)
    return tok.decode(forced)


def test_the_answer_after_thinking_follows_the_overall_line(tok):
    prompt_len = len(tok("You compare two photos.", add_special_tokens=False).input_ids)
    written = "Global Sharpness: Image B is sharper.\nGlobal Overall: Image B (Right) is better.\n</thinking>"
    forced = _run(AgreementConstraint(tok, prompt_len, [None], fallback="A"), tok, written)
    assert forced.replace(" ", "") == "\n<answer>B</answer>".replace(" ", "")


def test_a_given_verdict_is_written_into_the_overall_line(tok):
    prompt_len = len(tok("You compare two photos.", add_special_tokens=False).input_ids)
    constraint = AgreementConstraint(tok, prompt_len, ["A"])
    forced = _run(constraint, tok, "Face Noise: Image B is noisier.\nGlobal Overall:")
    assert "Image A (Left) is better overall" in forced.replace("  ", " ")
    text = "Face Noise: Image B is noisier.\nGlobal Overall: Image A (Left) is better overall.\n</thinking>"
    after = _run(AgreementConstraint(tok, prompt_len, ["A"]), tok, text)
    assert after.replace(" ", "") == "\n<answer>A</answer>"
    completion = f"<thinking>\n{text.replace('</thinking>', '')}</thinking>{after}"
    assert pairs.parse_completion(completion).answer == "A"


def test_free_text_is_left_to_the_model(tok):
    prompt_len = len(tok("You compare two photos.", add_special_tokens=False).input_ids)
    allowed = AgreementConstraint(tok, prompt_len, ["B"])(0, torch.tensor(tok("You compare two photos. Face",
                                                                               add_special_tokens=False).input_ids))
    assert len(allowed) == len(tok)


def test_generate_with_the_constraint_ends_in_an_agreeing_answer():
    """Through `generate_ids` on a random tiny model: whatever it writes, a closing answer agrees with its Overall line."""
    lm, tok = _tiny_parts()
    ids = tok("Global Overall: Image B (Right) is better.\n</thinking>", add_special_tokens=False).input_ids
    constraint = AgreementConstraint(tok, 0, [None])
    out = lm.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=20,
                      do_sample=False, prefix_allowed_tokens_fn=constraint, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, len(ids):], skip_special_tokens=True)
    assert text.replace(" ", "").startswith("\n<answer>B</answer>")


def test_decoding_comparison_scores_files_on_the_same_pairs(tmp_path):
    from idiff_lib.core import storage
    from idiff_lib.thinking.decode.evaluation import decoding_comparison

    refs = [pairs.make_pair([f"images/p_{i}_merged_c0.jpg", f"images/p_{i}_merged_c1.jpg"],
                                pairs.format_completion("Global Overall: Image A (Left) is better overall.", "A"),
                                base_dir=tmp_path) for i in range(3)]
    agree = pairs.format_completion("Global Overall: Image A (Left) is better overall.", "A")
    disagree = pairs.format_completion("Global Overall: Image B (Right) is better overall.", "A")
    storage.write_jsonl(tmp_path / "c.jsonl", [{"id": p.id, "completion": agree, "raw_format_ok": True} for p in refs])
    storage.write_jsonl(tmp_path / "f.jsonl", [{"id": p.id, "completion": disagree, "raw_format_ok": False} for p in refs])
    storage.write_jsonl(tmp_path / "short.jsonl", [{"id": refs[0].id, "completion": agree}])
    table = decoding_comparison({"constrained": tmp_path / "c.jsonl", "free": tmp_path / "f.jsonl",
                                 "partial": tmp_path / "short.jsonl", "absent": tmp_path / "none.jsonl"}, refs)
    assert list(table["decoding"]) == ["constrained", "free"]  # files missing a pair are left out
    assert list(table["consistency"]) == [1.0, 0.0] and list(table["raw_format_pass"]) == [1.0, 0.0]
    assert list(table["n"]) == [3, 3]


def _copy_through(tok, evidence, answer, pieces):
    """Alternate the constraint's forced text with the model's own `pieces`; the whole generated text."""
    prompt = tok("You compare two photos.", add_special_tokens=False).input_ids
    constraint = AgreementConstraint(tok, len(prompt), [answer], evidence=[evidence])
    text = ""
    for piece in [""] + list(pieces):
        text += piece
        text += _run(constraint, tok, text)
    return text


def test_copy_through_starts_each_line_with_the_evidence_heading_and_side(tok):
    from idiff_lib.thinking.prompting.evidence import AspectVerdict

    evidence = [AspectVerdict("Face", "Texture", "B", 0.8), AspectVerdict("Global", "Noise", "A", 0.7)]
    text = _copy_through(tok, evidence, "A", [" keeps finer texture.\n", " is cleaner.\n", " thanks to less noise.\n"])
    flat = text.replace(" ", "")
    assert flat.startswith("<thinking>\nFaceTexture:ImageB(Right)keepsfinertexture.\nGlobalNoise:ImageA(Left)iscleaner.\n"
                           "GlobalOverall:ImageA(Left)isbetteroverall"), text
    assert flat.endswith("thankstolessnoise.\n</thinking>\n<answer>A</answer>"), text
    parsed = pairs.parse_completion(text)
    assert parsed.answer == "A" and [ln.split(":")[0] for ln in parsed.thinking.strip().splitlines()] == [
        "Face Texture", "Global Noise", "Global Overall"]


def test_copy_through_without_a_given_verdict_lets_the_overall_line_decide(tok):
    from idiff_lib.thinking.prompting.evidence import AspectVerdict

    text = _copy_through(tok, [AspectVerdict("Global", "Sharpness", "B", 0.9)], None,
                         [" is sharper.\n", " Image B (Right) is better.\n"])
    assert text.replace(" ", "").endswith("GlobalOverall:ImageB(Right)isbetter.\n</thinking>\n<answer>B</answer>"), text


def test_rows_without_evidence_are_not_copied_through(tok):
    prompt_len = len(tok("You compare two photos.", add_special_tokens=False).input_ids)
    constraint = AgreementConstraint(tok, prompt_len, ["B"], evidence=[[]])
    allowed = constraint(0, torch.tensor(tok("You compare two photos.", add_special_tokens=False).input_ids))
    assert len(allowed) == len(tok)


def test_generate_copies_the_evidence_through():
    """Through transformers' generate on a random tiny model: the first line is the evidence's, and the better
    side's clause holds none of the house's words for a defect's strength."""
    from idiff_lib.core.vocabulary import INTENSITY
    from idiff_lib.thinking.prompting.evidence import AspectVerdict

    lm, tok = _tiny_parts()
    ids = tok("You compare two photos.", add_special_tokens=False).input_ids
    constraint = AgreementConstraint(tok, len(ids), ["B"], evidence=[[AspectVerdict("Face", "Texture", "B", 0.8)]])
    out = lm.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=40,
                      do_sample=False, prefix_allowed_tokens_fn=constraint, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, len(ids):], skip_special_tokens=True)
    assert text.replace(" ", "").startswith("<thinking>\nFaceTexture:ImageB(Right)"), text
    clause = text.split("(Right)", 1)[1].split(",")[0].split(".")[0].split("\n")[0]
    assert not set(clause.lower().split()) & {w for level in INTENSITY.values() for w in level}, text


def test_the_better_sides_clause_may_not_take_a_defects_strength(tok):
    from idiff_lib.thinking.prompting.evidence import AspectVerdict

    prompt = tok("You compare two photos.", add_special_tokens=False).input_ids
    constraint = AgreementConstraint(tok, len(prompt), ["A"], evidence=[[AspectVerdict("Global", "Noise", "A", 0.7)]])
    text = _run(constraint, tok, "")  # the forced line start
    noticeable = tok(" noticeable", add_special_tokens=False).input_ids[0]
    ids = prompt + tok(text + " shows", add_special_tokens=False).input_ids
    assert noticeable not in set(constraint(0, torch.tensor(ids)).tolist())
    ids = prompt + tok(text + " is clean, while Image B (Right) shows", add_special_tokens=False).input_ids
    after = set(constraint(0, torch.tensor(ids)).tolist())
    assert noticeable in after and len(after) == int(constraint.open_words.sum())  # after the clause: free but open


def test_a_copied_through_rationale_cannot_close_before_its_overall_line(tok):
    from idiff_lib.thinking.prompting.evidence import AspectVerdict

    prompt = tok("You compare two photos.", add_special_tokens=False).input_ids
    closing = {tok.eos_token_id, *tok("</thinking>", add_special_tokens=False).input_ids[:1],
               *tok("<answer>", add_special_tokens=False).input_ids[:1]}
    for answer in ("A", None):
        constraint = AgreementConstraint(tok, len(prompt), [answer],
                                         evidence=[[AspectVerdict("Global", "Noise", "A", 0.7)]])
        text = _run(constraint, tok, "") + " is clean, while Image B (Right) is noisy"
        allowed = set(constraint(0, torch.tensor(prompt + tok(text, add_special_tokens=False).input_ids)).tolist())
        assert not allowed & closing and tok(" noisy", add_special_tokens=False).input_ids[0] in allowed
        text += ".\n" + _run(constraint, tok, text + ".\n") + " thanks to less noise"  # the Overall line is written
        allowed = set(constraint(0, torch.tensor(prompt + tok(text, add_special_tokens=False).input_ids)).tolist())
        assert "Global Overall:" in text and closing <= allowed or answer is None and len(allowed) == len(tok), text
    # rows without evidence keep the whole vocabulary throughout
    plain = AgreementConstraint(tok, len(prompt), ["A"], evidence=[[]])
    assert len(plain(0, torch.tensor(prompt + tok("Face Texture: Image A", add_special_tokens=False).input_ids))) == len(tok)
