"""A pair's inputs to a member: the four views resized once, aligned crops, tensors and items.

Crops are aligned: the same window in A and B, so the difference stays meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.core.progress import progress_bar
from idiff_lib.data import views as views_mod  # alias: 'views' names image views in this module
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import Views, load_views


def _resize_short(img: np.ndarray, short: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = short / min(h, w)
    if abs(scale - 1.0) < 1e-6:
        return img
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS))


def _same_size(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return views_mod.resize(b, (a.shape[1], a.shape[0]))


def prepare_views(views: Views, cfg: MemberConfig) -> tuple[np.ndarray, ...]:
    """Resize the four views once (kept in memory); crops are taken per epoch by `crop_views`."""
    gl = _resize_short(views.global_left, cfg.resize)
    gr = _same_size(gl, _resize_short(views.global_right, cfg.resize))
    local_short = cfg.local_resize if cfg.local_resize > 0 else max(cfg.img_size, min(views.local_left.shape[:2]))
    local_short = max(local_short, cfg.img_size)
    ll = _resize_short(views.local_left, local_short)
    lr = _same_size(ll, _resize_short(views.local_right, local_short))
    return (gl, gr, ll, lr) if cfg.mode == "split" else (gl, gr)


def crop_views(prepared: Sequence[np.ndarray], size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Aligned crops: the same window in left and right, random (with a shared flip) or central.

    Returns:
        uint8 array (V, size, size, 3).
    """
    flip = bool(rng.random() < 0.5) if rng is not None else False
    out = []
    for i in range(0, len(prepared), 2):
        left, right = prepared[i], prepared[i + 1]
        h, w = left.shape[:2]
        if rng is not None:
            y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        else:
            y, x = (h - size) // 2, (w - size) // 2
        for img in (left, right):
            crop = img[y:y + size, x:x + size]
            out.append(crop[:, ::-1] if flip else crop)
    return np.stack(out)


def crops_to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(B, V, H, W, 3) uint8 -> (B, V, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 1, 4, 2, 3).float().div_(255.0)


@dataclass
class Item:
    """One training or evaluation sample: prepared views and, when labelled, 1.0 if A is better."""

    id: str
    views: tuple[np.ndarray, ...]
    label: float | None = None
    category: str | None = None


def label_of(pair: Pair) -> float | None:
    """1.0 when Image A is the better one, 0.0 when B is, None for an unlabelled pair."""
    return None if pair.answer is None else float(pair.answer == "A")


def load_items(pairs: Iterable[Pair], cfg: MemberConfig, desc: str = "loading views",
               cache: dict | None = None) -> list[Item]:
    """Decode, split and resize every pair's views once (shared `cache` across members of one size).

    Raises:
        DataError: naming the pair's file and line when an image is missing or unreadable.
    """
    pairs = list(pairs)
    items = []
    split_cfg = MemberConfig(**{**cfg.to_dict(), "mode": "split"})
    key_cfg = (cfg.resize, cfg.local_resize, cfg.img_size)
    n_views = 4 if cfg.mode == "split" else 2
    for pair in progress_bar(pairs, desc=desc, leave=False, disable=len(pairs) < 20):
        key = (pair.id, str(pair.source), key_cfg)
        if cache is not None and key in cache:
            prepared = cache[key]
        else:
            prepared = prepare_views(load_views(pair), split_cfg)
            if cache is not None:
                cache[key] = prepared
        items.append(Item(pair.id, prepared[:n_views], label_of(pair), pair.category))
    return items


