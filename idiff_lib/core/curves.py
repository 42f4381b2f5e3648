"""Training curves as TensorBoard event files under a run folder (``tensorboard --logdir RUN``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files: loss per step, metrics per epoch


def open_curves(run_dir: Path, global_step: int) -> Any:
    """A SummaryWriter on ``<run_dir>/tensorboard``, resume-safe.

    Steps are numbered from 1 (the count of optimiser steps taken). ``purge_step = global_step + 1``
    tells TensorBoard to drop what an interrupted run (or, at 0, an earlier run of other settings)
    logged after the checkpoint this run starts from, so no step appears twice.
    """
    return SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=global_step + 1)
