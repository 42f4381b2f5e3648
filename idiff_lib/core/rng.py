"""The global random generators' states (Python, NumPy, torch CPU and CUDA) as plain values and tensors.

Both trainers save them in their checkpoints so a resumed run draws what an uninterrupted one
would: the Answer Model's in ``torch.save`` files read back with ``weights_only=True``, the
Thinking Model's as JSON and safetensors (`idiff_lib.thinking.train.train_checkpoint`). No pickle either way.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def global_rng_state() -> dict[str, Any]:
    """``{"python", "torch", "numpy"[, "cuda"]}``: the generators' states in plain values and tensors."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"name": str(name), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Set the generators to a `global_rng_state` (CUDA's only where the state has it and a GPU is here)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["key"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
