"""Examples for the Thinking Model: A/B side swapping, image loading, tokenisation with loss masks, batching."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping, Sequence

import torch
from PIL import Image

from idiff_lib.core.errors import DataError
from idiff_lib.core.ontology import OTHER_ANSWER
from idiff_lib.core.progress import progress_bar
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.data.views import load_rgb, load_views, merge_side_by_side, split_merged
from idiff_lib.thinking.prompting import prompts as prompts_mod  # alias: 'prompts' names built prompts in this module

IGNORE_INDEX = -100


SWAP_SUFFIX = "~swap"
_SIDE_RE = re.compile(r"\bImage ([AB])(\s*\((?:Left|Right)\)|/(?:Left|Right))?")


def swap_sides_text(text: str) -> str:
    """Exchange the images in a rationale: ``Image A (Left)`` <-> ``Image B (Right)`` (also ``/Left``, bare)."""

    def flip(m: re.Match) -> str:
        side = (m.group(2) or "").replace("Left", "\0").replace("Right", "Left").replace("\0", "Right")
        return f"Image {OTHER_ANSWER[m.group(1)]}{side}"

    return _SIDE_RE.sub(flip, text)


def swapped_pair(pair: pairs_mod.Pair) -> pairs_mod.Pair:
    """The same pair with A and B exchanged: images mirrored at load time, rationale and answer swapped.

    Used as training augmentation: with both orders seen, the letters in a rationale can only
    come from the images or the prompt's verdict, not from a side prior.
    """
    if pair.answer is None:
        raise pair.error("cannot swap an unlabeled pair for training")
    answer = OTHER_ANSWER[pair.answer]
    thinking = swap_sides_text(pair.thinking)
    return dataclasses.replace(pair, id=pair.id + SWAP_SUFFIX, thinking=thinking, answer=answer,
                               completion=pairs_mod.format_completion(thinking, answer))


def load_images(pair: pairs_mod.Pair, max_pixels: int | None = None, views: bool = False) -> list:
    """The pair's two images (c0 global, c1 detail) as PIL RGB, shrunk to at most `max_pixels` each.

    A pair made by `swapped_pair` gets its merged images with the halves exchanged (separate
    images in the other order). With `views`, the four views instead (global A, global B, detail
    A, detail B: `idiff_lib.data.views.load_views`), for a processor that reads each view as its
    own block (`SmallVlmProcessor.view_names`).
    """
    swap = pair.id.endswith(SWAP_SUFFIX)
    if views:
        v = load_views(pair)
        v = v.swapped() if swap else v
        arrays = [v.global_left, v.global_right, v.local_left, v.local_right]
    else:
        order = range(len(pair.image_refs))
        if swap and pair.layout == "separate":
            order = reversed(order)
        arrays = []
        for i in order:
            rgb = load_rgb(pair.image_path(i), pair)
            if swap and pair.layout == "merged":
                left, right = split_merged(rgb, pair, pair.image_path(i))
                rgb = merge_side_by_side(right, left)
            arrays.append(rgb)
    out = []
    for rgb in arrays:
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


_SEQ_KEYS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "token_type_ids")


def context_length(model: torch.nn.Module) -> int | None:
    """The longest sequence `model` takes: its (text) config's ``max_position_embeddings``, or None."""
    config = getattr(model, "config", None)
    for cfg in (getattr(config, "text_config", None), config):
        value = getattr(cfg, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompt_length(item: dict, budget: int, name: str) -> dict:
    """`item` unchanged when its prompt fits in `budget` tokens; else a `DataError` naming the pair and the counts.

    A prompt is never cut: a cut prompt loses part of the evidence the rationale is meant to follow,
    and the rationale would be scored as if it had seen all of it.

    Args:
        budget: the most tokens the prompt may take (the model's context less the rationale's tokens:
            the target in training, ``max_new_tokens`` in generation).
        name: the pair id, for the error.
    """
    n = int(item["input_ids"].shape[-1])
    if n <= budget:
        return item
    raise DataError(name, f"the prompt takes {n} tokens, more than the {budget} the model leaves for it (its "
                    "context less the rationale's tokens)",
                    "shorten the prompt's side inputs (fewer cue or evidence lines), lower max_pixels, lower "
                    "max_new_tokens, or use a model with a longer context")


def encode(processor, prompt: prompts_mod.Prompt, images: list, target: tuple[str, str] | None = None, *,
           max_length: int | None = None, name: str = "") -> dict:
    """Tokenise one example: chat-template prompt with images, then the target with its labels.

    Labels: the prompt is masked; the rationale part always carries labels; the answer part and
    the end-of-turn token carry labels except in answer-aware stages (``prompt.answer`` set, S4),
    where the answer comes from the Answer Model and the loss covers only the rationale tokens.

    Args:
        max_length: the most tokens the example may take (prompt + target; for generation, the
            model's context less the new tokens). A longer prompt is an error naming `name` and the
            token counts (`check_prompt_length`). None = no limit.
        name: the pair id, for errors.

    Raises:
        DataError: the prompt does not fit in `max_length` with its target.
    """
    text = processor.apply_chat_template(prompt.chat_messages(), add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text], images=images or None, return_tensors="pt")
    item = {k: v for k, v in enc.items()}
    target_ids = None
    if target is not None:
        tok = processor.tokenizer
        rationale = tok(target[0], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        tail = tok(target[1] + tok.eos_token, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        target_ids = (rationale, tail)
    if max_length is not None:
        reserved = sum(len(t) for t in target_ids) if target_ids else 0
        item = check_prompt_length(item, max_length - reserved, name or "<prompt>")
    ids = item["input_ids"][0]
    labels = torch.full_like(ids, IGNORE_INDEX)
    if target_ids is not None:
        rationale, tail = target_ids
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
    max_length: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Encoded examples (tensors) for `pairs`, each tagged with its pair id under ``"id"``.

    `max_length` caps each example's tokens by `encode`'s truncation rule (None = no cap).
    """
    out = []
    for pair in progress_bar(pairs, desc="encode", disable=not progress, leave=False):
        target = None
        if with_targets:
            if pair.answer is None:
                raise pair.error("cannot train on an unlabeled pair", "train on an SFT/GRPO file with rationales")
            target = target_text(pair.thinking, pair.answer)
        images = load_images(pair, max_pixels, views=bool(getattr(processor, "view_names", None)))
        item = encode(processor, prompts[pair.id], images, target, max_length=max_length, name=pair.id)
        item["id"] = pair.id
        out.append(item)
    return out
