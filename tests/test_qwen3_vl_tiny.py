"""The paper's architecture in the unit tests: a tiny random Qwen3-VL through encode, LoRA, a train step,
generation, save and reload, with the workbench's own thinking functions (as the tiny Qwen2-VL runs them)."""

from __future__ import annotations

import pytest
import torch

from idiff_lib.data import pairs
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.train.encoding import IGNORE_INDEX, examples_for
from idiff_lib.thinking.decode.generation import model_writer
from idiff_lib.thinking.model.lora import LoraSettings, apply_lora, lora_target_modules
from idiff_lib.thinking.decode.evaluation import format_ok
from idiff_lib.thinking.model.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS, rationale_corpus, train_tokenizer
from idiff_lib.thinking.train.training import TrainSettings, train
from test_thinking_model import make_pairs

MAX_PIXELS = 32 * 32 * 8  # 32 px per visual token after the 2 x 2 merge of 16 px patches: 8 tokens per image


def tiny_qwen3_vl(tokenizer):
    """A random Qwen3-VL of the real class, 2 layers of width 64, a 2-block vision tower with DeepStack."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
                # interleaved M-RoPE over (t, h, w) as in Qwen3-VL; the sections sum to head_dim / 2
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                                 "mrope_interleaved": True},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                  deepstack_visual_indexes=[0])
    config = Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def qwen3_vl_processor(tokenizer):
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    image = Qwen2VLImageProcessor(patch_size=16, merge_size=2, min_pixels=32 * 32 * 4, max_pixels=MAX_PIXELS,
                                  image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return Qwen3VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=Qwen3VLVideoProcessor(),
                            chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return pairs.read_pairs(make_pairs(tmp_path_factory.mktemp("pairs"), n=4))


def test_tiny_qwen3_vl_encodes_trains_with_lora_generates_and_reloads(labelled, tmp_path):
    from peft import PeftModel
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    tokenizer = train_tokenizer(rationale_corpus(labelled), vocab_size=600)
    processor = qwen3_vl_processor(tokenizer)
    model = tiny_qwen3_vl(tokenizer)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    built = prompts.build_prompts(labelled, "S4", answers={p.id: {"answer": p.answer} for p in labelled})
    examples = examples_for(labelled, built, processor, with_targets=True, progress=False)
    item = examples[0]
    assert int((item["input_ids"][0] == processor.image_token_id).sum()) == int(item["image_grid_thw"].prod(-1).sum()) // 4
    assert (item["labels"][0][item["input_ids"][0] == processor.image_token_id] == IGNORE_INDEX).all()

    # the training step's trim to the labelled tail (`training.loss_inputs`) keeps Qwen3-VL's loss
    from idiff_lib.thinking.train.encoding import collate
    from idiff_lib.thinking.train.training import loss_inputs

    batch = collate([{k: v for k, v in ex.items() if k != "id"} for ex in examples[:2]], tokenizer.pad_token_id)
    with torch.no_grad():
        trimmed, full = model(**loss_inputs(batch)), model(**batch)
    assert trimmed.logits.shape[1] < full.logits.shape[1] and torch.allclose(trimmed.loss, full.loss, atol=1e-5)

    targets = lora_target_modules(model)
    assert any(n.endswith("q_proj") for n in targets) and all("visual" not in n for n in targets)
    peft_model = apply_lora(model, LoraSettings(r=4, alpha=8, dropout=0.0), log=lambda *_: None)
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_B" in n}
    result = train(peft_model, examples, tokenizer.pad_token_id, tmp_path / "run",
                   TrainSettings(epochs=1, batch_size=4, lr=1e-2, max_steps=1), log=lambda *_: None)
    assert result["steps"] == 1 and torch.isfinite(torch.tensor(result["loss_history"][0][1]))
    assert any(not torch.equal(p, before[n]) for n, p in peft_model.named_parameters() if n in before)

    rows = model_writer(peft_model, processor, batch_size=2, max_new_tokens=4)(labelled[:2], built)
    assert all(format_ok(completion) for completion, _ in rows)  # answer-aware: the verdict is appended

    peft_model.save_pretrained(tmp_path / "adapter")
    processor.save_pretrained(tmp_path / "processor")
    probe = {k: v for k, v in examples_for(labelled[:1], built, processor, with_targets=False,
                                           progress=False)[0].items() if k not in ("id", "labels")}
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(**probe).logits
    base = tiny_qwen3_vl(tokenizer)  # the same seed: the base weights LoRA was trained on
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**probe).logits, expected, atol=1e-5)
    again = AutoProcessor.from_pretrained(tmp_path / "processor")
    assert type(again).__name__ == "Qwen3VLProcessor" and again.image_token_id == processor.image_token_id
    merged = reloaded.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    restored = Qwen3VLForConditionalGeneration.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(restored(**probe).logits, expected, atol=1e-4)
