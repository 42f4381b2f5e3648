"""Reading and writing the answer model's weight files safely.

Every checkpoint (a member's ``best.pt`` / ``last.pt``, a pretext backbone) is a dict of tensors,
numbers, strings and lists, written with ``torch.save`` and read back with
``torch.load(..., weights_only=True)``: loading one never runs code stored in the file, and a file
that is not plain weights (an arbitrary serialised object, a truncated download) is refused with a `DataError`
naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError

RETRAIN_HINT = "retrain step 02: idiff run --only 02_train_answer_model --out <run folder>"


def save_weights(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` of a dict of plain values and tensors, written atomically."""
    with storage.atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_weights(path: str | Path, fix: str = RETRAIN_HINT) -> dict[str, Any]:
    """A checkpoint written by `save_weights`, on the CPU, with ``weights_only=True``.

    Args:
        path: the weights file.
        fix: what to tell the user when the file is missing or unreadable.

    Raises:
        DataError: naming the file when it is missing, truncated, or holds anything but weights.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "weights file not found", fix)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a bad file: report each the same way
        raise DataError(path, f"cannot be read as plain weights ({type(err).__name__}: {str(err)[:200]})", fix) from None
    if not isinstance(state, dict):
        raise DataError(path, f"holds a {type(state).__name__}, not a dict of weights", fix)
    return state
