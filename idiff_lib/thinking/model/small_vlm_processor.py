"""The small vision-language model's processor: chat template, image tokens and pixel values.

Each image item of a chat becomes one ``<image>`` placeholder in the rendered text (ChatML turns,
SmolLM2's own format for text); `SmallVlmProcessor.__call__` expands every placeholder to the
model's fixed number of image tokens and turns the images into one ``(n_images, 3, S, S)``
tensor, resized to the vision backbone's input size and normalised with its mean and std.
Saved as the tokenizer's files (the chat template among them) plus ``small_vlm_processor.json``.

With `view_names` set (the default of a new build), each placeholder stands for one merged
image of the RAIM layout, A on the left and B on the right, and takes two images, its two halves
(`idiff_lib.thinking.train.encoding.load_images` splits them): the placeholder becomes two blocks of
visual tokens, each after a text marker ("Image A (left), global view:"), so the language model
reads four views, each its own block, and knows which is which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from tokenizers import AddedToken
from transformers import AutoTokenizer

from idiff_lib.core.errors import DataError, ParameterError

IMAGE_TOKEN = "<image>"
PROCESSOR_FILE = "small_vlm_processor.json"
# What the RAIM layout's two merged images show (c0, then c1), each split into A (left) and B (right).
RAIM_VIEW_NAMES = ("global view", "detail view")
SIDE_MARKERS = ("Image A (left)", "Image B (right)")
# ChatML as SmolLM2-Instruct writes it, with image items rendered as the image placeholder.
SMALL_VLM_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}" + IMAGE_TOKEN +
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def add_image_token(tokenizer, image_token: str = IMAGE_TOKEN) -> int:
    """Add `image_token` to `tokenizer` as one special token (if missing); return its id."""
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(image_token, special=True, normalized=False)], special_tokens=True)
    return int(tokenizer.convert_tokens_to_ids(image_token))


class SmallVlmProcessor:
    """Tokenizer + image preprocessing for `SmallVlmForConditionalGeneration`.

    Attributes:
        tokenizer: a transformers tokenizer holding `image_token` and a chat template.
        image_size: the square side S images are resized to.
        num_image_tokens: image tokens per image (the model's pooled grid, g x g).
        image_mean / image_std: per-channel normalisation of the vision backbone.
        image_token: the placeholder token.
        view_names: None = one image per placeholder; else the name of what the k-th placeholder
            shows, each placeholder then taking two images (its A and B halves) with text markers.
    """

    def __init__(self, tokenizer, *, image_size: int, num_image_tokens: int, image_mean: Sequence[float],
                 image_std: Sequence[float], image_token: str = IMAGE_TOKEN, chat_template: str | None = None,
                 view_names: Sequence[str] | None = None):
        self.tokenizer = tokenizer
        self.view_names = tuple(view_names) if view_names else None
        self.image_size = int(image_size)
        self.num_image_tokens = int(num_image_tokens)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.image_token = image_token
        self.image_token_id = add_image_token(tokenizer, image_token)
        if chat_template is not None:
            tokenizer.chat_template = chat_template

    @property
    def chat_template(self) -> str | None:
        return self.tokenizer.chat_template

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = False, tokenize: bool = False,
                            **kwargs):
        """Render `messages` with the chat template (image items become one placeholder each)."""
        if tokenize:
            raise ParameterError("SmallVlmProcessor.apply_chat_template: tokenize=True is not supported. fix: render "
                                 "with tokenize=False and call the processor on the text with the images")
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False, **kwargs)

    def pixel_values(self, images: Sequence) -> torch.Tensor:
        """PIL images (or HxWx3 uint8 arrays) as a normalised ``(n, 3, S, S)`` float tensor."""
        size = (self.image_size, self.image_size)
        rows = []
        for im in images:
            im = im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im))
            arr = np.asarray(im.convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
            rows.append(torch.from_numpy(arr).permute(2, 0, 1))
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        return (torch.stack(rows) - mean) / std

    def __call__(self, text: Sequence[str] | str, images: Sequence | None = None, return_tensors: str = "pt",
                 padding: bool | str = True, **kwargs) -> dict:
        """Tokenise `text` with each ``<image>`` expanded to `num_image_tokens` tokens; add ``pixel_values``.

        Raises:
            ParameterError: the number of placeholders differs from the number of images.
        """
        texts = [text] if isinstance(text, str) else list(text)
        images = list(images or [])
        placeholders = sum(t.count(self.image_token) for t in texts)
        per = 2 if self.view_names else 1
        if placeholders * per != len(images):
            each = "two images (its A and B halves)" if per == 2 else "one image"
            raise ParameterError(f"SmallVlmProcessor: the text holds {placeholders} {self.image_token} placeholders "
                                 f"but {len(images)} images were given. fix: pass {each} per image item")
        texts = [self.expand_placeholders(t) for t in texts]
        enc = self.tokenizer(texts, return_tensors=return_tensors, padding=padding, add_special_tokens=False, **kwargs)
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if images:
            out["pixel_values"] = self.pixel_values(images)
        return out

    def expand_placeholders(self, text: str) -> str:
        """`text` with every placeholder replaced by its visual-token run(s) (and view markers)."""
        run = self.image_token * self.num_image_tokens
        if not self.view_names:
            return text.replace(self.image_token, run)
        parts = text.split(self.image_token)
        out = [parts[0]]
        for k, rest in enumerate(parts[1:]):
            name = self.view_names[min(k, len(self.view_names) - 1)]
            out.append("".join(f"\n{side}, {name}: {run}" for side in SIDE_MARKERS) + "\n" + rest)
        return "".join(out)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def save_pretrained(self, folder: str | Path, **kwargs) -> None:
        """Write the tokenizer (with the chat template) and ``small_vlm_processor.json`` into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        settings = {"image_size": self.image_size, "num_image_tokens": self.num_image_tokens,
                    "image_mean": self.image_mean, "image_std": self.image_std, "image_token": self.image_token,
                    "view_names": list(self.view_names) if self.view_names else None}
        (folder / PROCESSOR_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs) -> "SmallVlmProcessor":
        """Load a processor saved by `save_pretrained`.

        Raises:
            DataError: the folder has no ``small_vlm_processor.json`` or its tokenizer has no chat template.
        """
        folder = Path(folder)
        settings_file = folder / PROCESSOR_FILE
        if not settings_file.is_file():
            raise DataError(settings_file, "missing: the folder holds no small VLM processor",
                            "build the model with `build_small_vlm(folder)` (it saves model and processor)")
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        if not tokenizer.chat_template:
            raise DataError(folder, "the tokenizer has no chat template, so prompts cannot be formatted as chat turns",
                            "rebuild the folder with `build_small_vlm` (it saves chat_template.jinja)")
        return cls(tokenizer, **settings)
