"""The tiny Qwen2-VL-architecture model built for CPU work, and its BPE tokenizer.

A few layers, random init, a byte-level BPE tokenizer trained on the rationale corpus by the
``tokenizers`` library; saved with ``save_pretrained`` and loaded back through the same
``from_pretrained`` path as a real checkpoint, so every code path (chat template, image tokens,
loss masking, LoRA, generation) is the real one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration,
                          Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor)

from idiff_lib.core import storage
from idiff_lib.core.errors import ParameterError
from idiff_lib.core.ontology import CATEGORIES, STAGES
from idiff_lib.core.vocabulary import RAIM_SFT_FILE
from idiff_lib.data import pairs
from idiff_lib.thinking.model.checkpoints import staging_dir
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.thinking_settings import ThinkingSettings

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
    layers: int = ThinkingSettings.tiny_layers
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 384
    vision_depth: int = 2
    vision_embed: int = 64
    vision_heads: int = 4
    min_pixels: int = 28 * 28 * 4
    max_pixels: int = 28 * 28 * 32
    seed: int = ThinkingSettings.seed


def rationale_corpus(labelled: Iterable[pairs.Pair] = (), raim_dir: str | Path | None = None) -> list[str]:
    """The texts the tiny tokenizer learns from: rationales, prompts and template vocabulary.

    Args:
        labelled: pairs whose completions join the corpus (the train split).
        raim_dir: a RAIM-PIQA folder whose public rationales join the corpus too (read in place);
            None = only `labelled`, so the tokenizer does not depend on a folder outside the
            repository. The prompt texts of every stage are added so prompts tokenise compactly.
    """
    texts = [p.completion for p in labelled if p.completion]
    if raim_dir:
        path = Path(raim_dir).expanduser() / RAIM_SFT_FILE
        texts += [p.completion for p in pairs.read_pairs(path, skip_bad=True) if p.completion]
    vocab = prompts.load_vocabulary(labelled, raim_dir=raim_dir)
    for category in (*CATEGORIES, None):
        for stage in STAGES:
            p = prompts.build_prompt(stage, category, answer="A", p_answer=0.5, vocabulary=vocab)
            texts += [p.system, p.user]
    return texts


def train_tokenizer(corpus: Sequence[str], vocab_size: int = 1200):
    """A byte-level BPE tokenizer trained with the ``tokenizers`` library, wrapped for transformers.

    Byte-level, so any text (including words never seen) encodes and decodes exactly.
    """
    if not corpus:
        raise ParameterError("train_tokenizer: the corpus is empty. fix: pass labelled pairs (or a "
                             "RAIM-PIQA folder as raim_dir)")
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
    with staging_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        storage.write_json(Path(tmp) / "tiny_settings.json", asdict(settings))
    return out_dir
