"""The Thinking Model: an MLLM, LoRA-tuned, that writes the pairwise rationale.

Reference: iDiff, the winning method of the NTIRE 2026 RAIM challenge, Track 1 (Professional Image
Quality Assessment), fine-tunes Qwen3-VL-8B-Instruct with LoRA through progressive prompt stages
S0 -> S4 (`idiff_lib.thinking.prompts`). Models: Qwen2-VL (Wang et al., 2024, arXiv:2409.12191),
Qwen2.5-VL (Bai et al., 2025, arXiv:2502.13923), Qwen3-VL (Qwen team, 2025). LoRA: Hu et al.,
ICLR 2022 (arXiv:2106.09685), through Hugging Face peft.

Any Hugging Face image-text-to-text model loads by name or local folder through
``AutoModelForImageTextToText`` + ``AutoProcessor``. For CPU work the module builds a *tiny*
Qwen2-VL-architecture model (a few layers, random init) with a BPE tokenizer trained on the
rationale corpus by the ``tokenizers`` library; it is saved with ``save_pretrained`` and loaded
back through the same ``from_pretrained`` path as the real model, so every code path (chat
template, image tokens, loss masking, LoRA, generation) is the real one.

Training runs through ``accelerate`` (one process, or ``accelerate launch`` for DDP / DeepSpeed
ZeRO with ``idiff_lib/configs/deepspeed_zero2.json``), with a progress bar, checkpoints and resume.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from idiff_lib.data import pairs as pairs_mod
from idiff_lib.thinking import prompts as prompts_mod
from idiff_lib.scoring import metrics as scoring
from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, OfflineError, ParameterError, suggest

# The paper profile's checkpoints (Hugging Face Hub names), by short alias.
PAPER_MODELS = {
    "qwen3-vl-8b": "Qwen/Qwen3-VL-8B-Instruct",
    "qwen2.5-vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct",
}
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# Qwen's chat-format special tokens, kept in the tiny tokenizer so its chat template is Qwen's.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")
# The answer format's tags: whole tokens in the tiny tokenizer (real tokenizers split them; both work).
TAG_TOKENS = ("<thinking>", "</thinking>", "<answer>", "</answer>")
# Qwen2-VL's chat template, reduced to what the workbench sends: text and image items.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IGNORE_INDEX = -100


def format_ok(text: str) -> bool:
    """The challenge baseline's format check (`scoring.format_reward`)."""
    return scoring.format_reward(text) == 1.0


# --------------------------------------------------------------------------- tiny model
@dataclass
class TinySettings:
    """Sizes of the tiny Qwen2-VL-architecture model built for CPU work.

    Attributes:
        vocab_size: BPE vocabulary trained on the rationale corpus (special and tag tokens included).
        hidden_size / layers / heads / kv_heads / intermediate_size: the language model.
        vision_depth / vision_embed / vision_heads: the ViT; its merger projects to `hidden_size`.
        min_pixels / max_pixels: the image processor's pixel budget per image (28 x 28 per token).
        seed: weight initialisation seed.
    """

    vocab_size: int = 1200
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 384
    vision_depth: int = 2
    vision_embed: int = 64
    vision_heads: int = 4
    min_pixels: int = 28 * 28 * 4
    max_pixels: int = 28 * 28 * 32
    seed: int = 0


def rationale_corpus(labelled: Iterable[pairs_mod.Pair] = (), use_raim: bool = True) -> list[str]:
    """The texts the tiny tokenizer learns from: rationales, prompts and template vocabulary.

    The public RAIM rationales are read in place (`paths.raim_dir`) when present; the prompt texts
    of every stage are added so prompts tokenise compactly too.
    """
    from idiff_lib.core import paths

    texts = [p.completion for p in labelled if p.completion]
    folder = paths.raim_dir() if use_raim else None
    if folder is not None:
        texts += [p.completion for p in pairs_mod.read_pairs(Path(folder) / "train_sft_1536.jsonl", skip_bad=True)
                  if p.completion]
    vocab = prompts_mod.load_vocabulary(labelled, use_raim=use_raim)
    for category in (*prompts_mod.CATEGORIES, None):
        for stage in prompts_mod.STAGES:
            p = prompts_mod.build_prompt(stage, category, answer="A", p_answer=0.5, vocabulary=vocab)
            texts += [p.system, p.user]
    return texts


def train_tokenizer(corpus: Sequence[str], vocab_size: int = 1200):
    """A byte-level BPE tokenizer trained with the ``tokenizers`` library, wrapped for transformers.

    Byte-level, so any text (including words never seen) encodes and decodes exactly.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not corpus:
        raise ParameterError("train_tokenizer: the corpus is empty. fix: pass labelled pairs or make the "
                             "RAIM rationales available (paths.raim_dir())")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def tiny_config(tokenizer, settings: TinySettings):
    """A Qwen2-VL config of the tiny sizes, with the token ids of `tokenizer`."""
    from transformers import Qwen2VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = settings.hidden_size // settings.heads
    half = head_dim // 2  # M-RoPE splits the rotary half-dimension into temporal, height, width
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    text = dict(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size, intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.layers, num_attention_heads=settings.heads, num_key_value_heads=settings.kv_heads,
        max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                       "mrope_section": section},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(depth=settings.vision_depth, embed_dim=settings.vision_embed, hidden_size=settings.hidden_size,
                  num_heads=settings.vision_heads, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"])


def build_tiny_model(out_dir: str | Path, corpus: Sequence[str], settings: TinySettings | None = None) -> Path:
    """Train the tokenizer, build a random-init tiny Qwen2-VL and save model + processor to `out_dir`.

    Load it back with `load_model(out_dir)`, the same path as a Hub checkpoint.
    """
    from transformers import (Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor,
                              Qwen2VLVideoProcessor)

    settings = settings or TinySettings()
    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(corpus, settings.vocab_size)
    image_processor = Qwen2VLImageProcessor(min_pixels=settings.min_pixels, max_pixels=settings.max_pixels)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    torch.manual_seed(settings.seed)
    model = Qwen2VLForConditionalGeneration(tiny_config(tokenizer, settings))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    with _staging_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        storage.write_json(Path(tmp) / "tiny_settings.json", asdict(settings))
    return out_dir


class _staging_dir:
    """Write a folder beside `target` and move it into place only when the block succeeds."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.tmp = self.target.with_name(f".{self.target.name}.tmp{os.getpid()}")

    def __enter__(self) -> Path:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil

        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.target.exists():
            shutil.rmtree(self.target)
        os.replace(self.tmp, self.target)


# --------------------------------------------------------------------------- loading
def _hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_checkpoint(name_or_path: str, allow_download: bool | None = None) -> str:
    """A local folder, a cached Hub snapshot, or the Hub name when it can be downloaded.

    Args:
        name_or_path: a local folder, a Hub name (``Qwen/Qwen3-VL-8B-Instruct``) or an alias of
            `PAPER_MODELS` (``qwen3-vl-8b``).
        allow_download: None = download when the Hub answers; False = cache only.

    Raises:
        OfflineError: the checkpoint is neither local nor cached and cannot be downloaded; the
            message names what to download and where to point the workbench.
    """
    name = PAPER_MODELS.get(name_or_path, name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise DataError(path, "the model folder has no config.json",
                            "point to a folder written by save_pretrained (or a downloaded Hub snapshot)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise OfflineError(f"model {name_or_path!r}: no such folder and not a Hub name 'org/model'. "
                           f"Known aliases: {', '.join(PAPER_MODELS)}.{suggest(name_or_path, PAPER_MODELS)}")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # not in the cache: any hub error type means "not here"
        pass
    if allow_download is None:
        allow_download = _hub_reachable()
    if not allow_download:
        raise OfflineError(
            f"model {name!r} is not in the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) "
            f"and the Hub cannot be reached. fix: on a machine with internet run `hf download {name}` "
            f"(or `huggingface-cli download {name}`) and copy the cache, or pass a local folder "
            "(model_name=/path/to/checkpoint); for CPU work use the tiny model (`idiff think build-tiny`)."
        )
    return name


def load_model(
    name_or_path: str,
    *,
    device: str | None = None,
    dtype: str = "auto",
    gradient_checkpointing: bool | None = None,
    allow_download: bool | None = None,
    trainable_adapter: bool = False,
    merge_adapter: bool = False,
):
    """Load any image-text-to-text model and its processor (``AutoModelForImageTextToText`` / ``AutoProcessor``).

    Args:
        name_or_path: see `resolve_checkpoint`; a folder holding a LoRA adapter
            (``adapter_config.json``) loads its base model and then the adapter.
        device: "cuda", "cpu" or None (CUDA when available).
        dtype: "auto" = bfloat16 on GPU, float32 on CPU; or "bfloat16" / "float32".
        gradient_checkpointing: None = on for GPU, off on CPU.
        trainable_adapter: load a LoRA adapter ready to train further (progressive stages).
        merge_adapter: fold a LoRA adapter into the base weights (peft ``merge_and_unload``), for
            inference only: eager decoding is bound by kernel launches, and the unmerged adapter
            adds two small matmuls to every linear layer (8B model on an H100: 10 new tokens/s
            unmerged against 44 merged; ``benchmarks/results/gpu_thinking_check.json``).

    Returns:
        (model, processor)
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                   "bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[dtype]
    adapter = Path(name_or_path) / "adapter_config.json"
    if adapter.exists():
        from peft import PeftModel

        base_name = json.loads(adapter.read_text())["base_model_name_or_path"]
        model, processor = load_model(base_name, device=device, dtype=dtype,
                                      gradient_checkpointing=gradient_checkpointing, allow_download=allow_download)
        if merge_adapter and trainable_adapter:
            raise ParameterError("load_model: merge_adapter and trainable_adapter exclude each other. fix: merge only "
                                 "for inference (merge_adapter=True, trainable_adapter=False)")
        model = PeftModel.from_pretrained(model, name_or_path, is_trainable=trainable_adapter)
        return (model.merge_and_unload() if merge_adapter else model), processor
    source = resolve_checkpoint(name_or_path, allow_download)
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype).to(device)
    processor = AutoProcessor.from_pretrained(source)
    processor.tokenizer.padding_side = "left"
    if gradient_checkpointing is None:
        gradient_checkpointing = device.startswith("cuda")
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model, processor


# --------------------------------------------------------------------------- LoRA
@dataclass
class LoraSettings:
    """LoRA on the language model's linear layers (and optionally the vision tower and aligner).

    Attributes:
        r / alpha / dropout: the LoRA rank, scaling numerator and dropout.
        train_vision: also adapt the vision tower's and the aligner's (merger's) linear layers.
        target_modules: explicit module names; None = every linear layer chosen by `lora_target_modules`.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    train_vision: bool = False
    target_modules: tuple[str, ...] | None = None

    def to_peft(self, model: torch.nn.Module):
        from peft import LoraConfig

        targets = list(self.target_modules or lora_target_modules(model, self.train_vision))
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          bias="none", task_type="CAUSAL_LM")


_VISION_KEYS = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "merger")


def lora_target_modules(model: torch.nn.Module, train_vision: bool = False) -> list[str]:
    """The full names of the linear layers to adapt, chosen from ``model.named_modules()``.

    The output head (``lm_head``) is never adapted; vision tower and aligner layers only with
    `train_vision`.
    """
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.split(".")[-1] == "lm_head":
            continue
        if any(k in name.split(".") for k in _VISION_KEYS) and not train_vision:
            continue
        names.append(name)
    if not names:
        raise ParameterError(f"{type(model).__name__} has no linear layers to adapt with LoRA")
    return names


def apply_lora(model: torch.nn.Module, settings: LoraSettings | None = None, log=print):
    """Wrap `model` with LoRA adapters and log ``print_trainable_parameters()``."""
    from peft import get_peft_model

    settings = settings or LoraSettings()
    if getattr(model, "is_gradient_checkpointing", False):
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need an input grad
    peft_model = get_peft_model(model, settings.to_peft(model))
    trainable, total = peft_model.get_nb_trainable_parameters()
    log(f"LoRA r={settings.r}: trainable params: {trainable:,} || all params: {total:,} || "
        f"trainable%: {100 * trainable / total:.4f}")
    return peft_model


# --------------------------------------------------------------------------- encoding
SWAP_SUFFIX = "~swap"
_SIDE_RE = re.compile(r"\bImage ([AB])(\s*\((?:Left|Right)\)|/(?:Left|Right))?")


def swap_sides_text(text: str) -> str:
    """Exchange the images in a rationale: ``Image A (Left)`` <-> ``Image B (Right)`` (also ``/Left``, bare)."""

    def flip(m: re.Match) -> str:
        side = (m.group(2) or "").replace("Left", "\0").replace("Right", "Left").replace("\0", "Right")
        return f"Image {'B' if m.group(1) == 'A' else 'A'}{side}"

    return _SIDE_RE.sub(flip, text)


def swapped_pair(pair: pairs_mod.Pair) -> pairs_mod.Pair:
    """The same pair with A and B exchanged: images mirrored at load time, rationale and answer swapped.

    Used as training augmentation: with both orders seen, the letters in a rationale can only
    come from the images or the prompt's verdict, not from a side prior.
    """
    import dataclasses

    if pair.answer is None:
        raise pair.error("cannot swap an unlabeled pair for training")
    answer = "B" if pair.answer == "A" else "A"
    thinking = swap_sides_text(pair.thinking)
    return dataclasses.replace(pair, id=pair.id + SWAP_SUFFIX, thinking=thinking, answer=answer,
                               completion=pairs_mod.format_completion(thinking, answer))


def load_images(pair: pairs_mod.Pair, max_pixels: int | None = None) -> list:
    """The pair's two images (c0 global, c1 detail) as PIL RGB, shrunk to at most `max_pixels` each.

    A pair made by `swapped_pair` gets its merged images with the halves exchanged (separate
    images in the other order).
    """
    from PIL import Image

    from idiff_lib.data.views import load_rgb, merge_side_by_side, split_merged

    swap = pair.id.endswith(SWAP_SUFFIX)
    order = range(len(pair.image_refs))
    if swap and pair.layout == "separate":
        order = reversed(order)
    out = []
    for i in order:
        rgb = load_rgb(pair.image_path(i), pair)
        if swap and pair.layout == "merged":
            left, right = split_merged(rgb, pair, pair.image_path(i))
            rgb = merge_side_by_side(right, left)
        im = Image.fromarray(rgb)
        if max_pixels and im.width * im.height > max_pixels:
            scale = math.sqrt(max_pixels / (im.width * im.height))
            im = im.resize((max(28, int(im.width * scale)), max(28, int(im.height * scale))), Image.Resampling.BICUBIC)
        out.append(im)
    return out


def target_text(thinking: str, answer: str) -> tuple[str, str]:
    """The completion split into the rationale part and the answer part (they concatenate to it)."""
    full = pairs_mod.format_completion(thinking, answer)
    cut = full.index("</thinking>") + len("</thinking>")
    return full[:cut], full[cut:]


def encode(processor, prompt: prompts_mod.Prompt, images: list, target: tuple[str, str] | None = None) -> dict:
    """Tokenise one example: chat-template prompt with images, then the target with its labels.

    Labels: the prompt is masked; the rationale part always carries labels; the answer part and
    the end-of-turn token carry labels except in answer-aware stages (``prompt.answer`` set, S4),
    where the answer comes from the Answer Model and the loss covers only the rationale tokens.
    """
    text = processor.apply_chat_template(prompt.chat_messages(), add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text], images=images or None, return_tensors="pt")
    item = {k: v for k, v in enc.items()}
    ids = item["input_ids"][0]
    labels = torch.full_like(ids, IGNORE_INDEX)
    if target is not None:
        tok = processor.tokenizer
        rationale = tok(target[0], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        tail = tok(target[1] + tok.eos_token, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        answer_aware = prompt.answer is not None
        tail_labels = torch.full_like(tail, IGNORE_INDEX) if answer_aware else tail.clone()
        ids = torch.cat([ids, rationale, tail])
        labels = torch.cat([labels, rationale.clone(), tail_labels])
        extra = len(rationale) + len(tail)
        item["attention_mask"] = torch.cat([item["attention_mask"][0], torch.ones(extra, dtype=torch.long)])[None]
        if "mm_token_type_ids" in item:
            item["mm_token_type_ids"] = torch.cat(
                [item["mm_token_type_ids"][0], torch.zeros(extra, dtype=item["mm_token_type_ids"].dtype)])[None]
    item["input_ids"] = ids[None]
    item["labels"] = labels[None]
    return item


_SEQ_KEYS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "token_type_ids")


def collate(items: Sequence[dict], pad_id: int, side: str = "right") -> dict:
    """Pad sequence fields to the longest item (on `side`); concatenate the image tensors."""
    longest = max(it["input_ids"].shape[1] for it in items)
    pad_value = {"input_ids": pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    batch: dict[str, Any] = {}
    for key in items[0]:
        if key in _SEQ_KEYS:
            rows = []
            for it in items:
                seq = it[key][0]
                pad = torch.full((longest - len(seq),), pad_value.get(key, 0), dtype=seq.dtype)
                rows.append(torch.cat([seq, pad] if side == "right" else [pad, seq]))
            batch[key] = torch.stack(rows)
        else:
            batch[key] = torch.cat([it[key] for it in items])
    return batch


def examples_for(
    pairs: Sequence[pairs_mod.Pair],
    prompts: Mapping[str, prompts_mod.Prompt],
    processor,
    *,
    with_targets: bool,
    max_pixels: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Encoded examples (tensors) for `pairs`, each tagged with its pair id under ``"id"``."""
    from tqdm.auto import tqdm

    out = []
    for pair in tqdm(pairs, desc="encode", disable=not progress, leave=False):
        target = None
        if with_targets:
            if pair.answer is None:
                raise pair.error("cannot train on an unlabeled pair", "train on an SFT/GRPO file with rationales")
            target = target_text(pair.thinking, pair.answer)
        item = encode(processor, prompts[pair.id], load_images(pair, max_pixels), target)
        item["id"] = pair.id
        out.append(item)
    return out


# --------------------------------------------------------------------------- training
@dataclass
class TrainSettings:
    """How to train (full weights of the tiny model, or LoRA adapters of a real one).

    Attributes:
        epochs / batch_size / grad_accum / lr / weight_decay / warmup_frac / max_grad_norm: the optimiser.
        max_steps: stop after this many optimiser steps (None = all epochs).
        save_every: checkpoint every this many steps (and at the end of each epoch).
        seed: shuffling seed.
        mixed_precision: "no" or "bf16" (GPU).
    """

    epochs: int = 3
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_frac: float = 0.05
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    save_every: int = 50
    seed: int = 0
    mixed_precision: str = "no"


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train(
    model: torch.nn.Module,
    examples: Sequence[dict],
    pad_id: int,
    out_dir: str | Path,
    settings: TrainSettings | None = None,
    *,
    resume: bool = True,
    log=print,
) -> dict:
    """Train on encoded examples with accelerate; checkpoint to ``out_dir/checkpoint``; resume from it.

    The same function runs in one process or under ``accelerate launch`` (DDP across processes,
    or DeepSpeed ZeRO with ``--config_file`` naming a DeepSpeed plugin); each process sees its own
    shard of the batches.

    Returns:
        {"steps", "epochs", "loss_history": [[step, loss], ...], "seconds", "resumed_from"}.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    settings = settings or TrainSettings()
    out_dir = Path(out_dir)
    # cpu=True without CUDA: under `accelerate launch --multi_gpu` (torchrun) that selects DDP over gloo.
    accelerator = Accelerator(gradient_accumulation_steps=settings.grad_accum,
                              mixed_precision=settings.mixed_precision, cpu=not torch.cuda.is_available())
    set_seed(settings.seed)
    items = [{k: v for k, v in ex.items() if k != "id"} for ex in examples]
    loader = torch.utils.data.DataLoader(items, batch_size=settings.batch_size, shuffle=True,
                                         collate_fn=lambda b: collate(b, pad_id, "right"),
                                         generator=torch.Generator().manual_seed(settings.seed))
    steps_per_epoch = math.ceil(len(loader) / max(1, accelerator.num_processes) / settings.grad_accum)
    total = settings.epochs * steps_per_epoch
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    optimizer = torch.optim.AdamW(_trainable(model), lr=settings.lr, weight_decay=settings.weight_decay)
    # accelerate's scheduler wrapper steps the schedule once per process for each optimiser step,
    # so the schedule is laid out in those units: the same curve for 1 or N processes.
    per_step = max(1, accelerator.num_processes)
    warmup = max(1, int(settings.warmup_frac * total)) * per_step
    sched_total = max(1, total) * per_step
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 0.5 * (1 + math.cos(math.pi * min(1.0, s / sched_total)))))
    model.train()
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    ckpt = out_dir / "checkpoint"
    state_file = out_dir / "train_state.json"
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "loss_history": []}
    resumed_from = None
    if resume and state_file.exists() and ckpt.exists():
        accelerator.load_state(str(ckpt))
        state = json.loads(state_file.read_text())
        resumed_from = state["step"]
        log(f"resuming from step {state['step']} (epoch {state['epoch']})")
    t0 = time.monotonic()
    bar = tqdm(total=total, initial=state["step"], desc="train", disable=not accelerator.is_main_process)

    def save() -> None:
        accelerator.wait_for_everyone()
        accelerator.save_state(str(ckpt))
        if accelerator.is_main_process:
            storage.write_json(state_file, state)

    done = state["step"] >= total
    while not done and state["epoch"] < settings.epochs:
        epoch_loader = loader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(state["epoch"])
        if state["batch_in_epoch"]:
            epoch_loader = accelerator.skip_first_batches(loader, state["batch_in_epoch"])
        for batch in epoch_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and settings.max_grad_norm:
                    accelerator.clip_grad_norm_(_trainable(model), settings.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["batch_in_epoch"] += 1
            if accelerator.sync_gradients:
                state["step"] += 1
                value = accelerator.gather(loss.detach()[None]).mean().item()
                state["loss_history"].append([state["step"], round(value, 5)])
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}")
                if state["step"] % settings.save_every == 0:
                    save()
                if state["step"] >= total:
                    done = True
                    break
        if not done or state["batch_in_epoch"] >= len(loader):
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
        save()
    bar.close()
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    model.eval()
    return {"steps": state["step"], "epochs": state["epoch"], "loss_history": state["loss_history"],
            "seconds": round(time.monotonic() - t0, 2), "resumed_from": resumed_from,
            "processes": accelerator.num_processes, "is_main_process": accelerator.is_main_process}


# --------------------------------------------------------------------------- generation
@torch.no_grad()
def generate(
    model: torch.nn.Module,
    processor,
    examples: Sequence[dict],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    stop_after_rationale: bool = False,
    no_repeat_ngram_size: int = 0,
    progress: bool = True,
) -> list[str]:
    """Greedy decoding for encoded prompts (no targets); returns the new text of each example.

    Args:
        stop_after_rationale: stop at ``</thinking>`` (answer-aware stages append the answer).
        no_repeat_ngram_size: forbid repeating any token n-gram of this size (0 = off); a guard
            against the loops small models fall into under greedy decoding.
    """
    from tqdm.auto import tqdm

    tok = processor.tokenizer
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tok.pad_token_id}
    if no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = no_repeat_ngram_size
    if stop_after_rationale:
        kwargs.update(stop_strings=["</thinking>"], tokenizer=tok)
    for start in tqdm(range(0, len(examples), batch_size), desc="generate", disable=not progress, leave=False):
        chunk = [{k: v for k, v in ex.items() if k not in ("id", "labels")} for ex in examples[start:start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk, tok.pad_token_id, "left").items()}
        ids = model.generate(**batch, **kwargs)
        new = ids[:, batch["input_ids"].shape[1]:]
        out += tok.batch_decode(new, skip_special_tokens=True)
    return out


def finish_completion(raw: str, answer: str | None = None, fallback_answer: str = "A") -> tuple[str, dict]:
    """Turn generated text into a well-formed completion.

    With `answer` (answer-aware stages) the rationale is the generated text up to ``</thinking>``
    and the answer is `answer`. Otherwise the model's own answer is kept when it is A or B, else
    `fallback_answer` is used (and reported).

    Returns:
        (completion, info) with info = {"raw_format_ok", "answer_source"}; ``raw_format_ok`` is the
        challenge format check on what the model wrote (plus the given answer in answer-aware stages).
    """
    if answer is not None:
        rationale = raw.split("</thinking>")[0]
        raw_full = rationale + "</thinking>\n" + f"<answer>{answer}</answer>" if "</thinking>" in raw else raw
        parsed = pairs_mod.parse_completion(rationale + "</thinking>")
        return pairs_mod.format_completion(parsed.thinking, answer), {
            "raw_format_ok": format_ok(raw_full), "answer_source": "answer_model"}
    parsed = pairs_mod.parse_completion(raw)
    source = "model" if parsed.answer else "fallback"
    return pairs_mod.format_completion(parsed.thinking, parsed.answer or fallback_answer), {
        "raw_format_ok": format_ok(raw), "answer_source": source}


def done_ids(path: str | Path) -> set[str]:
    """Ids already in a resumable output; a line cut by a crash is removed from the file first."""
    return {row["id"] for row in storage.read_resumable_jsonl(path)}


def write_rationales(
    pairs: Sequence[pairs_mod.Pair],
    prompts: Mapping[str, prompts_mod.Prompt],
    out_path: str | Path,
    writer,
    *,
    chunk: int = 8,
    progress: bool = True,
) -> dict:
    """Write one ``{"id", "completion", ...}`` row per pair, resumably: ids already written are skipped.

    Rows are appended with fsync a chunk at a time, so an interruption loses at most one chunk.

    Args:
        writer: a callable (pairs, prompts) -> list of (completion, info) for that chunk.
    """
    from tqdm.auto import tqdm

    done = done_ids(out_path)
    todo = [p for p in pairs if p.id not in done]
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc=f"rationales -> {Path(out_path).name}",
               disable=not progress, leave=False)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        for pair, (completion, info) in zip(part, writer(part, prompts)):
            storage.append_jsonl(out_path, {"id": pair.id, "completion": completion, **info})
        bar.update(len(part))
    bar.close()
    return {"written": len(todo), "skipped": len(pairs) - len(todo)}


def ladder_stage(system: str, stage: str, pairs: Sequence[pairs_mod.Pair],
                 prompts: Mapping[str, prompts_mod.Prompt], out_path: str | Path, writer,
                 progress: bool = True) -> dict:
    """One row of notebook 03's stage ladder: write `system`'s rationales for `pairs` (resumably) and score them.

    Returns ``{"system", "stage", **score_completions(...), "raw_format_pass"}``; ``raw_format_pass``
    is the share of outputs whose raw text (before `finish_completion`) passed the format check.
    """
    write_rationales(pairs, prompts, out_path, writer, progress=progress)
    written = storage.read_jsonl_rows(out_path)
    score = score_completions({r["id"]: r["completion"] for r in written}, pairs)
    score["raw_format_pass"] = sum(bool(r.get("raw_format_ok")) for r in written) / max(1, len(written))
    return {"system": system, "stage": stage, **score}


def model_writer(model, processor, *, batch_size: int = 8, max_new_tokens: int = 256, max_pixels: int | None = None,
                 fallback_answer: str = "A", no_repeat_ngram_size: int = 0):
    """A `write_rationales` writer that runs the model (answer-aware when the prompt holds an answer)."""

    def run(part: Sequence[pairs_mod.Pair], prompts: Mapping[str, prompts_mod.Prompt]) -> list[tuple[str, dict]]:
        examples = examples_for(part, prompts, processor, with_targets=False, max_pixels=max_pixels, progress=False)
        aware = any(prompts[p.id].answer is not None for p in part)
        raw = generate(model, processor, examples, batch_size=batch_size, max_new_tokens=max_new_tokens,
                       stop_after_rationale=aware, no_repeat_ngram_size=no_repeat_ngram_size, progress=False)
        return [finish_completion(text, prompts[p.id].answer, fallback_answer) for p, text in zip(part, raw)]

    return run


# --------------------------------------------------------------------------- evaluation
def score_completions(preds: Mapping[str, str], refs: Sequence[pairs_mod.Pair]) -> dict:
    """BLEU-4, ROUGE-L, answer-rationale consistency, format pass and accuracy of `preds` vs labelled `refs`.

    Computed by `idiff_lib.scoring.score`; BLEU-4 is on a 0-1 scale here (the scorer's 0-100 / 100).
    Consistency = share of rationales whose overall verdict equals their answer, among those that
    state one.

    Raises:
        ParameterError: a reference pair has no prediction.
    """
    refs = list(refs)
    missing = [r.id for r in refs if r.id not in preds]
    if missing:
        raise ParameterError(f"score_completions: {len(missing)} reference ids have no prediction, e.g. {missing[:3]}")
    ids = [r.id for r in refs]
    m = scoring.score([{"id": i, "completion": preds[i]} for i in ids], refs,
                      scorers=["format", "accuracy", "bleu4", "rouge_l", "consistency"], bootstrap=0).metrics
    fail = m["format"].get("failure_rate")
    return {"n": len(ids), "bleu4": round(m["bleu4"]["corpus"] / 100.0, 4), "rouge_l": round(m["rouge_l"]["f"], 4),
            "consistency": m["consistency"]["rate"], "format_pass": None if fail is None else round(1 - fail, 4),
            "accuracy": m["accuracy"]["overall"]["value"], "scorer": "idiff_lib.scoring.metrics"}


# --------------------------------------------------------------------------- side inputs
def read_id_table(path: str | Path, required: Sequence[str] = ("id",)) -> dict[str, dict]:
    """A JSONL file of rows keyed by ``id`` (answers, cues), with errors naming the file and line."""
    out: dict[str, dict] = {}
    for row in storage.read_jsonl_rows(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(path, f"row {json.dumps(row)[:80]} lacks {', '.join(missing)}",
                            f"every row needs {', '.join(required)}")
        out[str(row["id"])] = row
    return out


def read_answers(path: str | Path) -> dict[str, dict]:
    """Answer Model predictions (rows ``id, answer[, p_left]``) -> id -> {"answer", "p_answer"}."""
    table = read_id_table(path, ("id", "answer"))
    out = {}
    for pid, row in table.items():
        if row["answer"] not in pairs_mod.ANSWERS:
            raise DataError(path, f"pair {pid}: answer {row['answer']!r} is not A or B", "write 'A' or 'B'")
        p_left = row.get("p_left")
        p = None if p_left is None else (float(p_left) if row["answer"] == "A" else 1 - float(p_left))
        out[pid] = {"answer": row["answer"], "p_answer": p}
    return out


def s4_answers(pairs: Sequence[pairs_mod.Pair], preds_file: str | Path | None, fallback: str = "reference",
               prior: str = "A") -> tuple[dict[str, dict], str]:
    """The verdicts that answer-aware prompts (S4) carry for `pairs`, and a note on where they came from.

    The Answer Model's predictions (`preds_file`, rows ``id, answer, p_left``) come first. Pairs
    they do not cover (no file, or a run that predicted a subset) get the `fallback`: "reference"
    (the pair's own answer, an upper bound that says nothing about the Answer Model) or "prior"
    (the most common training answer `prior`). The note counts each source, so nothing is hidden.
    """
    if fallback not in ("reference", "prior"):
        raise ParameterError(f"answers_fallback must be 'reference' or 'prior', got {fallback!r}")
    predicted = read_answers(preds_file) if preds_file and Path(preds_file).exists() else {}
    out, missing = {}, 0
    for p in pairs:
        if p.id in predicted:
            # The verdict only: training prompts carry the reference answer, which has no confidence,
            # so test prompts must not show one either.
            out[p.id] = {"answer": predicted[p.id]["answer"], "p_answer": None}
            continue
        missing += 1
        if fallback == "reference" and p.answer in pairs_mod.ANSWERS:
            out[p.id] = {"answer": p.answer, "p_answer": None}
        else:
            out[p.id] = {"answer": prior, "p_answer": None}
    used = len(pairs) - missing
    note = f"answer model ({Path(preds_file).name}) for {used} of {len(pairs)} pairs" if preds_file and predicted \
        else "no Answer Model predictions"
    if missing:
        note += f"; {missing} pairs use the {fallback} fallback" + (f" ({prior})" if fallback == "prior" else "")
    return out, note


# --------------------------------------------------------------------------- ms-swift export
def swift_records(
    pairs: Sequence[pairs_mod.Pair],
    prompts: Mapping[str, prompts_mod.Prompt],
    shape: str = "sft",
) -> list[dict]:
    """Rows for ms-swift: ``{"messages": [...], "images": [abs paths]}`` (+ ``"solution"`` for GRPO).

    ms-swift's multimodal format takes ``<image>`` placeholders in the user text and the image
    paths in ``images``; an SFT row ends with the assistant's completion, a GRPO row carries the
    reference in ``solution`` for its accuracy/format rewards.
    """
    if shape not in ("sft", "grpo"):
        raise ParameterError(f"export shape must be 'sft' or 'grpo', got {shape!r}")
    rows = []
    for pair in pairs:
        if pair.answer is None:
            raise pair.error("cannot export an unlabeled pair for training", "export a labelled split")
        images = [str(pair.image_path(i).resolve()) for i in range(len(pair.image_refs))]
        messages = prompts[pair.id].records()
        completion = pairs_mod.format_completion(pair.thinking, pair.answer)
        row: dict[str, Any] = {"id": pair.id, "messages": messages, "images": images}
        if shape == "sft":
            row["messages"] = messages + [{"role": "assistant", "content": completion}]
        else:
            row["solution"] = completion
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- one training run
@dataclass
class RunSettings:
    """Everything one Thinking Model training run needs, saved as ``thinking.json`` in its folder.

    Attributes:
        model: a Hub name, alias or folder; ``"tiny"`` builds the tiny model in ``RUN/base``.
        stage: the prompt stage (S0..S4).
        lora: train LoRA adapters (True) or all weights (False, the tiny model's default).
        max_pixels: per-image pixel budget at encoding time (None = the processor's).
        max_new_tokens / gen_batch_size / no_repeat_ngram_size: generation.
        swap_augment: also train on every pair with A and B exchanged (`swapped_pair`).
    """

    model: str = "tiny"
    stage: str = "S4"
    lora: bool = False
    max_pixels: int | None = None
    max_new_tokens: int = 256
    gen_batch_size: int = 8
    no_repeat_ngram_size: int = 0
    swap_augment: bool = False
    tiny: TinySettings = field(default_factory=TinySettings)
    lora_settings: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSettings":
        nested = {"tiny": TinySettings, "lora_settings": LoraSettings, "train": TrainSettings}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            name = sorted(unknown)[0]
            raise ParameterError(f"unknown thinking setting {name!r}.{suggest(name, known)}")
        kwargs = {}
        for key, value in data.items():
            if key in nested and isinstance(value, Mapping):
                sub = nested[key]
                sub_known = {f.name for f in fields(sub)}
                bad = set(value) - sub_known
                if bad:
                    b = sorted(bad)[0]
                    raise ParameterError(f"unknown {key} setting {b!r}.{suggest(b, sub_known)}")
                value = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            kwargs[key] = value
        return cls(**kwargs)


def prepare_model(run_dir: Path, settings: RunSettings, corpus_pairs: Sequence[pairs_mod.Pair] = (),
                  init_from: str | Path | None = None, log=print):
    """Model + processor for training: `init_from` (an earlier stage's weights), else the tiny build, else the Hub model."""
    if init_from is not None:
        model, processor = load_model(str(init_from), trainable_adapter=True)
    elif settings.model == "tiny":
        from accelerate import PartialState

        base = run_dir / "base"
        # Under `accelerate launch` the main process builds the model; the others wait, then load it.
        with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
            if not (base / "config.json").exists():
                build_tiny_model(base, rationale_corpus(corpus_pairs), settings.tiny)
        model, processor = load_model(str(base))
    else:
        model, processor = load_model(settings.model)
    if settings.lora and not hasattr(model, "peft_config"):
        model = apply_lora(model, settings.lora_settings, log=log)
    return model, processor


def train_run(
    run_dir: str | Path,
    train_pairs: Sequence[pairs_mod.Pair],
    settings: RunSettings,
    *,
    cues: Mapping[str, Mapping[str, str]] | None = None,
    vocabulary: prompts_mod.Vocabulary | None = None,
    init_from: str | Path | None = None,
    resume: bool = True,
    log=print,
) -> dict:
    """Train the Thinking Model at one stage and save it to ``run_dir/final`` (resumable).

    In S4 the prompt's verdict during training is the reference answer (teacher forcing); at test
    time it is the Answer Model's.
    """
    run_dir = Path(run_dir)
    final = run_dir / "final"
    if resume and (final / "thinking.json").exists():
        return json.loads((final / "thinking.json").read_text())["train"]
    vocabulary = vocabulary or prompts_mod.load_vocabulary(train_pairs)
    examples_pairs = list(train_pairs)
    cues = dict(cues or {})
    if settings.swap_augment:
        swapped = [swapped_pair(p) for p in train_pairs]
        for p in train_pairs:
            if p.id in cues:
                cues[p.id + SWAP_SUFFIX] = {k: swap_sides_text(str(v)) for k, v in cues[p.id].items()}
        examples_pairs += swapped
    answers = {p.id: {"answer": p.answer} for p in examples_pairs}
    prompts = prompts_mod.build_prompts(examples_pairs, settings.stage, cues=cues, answers=answers,
                                        vocabulary=vocabulary)
    model, processor = prepare_model(run_dir, settings, train_pairs, init_from, log)
    examples = examples_for(examples_pairs, prompts, processor, with_targets=True, max_pixels=settings.max_pixels)
    result = train(model, examples, processor.tokenizer.pad_token_id, run_dir, settings.train, resume=resume, log=log)
    if result["is_main_process"]:
        with _staging_dir(final) as tmp:
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            storage.write_json(tmp / "vocabulary.json", {"headings": vocabulary.headings, "source": vocabulary.source})
            storage.write_json(tmp / "thinking.json", {"settings": asdict(settings), "train": result,
                                                       "train_pairs": len(train_pairs)})
    return result


def load_run(run_dir: str | Path, merge_adapter: bool = True):
    """(model, processor, settings, vocabulary) of a finished training run (``RUN/final``), for inference.

    Args:
        merge_adapter: fold the LoRA adapter into the base weights (same outputs, faster decoding).
    """
    final = Path(run_dir) / "final"
    meta = final / "thinking.json"
    if not meta.exists():
        raise DataError(final, "no trained Thinking Model here (thinking.json missing)",
                        "train first: idiff think train --data TRAIN.jsonl --out RUN_DIR")
    info = json.loads(meta.read_text())
    settings = RunSettings.from_dict(info["settings"])
    voc = json.loads((final / "vocabulary.json").read_text())
    vocabulary = prompts_mod.Vocabulary({k: tuple(v) for k, v in voc["headings"].items()}, {}, voc["source"])
    model, processor = load_model(str(final), merge_adapter=merge_adapter)
    return model, processor, settings, vocabulary


def train_ladder(
    root: str | Path,
    train_pairs: Sequence[pairs_mod.Pair],
    stages: Sequence[str],
    settings: RunSettings,
    *,
    cues: Mapping[str, Mapping[str, str]] | None = None,
    vocabulary: prompts_mod.Vocabulary | None = None,
    log=print,
) -> dict[str, dict]:
    """Train the stages progressively: ``root/<stage>``, each initialised from the previous stage's weights.

    Returns:
        stage -> the `train` result of that stage (a finished stage is not retrained).
    """
    results = {}
    previous = None
    for stage in stages:
        stage_settings = RunSettings.from_dict({**asdict(settings), "stage": prompts_mod.check_stage(stage)})
        log(f"-- stage {stage} ({prompts_mod.STAGE_LABELS[stage]})")
        results[stage] = train_run(Path(root) / stage, train_pairs, stage_settings, cues=cues, vocabulary=vocabulary,
                                   init_from=previous, log=log)
        previous = Path(root) / stage / "final"
    return results


def feature_cues(
    pairs: Sequence[pairs_mod.Pair],
    calibration_ids: Iterable[str] | None = None,
    *,
    sources: Sequence[str] = ("cv", "iqa"),
    progress: bool = True,
) -> tuple[dict[str, dict[str, str]], str]:
    """Cue texts per pair from `idiff_lib.features.cv`: ``{id: {"cv": lines, "iqa": lines}}`` and a note.

    The feature table comes from ``features.build_feature_table`` (cached per image); the cue
    thresholds are calibrated on the `calibration_ids` rows (the train split; default: all) with
    ``features.calibrate_thresholds``; each pair's cues are ``features.render_features(row, style)``
    lines. IQA cues need pyiqa weights: metrics whose weights are missing are left out (with a
    warning each), so without any the IQA cues are empty and S3 prompts say "not measured".
    """
    from idiff_lib.features import cv as features

    table = features.build_feature_table(list(pairs), features=tuple(sources), progress=progress)
    ids = [i for i in (calibration_ids or table.index) if i in table.index]
    thresholds = features.calibrate_thresholds(table.loc[ids])
    cues = {}
    for pid, row in table.iterrows():
        cues[str(pid)] = {style: "\n".join(features.render_features(row, style=style, thresholds=thresholds))
                          for style in ("cv", "iqa")}
    with_iqa = sum(bool(c["iqa"]) for c in cues.values())
    return cues, (f"feature cues from idiff_lib.features.cv for {len(cues)} pairs (sources {', '.join(sources)}; "
                  f"thresholds calibrated on {len(ids)} pairs; {with_iqa} pairs have IQA cues)")


# --------------------------------------------------------------------------- CLI
def _cues_arg(path: str | None) -> dict:
    return read_id_table(path) if path else {}


def _cmd_build_tiny(args: argparse.Namespace) -> int:
    labelled = pairs_mod.read_pairs(args.data) if args.data else []
    out = build_tiny_model(args.out, rationale_corpus(labelled), TinySettings(vocab_size=args.vocab_size))
    print(f"tiny Qwen2-VL written to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    train_pairs = pairs_mod.read_pairs(args.data, limit=args.limit)
    settings = RunSettings(model=args.model, stage=prompts_mod.check_stage(args.stage), lora=args.lora,
                           max_pixels=args.max_pixels,
                           train=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                               max_steps=args.max_steps, save_every=args.save_every,
                                               mixed_precision=args.mixed_precision))
    result = train_run(args.out, train_pairs, settings, cues=_cues_arg(args.cues), init_from=args.init_from,
                       resume=not args.no_resume)
    if result.get("is_main_process", True):
        print(json.dumps({k: v for k, v in result.items() if k != "loss_history"}))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    pairs = pairs_mod.read_pairs(args.data, limit=args.limit)
    answers = read_answers(args.answers) if args.answers else {}
    if args.writer == "template":
        from idiff_lib.thinking import template_baseline as template_writer

        vocabulary = prompts_mod.load_vocabulary()
        stage = args.stage or "S4"
        prompts = prompts_mod.build_prompts(pairs, stage, cues=_cues_arg(args.cues), answers=answers,
                                            vocabulary=vocabulary)
        writer = template_writer.writer(vocabulary, stage, cues=_cues_arg(args.cues))
    else:
        if not args.run:
            raise ParameterError("idiff think generate: --run RUN_DIR is required with --writer model. fix: pass the "
                                 "folder written by `idiff think train`, or use --writer template")
        model, processor, settings, vocabulary = load_run(args.run)
        stage = args.stage or settings.stage
        prompts = prompts_mod.build_prompts(pairs, stage, cues=_cues_arg(args.cues), answers=answers,
                                            vocabulary=vocabulary)
        writer = model_writer(model, processor, batch_size=settings.gen_batch_size,
                              max_new_tokens=settings.max_new_tokens, max_pixels=settings.max_pixels,
                              no_repeat_ngram_size=settings.no_repeat_ngram_size)
    stats = write_rationales(pairs, prompts, args.out, writer)
    print(json.dumps({"out": str(args.out), "stage": stage, **stats}))
    return 0


def _cmd_export_swift(args: argparse.Namespace) -> int:
    pairs = pairs_mod.read_pairs(args.data, require_images=True, limit=args.limit)
    vocabulary = prompts_mod.load_vocabulary(pairs)
    answers = read_answers(args.answers) if args.answers else {p.id: {"answer": p.answer} for p in pairs}
    prompts = prompts_mod.build_prompts(pairs, args.stage, cues=_cues_arg(args.cues), answers=answers,
                                        vocabulary=vocabulary)
    storage.write_jsonl(args.out, swift_records(pairs, prompts, args.shape))
    print(f"{len(pairs)} {args.shape.upper()} rows for ms-swift -> {args.out}")
    return 0


def add_cli(subparsers) -> None:
    """``idiff think {build-tiny, train, generate, export-swift}``."""
    think = subparsers.add_parser("think", help="the Thinking Model: rationales (train, generate, export)")
    sub = think.add_subparsers(dest="think_command", required=True)

    p = sub.add_parser("build-tiny", help="build the tiny Qwen2-VL-architecture model and its tokenizer")
    p.add_argument("--data", help="a labelled JSONL whose rationales join the tokenizer corpus")
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--vocab-size", type=int, default=TinySettings.vocab_size)
    p.set_defaults(func=_cmd_build_tiny)

    p = sub.add_parser("train", help="train the Thinking Model at one stage (runs under `accelerate launch` too)")
    p.add_argument("--data", required=True, help="the labelled training JSONL (SFT or GRPO shape)")
    p.add_argument("--out", required=True, help="the run folder (checkpoints, final/)")
    p.add_argument("--model", default="tiny", help="'tiny', a Hub name, an alias (qwen3-vl-8b, qwen2.5-vl-7b) or a folder")
    p.add_argument("--stage", default="S4", choices=prompts_mod.STAGES)
    p.add_argument("--cues", help="JSONL rows {id, cv, iqa} of feature cue texts (S2, S3)")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (r=16, all linear layers)")
    p.add_argument("--init-from", help="start from an earlier run's final/ folder (progressive stages)")
    p.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    p.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    p.add_argument("--lr", type=float, default=TrainSettings.lr)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--save-every", type=int, default=TrainSettings.save_every)
    p.add_argument("--max-pixels", type=int, help="per-image pixel budget")
    p.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    p.add_argument("--limit", type=int, help="train on the first N pairs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("generate", help="write rationales (resumable: ids already in --out are skipped)")
    p.add_argument("--run", help="a training run folder (holds final/)")
    p.add_argument("--data", required=True, help="the pairs JSONL")
    p.add_argument("--answers", help="Answer Model predictions JSONL (id, answer[, p_left]); needed for S4")
    p.add_argument("--cues", help="JSONL rows {id, cv, iqa} of feature cue texts")
    p.add_argument("--out", required=True, help="the rationales JSONL to write")
    p.add_argument("--stage", choices=prompts_mod.STAGES, help="default: the run's training stage")
    p.add_argument("--writer", default="model", choices=("model", "template"))
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("export-swift", help="write the SFT/GRPO JSONL that ms-swift takes")
    p.add_argument("--data", required=True, help="a labelled pairs JSONL")
    p.add_argument("--out", required=True)
    p.add_argument("--shape", default="sft", choices=("sft", "grpo"))
    p.add_argument("--stage", default="S4", choices=prompts_mod.STAGES)
    p.add_argument("--cues", help="JSONL rows {id, cv, iqa}")
    p.add_argument("--answers", help="answers for S4 prompts (default: the reference answers)")
    p.add_argument("--limit", type=int)
    p.set_defaults(func=_cmd_export_swift)
