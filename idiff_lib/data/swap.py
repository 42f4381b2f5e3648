"""A pair with A and B exchanged, written to disk, so any model can be asked about both orders.

Swapping the sides of a pair must turn p(A better) into 1 - p: the test of an order-free model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from idiff_lib.core import storage
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_rgb, merge_side_by_side, split_merged

SWAPPED_SUFFIX = "~swapped"  # the swapped copy's id; never a RAIM id, so no cache keyed on ids mixes them


def write_swapped_pair(pair: Pair, out_dir: str | Path) -> Pair:
    """`pair` with the halves of each merged image (or the order of separate images) exchanged,
    its images written as PNG (lossless) into `out_dir`, and its answer flipped.

    Raises:
        DataError: an image that cannot be read or split (naming the pair's file and line).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images: list[Path | None] = []
    if pair.layout == "separate":
        images = list(reversed(pair.images))
    else:
        for i in range(len(pair.image_refs)):
            rgb = load_rgb(pair.image_path(i), pair)
            left, right = split_merged(rgb, pair, pair.image_path(i))
            target = out_dir / f"{pair.id}{SWAPPED_SUFFIX}_c{i}.png"
            with storage.atomic_path(target) as tmp:
                Image.fromarray(merge_side_by_side(right, left)).save(tmp, format="PNG")
            images.append(target)
    answer = {"A": "B", "B": "A"}.get(pair.answer or "")
    return dataclasses.replace(pair, id=pair.id + SWAPPED_SUFFIX, images=images,
                               image_refs=[str(p) for p in images], answer=answer, completion=None, thinking="")
