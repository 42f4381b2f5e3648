"""The Thinking Model: tokenizer, loading, loss masking, LoRA, training, resumable generation, export."""

import json
from dataclasses import asdict
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idiff_lib.core.vocabulary import MAX_LINES, MIN_LINES
from idiff_lib.data import pairs
from idiff_lib.thinking.prompting import prompts
from idiff_lib.core import storage
from idiff_lib.thinking.prompting import template_baseline
from idiff_lib.thinking.model.checkpoints import load_model, resolve_checkpoint
from idiff_lib.thinking.train.encoding import (IGNORE_INDEX, SWAP_SUFFIX, encode, examples_for, load_images, swap_sides_text,
                                         swapped_pair, target_text)
from idiff_lib.thinking.decode.evaluation import format_ok, score_completions
from idiff_lib.thinking.decode.generation import finish_completion, ladder_stage, model_writer, write_rationales
from idiff_lib.thinking.model.lora import LoraSettings, apply_lora, lora_target_modules
from idiff_lib.thinking.train.run import S0_CONTROL_DIR, RunSettings, load_thinking_run, s0_control_system, train_run, train_s0_control
from idiff_lib.thinking.prompting.side_inputs import s4_answers
from idiff_lib.thinking.model.tiny import TinySettings, build_tiny_model, rationale_corpus, train_tokenizer
from idiff_lib.thinking.train.training import TrainSettings, train
from idiff_lib.data import views
from idiff_lib.core.errors import DataError, OfflineError, ParameterError

TINY = TinySettings(vocab_size=600, hidden_size=64, intermediate_size=128, layers=1, heads=2, kv_heads=1,
                    vision_depth=1, vision_embed=32, vision_heads=2, max_pixels=28 * 28 * 8)


def make_pairs(folder: Path, n: int = 8) -> Path:
    """Small labelled pairs from scikit-image photos: one side noisy, the reference names it."""
    from skimage import data, transform

    rng = np.random.default_rng(0)
    sources = [data.astronaut(), data.chelsea(), data.coffee()]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        src = (transform.resize(sources[i % 3], (56, 56), anti_aliasing=True) * 255).astype(np.uint8)
        noisy = np.clip(src + rng.normal(0, 25, src.shape), 0, 255).astype(np.uint8)
        a_noisy = i % 2 == 0
        a, b = (noisy, src) if a_noisy else (src, noisy)
        pid = f"{'p' if i % 4 else 's'}_{i:03d}"
        Image.fromarray(views.merge_side_by_side(a, b)).save(folder / "images" / f"{pid}_merged_c0.jpg")
        Image.fromarray(views.merge_side_by_side(a[:28, :28], b[:28, :28])).save(folder / "images" / f"{pid}_merged_c1.jpg")
        win, lose = ("B", "A") if a_noisy else ("A", "B")
        thinking = (f"Face Noise: Image {lose} shows visible noise, while Image {win} appears cleaner.\n"
                    "Global Sharpness: Both images are similarly sharp.")
        rows.append(pairs.make_pair([f"images/{pid}_merged_c0.jpg", f"images/{pid}_merged_c1.jpg"],
                                    pairs.format_completion(thinking, win), base_dir=folder))
    pairs.write_pairs(rows, folder / "train_sft.jsonl")
    return folder / "train_sft.jsonl"


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, data_file):
    labelled = pairs.read_pairs(data_file)
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", rationale_corpus(labelled), TINY)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(str(tiny_dir), device="cpu")


def test_tokenizer_round_trip(data_file):
    tok = train_tokenizer(rationale_corpus(pairs.read_pairs(data_file)), vocab_size=400)
    for text in ("<thinking>\nFace Texture: Image A (Left) is sharper.\n</thinking>\n<answer>A</answer>",
                 "Unseen wörds, digits 12345 and ümlauts — still exact."):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert len(tok(" </thinking>", add_special_tokens=False)["input_ids"]) == 2  # the tag is one token
    assert tok.convert_tokens_to_ids("<|image_pad|>") != tok.unk_token_id


def test_tiny_model_loads_through_the_auto_classes(tiny, tiny_dir):
    model, processor = tiny
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2VLProcessor"
    assert (tiny_dir / "tokenizer.json").exists() and (tiny_dir / "config.json").exists()


def _example(processor, data_file, stage):
    pair = pairs.read_pairs(data_file)[0]
    prompt = prompts.build_prompt(stage, pair.category, answer=pair.answer)
    item = encode(processor, prompt, load_images(pair), target_text(pair.thinking, pair.answer))
    return pair, item


def test_loss_masking_s4_labels_only_the_rationale(tiny, data_file):
    _, processor = tiny
    tok = processor.tokenizer
    pair, item = _example(processor, data_file, "S4")
    labelled = item["labels"][0][item["labels"][0] != IGNORE_INDEX]
    text = tok.decode(labelled)
    assert text.startswith("<thinking>") and text.endswith("</thinking>")
    assert "<answer>" not in text and pair.thinking.splitlines()[0] in text
    ids = item["input_ids"][0]
    assert (item["labels"][0][ids == processor.image_token_id] == IGNORE_INDEX).all()
    assert tok.decode(ids[item["labels"][0] == IGNORE_INDEX]).count(f"<answer>{pair.answer}</answer>") == 2
    _, item_s1 = _example(processor, data_file, "S1")  # not answer-aware: the answer is learnt too
    text_s1 = tok.decode(item_s1["labels"][0][item_s1["labels"][0] != IGNORE_INDEX])
    assert text_s1.endswith(f"<answer>{pair.answer}</answer>{tok.eos_token}")


def test_lora_targets_language_linear_layers_and_optionally_vision(tiny):
    model, _ = tiny
    text_only = lora_target_modules(model)
    with_vision = lora_target_modules(model, train_vision=True)
    assert text_only and all("visual" not in n and not n.endswith("lm_head") for n in text_only)
    assert any(n.endswith("q_proj") for n in text_only) and any(n.endswith("down_proj") for n in text_only)
    assert any("visual.merger" in n for n in with_vision) and set(text_only) < set(with_vision)


def test_lora_save_reload_outputs_identical(tiny_dir, data_file, tmp_path):
    model, processor = load_model(str(tiny_dir), device="cpu")
    _, item = _example(processor, data_file, "S4")
    inputs = {k: v for k, v in item.items() if k != "labels"}
    with torch.no_grad():
        base_logits = model(**inputs).logits
    lora = apply_lora(model, LoraSettings(r=4), log=lambda *_: None)
    torch.manual_seed(1)
    for name, p in lora.named_parameters():
        if "lora_B" in name:  # LoRA starts as a no-op (B = 0); make the adapter matter
            p.data.normal_(0, 0.05)
    lora.eval()
    with torch.no_grad():
        before = lora(**inputs).logits
    lora.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tiny_dir)
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    reloaded, _ = load_model(str(tmp_path / "adapter"), device="cpu")
    reloaded.eval()
    with torch.no_grad():
        after = reloaded(**inputs).logits
    assert not torch.allclose(before, base_logits, atol=1e-4)
    assert torch.allclose(before, after, atol=1e-6)
    merged, _ = load_model(str(tmp_path / "adapter"), device="cpu", merge_adapter=True)
    assert not any("lora_" in name for name, _ in merged.named_parameters())  # folded in, no adapter left
    with torch.no_grad():
        assert torch.allclose(before, merged.eval()(**inputs).logits, atol=1e-5)
    with pytest.raises(ParameterError, match="merge_adapter"):
        load_model(str(tmp_path / "adapter"), device="cpu", merge_adapter=True, trainable_adapter=True)


def test_offline_missing_checkpoint_fails_fast_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"hf download Qwen/Qwen3-VL-8B-Instruct"):
        resolve_checkpoint("qwen3-vl-8b")
    with pytest.raises(OfflineError, match="Did you mean"):
        resolve_checkpoint("qwen3-vl-8")


def test_train_then_generate_well_formed_and_resumable(tiny_dir, data_file, tmp_path):
    labelled = pairs.read_pairs(data_file)
    settings = RunSettings(model=str(tiny_dir), stage="S4", max_new_tokens=24,
                           train=TrainSettings(epochs=2, batch_size=4, save_every=2))
    result = train_run(tmp_path / "run", labelled, settings, log=lambda *_: None)
    assert result["steps"] == 4 and result["loss_history"][-1][1] < result["loss_history"][0][1]
    assert (tmp_path / "run" / "checkpoint").exists()
    again = train_run(tmp_path / "run", labelled, settings)  # finished: resumes to the same result
    assert again["steps"] == 4
    model, processor, st, voc = load_thinking_run(tmp_path / "run")
    answers = {p.id: {"answer": "B"} for p in labelled}
    built = prompts.build_prompts(labelled, "S4", answers=answers, vocabulary=voc)
    out = tmp_path / "rationales.jsonl"
    calls = []

    def counting(part, ps):
        calls.append([p.id for p in part])
        return model_writer(model, processor, max_new_tokens=24)(part, ps)

    assert write_rationales(labelled[:3], built, out, counting, chunk=2) == {"written": 3, "skipped": 0}
    with open(out, "a") as fh:
        fh.write('{"id": "cut-by-a-cra')  # a line cut by an interruption
    assert write_rationales(labelled, built, out, counting, chunk=4) == {"written": 5, "skipped": 3}
    rows = storage.read_jsonl_rows(out)
    assert [r["id"] for r in rows] == [p.id for p in labelled]
    assert sum(len(c) for c in calls) == len(labelled)
    for row in rows:
        assert format_ok(row["completion"]) and pairs.parse_completion(row["completion"]).answer == "B"


def test_finish_completion_repairs_and_reports():
    done, info = finish_completion("<thinking>\nFace Texture: A wins.\n</thinking> trailing", answer="B")
    assert done == "<thinking>\nFace Texture: A wins.\n</thinking>\n<answer>B</answer>" and info["raw_format_ok"]
    done, info = finish_completion("Face Texture: no tags", fallback_answer="A")
    assert format_ok(done) and not info["raw_format_ok"] and info["answer_source"] == "fallback"


def test_template_writer_stage_ladder():
    cv = "Global Noise: Image A is noisier than Image B.\nGlobal Sharpness: Image B is sharper than Image A."
    s0, i0 = template_baseline.write_template("S0", "person", prior_answer="A")
    s2, i2 = template_baseline.write_template("S2", "person", cv_cues=cv, mined_phrasing=False)
    mined, _ = template_baseline.write_template("S2", "person", cv_cues=cv, seed=1)  # templates.py phrasing
    assert format_ok(mined) and pairs.parse_completion(mined).answer == "B"
    s4, i4 = template_baseline.write_template("S4", "person", cv_cues=cv, iqa_cues="", answer="A")
    assert pairs.parse_completion(s0).answer == "A" and i0["answer_source"] == "prior"
    assert pairs.parse_completion(s2).answer == "B" and i2["answer_source"] == "cues"
    assert "Global Noise: Image B (Right) appears cleaner" in s2
    assert pairs.parse_completion(s4).answer == "A" and i4["answer_source"] == "answer_model"
    lines = pairs.parse_completion(s2).lines
    assert MIN_LINES + 1 <= len(lines) <= MAX_LINES + 1
    assert all(format_ok(s) for s in (s0, s2, s4))


def test_score_completions_rewards_the_reference():
    text = pairs.format_completion("Face Noise: Image A (Left) is noisier, Image B (Right) is cleaner.", "B")
    ref = [pairs.make_pair(["p_001_merged_c0.jpg", "p_001_merged_c1.jpg"], text)]
    perfect = score_completions({"p_001": text}, ref)
    other = score_completions({"p_001": pairs.format_completion("Global Sharpness: comparable.", "A")}, ref)
    assert perfect["bleu4"] == pytest.approx(1.0), "BLEU-4 on the one 0-1 scale"
    assert perfect["rouge_l"] > 0.99 and perfect["format_pass"] == 1.0 and perfect["accuracy"] == 1.0
    assert other["rouge_l"] < 0.5 and other["accuracy"] == 0.0
    with pytest.raises(ParameterError):
        score_completions({}, ref)


def test_export_swift_rows(data_file, tmp_path):
    from idiff_lib import cli

    out = tmp_path / "swift.jsonl"
    assert cli.main(["think", "export-swift", "--data", str(data_file), "--out", str(out), "--shape", "grpo",
                     "--stage", "S1"]) == 0
    rows = storage.read_jsonl_rows(out)
    assert len(rows) == 8 and "solution" in rows[0] and Path(rows[0]["images"][0]).is_absolute()
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user"]
    assert rows[0]["messages"][1]["content"].startswith("<image><image>\n")


def test_cli_generate_with_template_writer_needs_answers_for_s4(data_file, tmp_path):
    from idiff_lib import cli

    out = tmp_path / "r.jsonl"
    assert cli.main(["think", "generate", "--writer", "template", "--data", str(data_file), "--out", str(out),
                     "--stage", "S1"]) == 0
    assert all(format_ok(r["completion"]) for r in storage.read_jsonl_rows(out))
    assert cli.main(["think", "generate", "--writer", "template", "--data", str(data_file),
                     "--out", str(tmp_path / "r4.jsonl"), "--stage", "S4"]) == 2


@pytest.mark.slow
def test_accelerate_two_process_cpu_training(tiny_dir, data_file, tmp_path):
    # --multi_gpu selects the torchrun launcher; without CUDA the trainer's Accelerator runs DDP on gloo.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "idiff_lib.cli",
           "think", "train", "--data", str(data_file), "--out", str(tmp_path / "ddp"), "--model", str(tiny_dir),
           "--stage", "S4", "--max-steps", "3", "--batch-size", "2", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((tmp_path / "ddp" / "train_state.json").read_text())
    assert state["step"] == 3
    final = json.loads((tmp_path / "ddp" / "final" / "thinking.json").read_text())
    assert final["train"]["processes"] == 2


def _gpu_check_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_thinking_check.py"
    spec = importlib.util.spec_from_file_location("gpu_thinking_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_qwen2_5_vl_7b_config_has_the_public_dimensions():
    config = _gpu_check_module().load_config(arch="qwen2.5-vl-7b")
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.intermediate_size, text.vocab_size) == (3584, 28, 28, 4, 18944, 152064)
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size) == (32, 1280, 3584)


def test_qwen3_vl_8b_config_is_the_default_and_has_the_public_dimensions():
    from transformers import Qwen3VLForConditionalGeneration

    module = _gpu_check_module()
    config = module.load_config()
    assert type(config).__name__ == "Qwen3VLConfig" and module.parse_args([]).arch == "qwen3-vl-8b"
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.head_dim, text.intermediate_size, text.vocab_size) == (4096, 36, 32, 8, 128, 12288, 151936)
    assert text.rope_parameters["mrope_section"] == [24, 20, 20] and text.rope_parameters["mrope_interleaved"]
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size, vision.patch_size) == (27, 1152, 4096, 16)
    assert list(vision.deepstack_visual_indexes) == [8, 16, 24] and not config.tie_word_embeddings
    with torch.device("meta"):  # no memory: the shapes only
        model = Qwen3VLForConditionalGeneration(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == 8.77  # the model card's 8.77 B
    with pytest.raises(SystemExit, match="unknown --arch"):
        module.load_config(arch="qwen9")


# Image sizes that give 2 x 8 visual tokens: 28 px per token for Qwen2.5-VL (14 px patches), 32 px for Qwen3-VL.
@pytest.mark.parametrize("arch, width, height", [("qwen2.5-vl-7b", 112, 56), ("qwen3-vl-8b", 128, 64)])
def test_gpu_check_setup_runs_on_cpu_with_a_tiny_config(tmp_path, arch, width, height):
    result = _gpu_check_module().main(["--arch", arch, "--tiny", "--device", "cpu", "--steps", "1", "--warmup", "0",
                                       "--image-width", str(width), "--image-height", str(height),
                                       "--max-pixels", str(width * height), "--prompt-tokens", "8",
                                       "--target-tokens", "4", "--gen-tokens", "3", "--out", str(tmp_path / "r.json")])
    assert result["arch"] == arch and result["image_tokens"] == 16 and result["generate_new_tokens"] == 3
    assert result["generate_lora_unmerged_seconds_per_pair"] > 0
    assert "trainable params" in result["lora"] and json.loads((tmp_path / "r.json").read_text())["train_step_seconds"] > 0


def test_interrupted_training_resumes_from_its_checkpoint(tiny_dir, data_file, tmp_path):
    labelled = pairs.read_pairs(data_file)
    model, processor = load_model(str(tiny_dir), device="cpu")
    built = prompts.build_prompts(labelled, "S1")
    examples = examples_for(labelled, built, processor, with_targets=True, progress=False)
    pad = processor.tokenizer.pad_token_id
    first = train(model, examples, pad, tmp_path, TrainSettings(epochs=2, batch_size=2, max_steps=3, save_every=1))
    assert first["steps"] == 3 and first["resumed_from"] is None
    model, _ = load_model(str(tiny_dir), device="cpu")  # a fresh process: weights come from the checkpoint
    second = train(model, examples, pad, tmp_path, TrainSettings(epochs=2, batch_size=2, max_steps=6, save_every=1),
                   log=lambda *_: None)
    assert second["resumed_from"] == 3 and second["steps"] == 6
    assert [s for s, _ in second["loss_history"]] == [1, 2, 3, 4, 5, 6]


def test_swap_augmentation_mirrors_images_text_and_answer(data_file):
    pair = pairs.read_pairs(data_file)[0]
    swapped = swapped_pair(pair)
    assert swapped.id == pair.id + SWAP_SUFFIX and swapped.answer != pair.answer
    assert swap_sides_text(swapped.thinking) == pair.thinking
    assert swap_sides_text("Image A (Left) beats Image B/Right") == "Image B (Right) beats Image A/Left"
    original, mirrored = load_images(pair), load_images(swapped)
    a, b = np.asarray(original[0]), np.asarray(mirrored[0])
    half = a.shape[1] // 2
    assert np.array_equal(a[:, :half], b[:, half:]) and np.array_equal(a[:, half:], b[:, :half])


def test_ladder_stage_writes_scores_and_resumes(tmp_path):
    text = pairs.format_completion("Face Noise: Image A (Left) is noisier, Image B (Right) is cleaner.", "B")
    refs = [pairs.make_pair([f"p_{i:03d}_merged_c0.jpg", f"p_{i:03d}_merged_c1.jpg"], text) for i in range(3)]
    built = {p.id: prompts.build_prompt("S0", "person") for p in refs}
    calls = []

    def writer(part, _prompts):
        calls.append(len(part))
        return [(text, {"raw_format_ok": True})] * len(part)

    out = tmp_path / "fixed_S0.jsonl"
    row = ladder_stage("fixed", "S0", refs, built, out, writer, progress=False)
    assert row["system"] == "fixed" and row["stage"] == "S0" and row["raw_format_pass"] == 1.0
    assert row["accuracy"] == 1.0 and row["rouge_l"] > 0.99 and calls == [3]
    again = ladder_stage("fixed", "S0", refs, built, out, writer, progress=False)
    assert again == row and calls == [3], "a finished stage is read back, not written again"


def test_s4_verdicts_carry_no_confidence_as_in_training(tmp_path):
    refs = [pairs.make_pair([f"p_{i:03d}_merged_c0.jpg", f"p_{i:03d}_merged_c1.jpg"],
                            pairs.format_completion("Global Overall: fine.", "A")) for i in range(2)]
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"id": "p_000", "answer": "B", "p_left": 0.2}\n')
    answers, note = s4_answers(refs, preds, "prior", "A")
    assert answers["p_000"] == {"answer": "B", "p_answer": None}
    assert answers["p_001"]["answer"] == "A" and "1 pairs use the prior fallback" in note
    prompt = prompts.build_prompts(refs, "S4", answers=answers)["p_000"].user
    assert "(confidence" not in prompt and "Image B (Right) is better" in prompt


def test_s0_control_trains_s0_for_the_given_epochs_from_a_fresh_start(tiny_dir, data_file, tmp_path):
    labelled = pairs.read_pairs(data_file)
    settings = RunSettings(model=str(tiny_dir), stage="S4", max_new_tokens=8,
                           train=TrainSettings(epochs=1, batch_size=4, save_every=100))
    one = train_run(tmp_path / "one", labelled, RunSettings.from_dict({**asdict(settings), "stage": "S0"}), log=lambda *_: None)
    result = train_s0_control(tmp_path, labelled, settings, epochs=3, log=lambda *_: None)
    assert result["steps"] == 3 * one["steps"]
    _, _, recorded, _ = load_thinking_run(tmp_path / S0_CONTROL_DIR)
    assert recorded.stage == "S0" and recorded.train.epochs == 3
    assert s0_control_system("tiny", 5) == "tiny-S0-5ep"


def test_prompt_longer_than_the_context_is_an_error_naming_the_pair_and_the_token_count(tiny, data_file):
    model, processor = tiny
    pair = pairs.read_pairs(data_file)[0]
    cue = " ".join(f"cue{i} Image A is sharper than Image B." for i in range(40))
    prompt = prompts.build_prompt("S2", pair.category, cv_cues=cue)
    full = encode(processor, prompt, load_images(pair))
    n = full["input_ids"].shape[1]
    assert encode(processor, prompt, load_images(pair), max_length=n, name=pair.id)["input_ids"].shape[1] == n  # fits
    with pytest.raises(DataError, match=f"{pair.id}.*the prompt takes {n} tokens, more than the {n - 50}"):
        encode(processor, prompt, load_images(pair), max_length=n - 50, name=pair.id)
    # training: the target's tokens count against the context too
    with pytest.raises(DataError, match=f"the prompt takes {n} tokens"):
        encode(processor, prompt, load_images(pair), (pair.thinking, pair.answer), max_length=n + 1, name=pair.id)
    # generation: the writer refuses a prompt that leaves fewer than max_new_tokens of the context, naming the pair
    context = model.config.text_config.max_position_embeddings
    model.config.text_config.max_position_embeddings = n + 4
    try:
        with pytest.raises(DataError, match=f"{pair.id}.*{n} tokens, more than the {n - 4}"):
            model_writer(model, processor, max_new_tokens=8)([pair], {pair.id: prompt})
        assert format_ok(model_writer(model, processor, max_new_tokens=4)([pair], {pair.id: prompt})[0][0])
    finally:
        model.config.text_config.max_position_embeddings = context


def test_model_folder_without_chat_template_is_refused_naming_the_folder(tiny_dir, tmp_path):
    import shutil

    from answer_fixtures import drop_chat_template

    folder = tmp_path / "no_template"
    shutil.copytree(tiny_dir, folder)
    drop_chat_template(folder)
    with pytest.raises(DataError, match="no chat template") as err:
        load_model(str(folder), device="cpu")
    assert str(folder) in str(err.value) and "chat_template.jinja" in str(err.value)


def test_generate_ids_drop_the_batch_padding_and_decode_to_generate(tiny, data_file):
    from idiff_lib.thinking.decode.generation import generate, generate_ids

    model, processor = tiny
    labelled = pairs.read_pairs(data_file)[:3]
    ps = prompts.build_prompts(labelled, "S1")
    examples = examples_for(labelled, ps, processor, with_targets=False, max_pixels=TINY.max_pixels, progress=False)
    pad = processor.tokenizer.pad_token_id
    alone = [generate_ids(model, processor, [ex], max_new_tokens=5, progress=False)[0] for ex in examples]
    together = generate_ids(model, processor, examples, batch_size=3, max_new_tokens=5, progress=False)
    assert all(len(a) <= 5 and (len(a) == 0 or a[-1] != pad) for a in together)
    assert [len(a) for a in together] == [len(a) for a in alone]
    texts = generate(model, processor, examples, batch_size=3, max_new_tokens=5, progress=False)
    assert texts == processor.tokenizer.batch_decode([a.tolist() for a in together], skip_special_tokens=True)
