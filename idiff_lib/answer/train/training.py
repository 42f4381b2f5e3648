"""Training one answer-model member, resumable to the same result, and loading it back.

AdamW, a cosine schedule with warm-up, fixed seeds, swap augmentation and aligned random crops; a
checkpoint every epoch (``last.pt``, resumable) plus best-on-val (``best.pt``), so ``resume=True``
continues an interrupted run to the same result. bf16 autocast and channels_last are used on a
GPU only. Checkpoints hold plain values and tensors only (`idiff_lib.answer.model.checkpoints`).
Loss per optimiser step and the epoch metrics also go to TensorBoard event files under
``<member_dir>/tensorboard/`` (``tensorboard --logdir <run_dir>`` shows every member).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from idiff_lib.answer.model.checkpoints import load_weights, save_weights
from idiff_lib.answer.model.inputs import Item, crop_views, crops_to_tensor
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.model.network import PairwiseModel, build_model
from idiff_lib.core import storage
from idiff_lib.core.curves import open_curves
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.core.progress import progress_bar
from idiff_lib.core.rng import global_rng_state, set_global_rng_state

MEMBERS_DIR = "members"  # inside a step folder: one sub-folder per member
# A member folder: its settings, the resumable and the best checkpoint, the epoch history.
CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
HISTORY_FILE = "history.json"
EPOCH_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")  # logged as "epoch/<name>"

# (n, rng) -> n fresh labelled items: the on-the-fly synthetic pairs of one epoch.
ItemStream = Callable[[int, np.random.Generator], list[Item]]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def device_of(device: str | None = None) -> torch.device:
    """The given device, or cuda when available, else cpu."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU; full precision (autocast disabled) on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _batches(n: int, size: int) -> Iterable[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


@torch.no_grad()
def predict_items(model: PairwiseModel, items: Sequence[Item], batch_size: int = 16,
                  device: torch.device | None = None, desc: str | None = None) -> np.ndarray:
    """p(A is better) for each item, on central aligned crops."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    size = model.cfg.img_size
    for idx in progress_bar(list(_batches(len(items), batch_size)), desc=desc or "predicting", leave=False,
                             disable=len(items) < 4 * batch_size):
        x = crops_to_tensor(np.stack([crop_views(items[i].views, size, None) for i in idx])).to(device)
        with autocast_for(device):
            out.append(torch.sigmoid(model(x).float()).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, int(round(total_steps * warmup_frac)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainResult:
    """What `train_member` leaves behind: the folder, the best model and the epoch history."""

    member_dir: Path
    model: PairwiseModel
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float | None = None
    seconds: float = 0.0


@dataclass
class _Training:
    """The mutable state of one member's training (what ``last.pt`` stores)."""

    model: PairwiseModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = -1.0
    start_epoch: int = 0


def _own_items(cfg: MemberConfig, items: Sequence[Item]) -> list[Item]:
    """The labelled items of the member's category (all categories for a generalist)."""
    return [it for it in items if it.label is not None and (not cfg.category or it.category == cfg.category)]


def _start(cfg: MemberConfig, n_train: int, synthetic: ItemStream | None, dev: torch.device) -> _Training:
    seed_everything(cfg.seed)
    model = build_model(cfg).to(dev)
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups: list[Any] = trainable
    if cfg.head_lr_mult != 1.0:  # two groups only then: checkpoints of one-group runs still resume
        backbone = [p for p in model.backbone.parameters() if p.requires_grad]
        heads = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
        groups = [{"params": backbone, "lr": cfg.lr}, {"params": heads, "lr": cfg.lr * cfg.head_lr_mult}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    n_per_epoch = n_train + (cfg.synthetic_pairs if synthetic else 0)
    steps_per_epoch = math.ceil(n_per_epoch / cfg.batch_size)
    scheduler = _schedule(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_frac)
    return _Training(model, optimizer, scheduler)


def _resume(run: _Training, cfg: MemberConfig, last: Path, member_dir: Path) -> None:
    state = load_weights(last, f"delete {member_dir} and train the member again")
    if state["config"] != cfg.to_dict():
        raise ParameterError(f"{last} was made with other settings; fix: delete {member_dir} or pass resume=False")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    set_global_rng_state(state["rng"])
    run.history, run.best, run.start_epoch = state["history"], state["best"], state["epoch"] + 1


def _epoch_items(cfg: MemberConfig, train_items: list[Item], synthetic: ItemStream | None, epoch: int) -> list[Item]:
    items = list(train_items)
    if synthetic is not None and cfg.synthetic_pairs:
        fresh = synthetic(cfg.synthetic_pairs, np.random.default_rng([cfg.seed, epoch, 7]))
        items += [it for it in fresh if not cfg.category or it.category == cfg.category]  # specialists: own category
    return items


def _batch(cfg: MemberConfig, items: list[Item], order: np.ndarray, idx: range, rng: np.random.Generator,
           dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random aligned crops of one batch, each pair swapped (A and B, and the label) with probability 1/2."""
    crops, labels = [], []
    for i in idx:
        it = items[order[i]]
        views, label = it.views, float(it.label)
        if cfg.swap_aug and rng.random() < 0.5:
            views = tuple(views[j ^ 1] for j in range(len(views)))  # exchange A and B
            label = 1.0 - label
        crops.append(crop_views(views, cfg.img_size, rng))
        labels.append(label)
    return crops_to_tensor(np.stack(crops)).to(dev), torch.tensor(labels, device=dev)


def _train_epoch(run: _Training, cfg: MemberConfig, epoch: int, train_items: list[Item], synthetic: ItemStream | None,
                 dev: torch.device, on_step: Callable[[int, int], None] | None, progress: bool,
                 writer: Any = None) -> dict[str, Any]:
    """One pass over the epoch's items; the history row of its training loss and accuracy.

    Each step's loss and learning rate go to `writer` (a SummaryWriter) at the global step, the
    count of optimiser steps so far (the scheduler's, so a resumed run continues the numbering).
    """
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(cfg.seed * 1009 + epoch)
    items = _epoch_items(cfg, train_items, synthetic, epoch)
    order = rng.permutation(len(items))
    run.model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    losses, correct, seen = [], 0, 0
    bar = progress_bar(list(_batches(len(items), cfg.batch_size)), desc=f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}",
                       leave=False, disable=not progress)
    for step, idx in enumerate(bar):
        x, y = _batch(cfg, items, order, idx, rng, dev)
        with autocast_for(dev):
            logit = run.model(x).float()
        loss = loss_fn(logit, y)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        losses.append(float(loss.detach()))
        correct += int(((logit > 0).float() == y).sum())
        seen += len(idx)
        bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        if writer is not None:
            global_step = run.scheduler.last_epoch
            writer.add_scalar("train/loss", losses[-1], global_step)
            writer.add_scalar("train/lr", run.scheduler.get_last_lr()[0], global_step)
        if on_step is not None:
            on_step(epoch, step)
    return {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "train_acc": correct / max(1, seen),
            "n_train": seen, "lr": run.scheduler.get_last_lr()[0]}


def _val_scores(model: PairwiseModel, val_items: list[Item], dev: torch.device) -> dict[str, float]:
    p = predict_items(model, val_items, device=dev)
    y_val = np.array([it.label for it in val_items])
    eps = 1e-6  # keeps log(0) out of the loss of a confidently wrong prediction
    return {"val_loss": float(-np.mean(y_val * np.log(p + eps) + (1 - y_val) * np.log(1 - p + eps))),
            "val_acc": float(np.mean((p > 0.5) == (y_val > 0.5)))}


def _checkpoint(run: _Training, cfg: MemberConfig, epoch: int, row: dict[str, Any], member_dir: Path) -> None:
    """``best.pt`` when the epoch improved (val accuracy, else train accuracy), then ``last.pt`` and the history."""
    score = row.get("val_acc", row["train_acc"])
    if score > run.best:
        run.best = score
        save_weights({"config": cfg.to_dict(), "model": run.model.state_dict(), "epoch": epoch,
                      "val_acc": row.get("val_acc")}, member_dir / BEST_CHECKPOINT)
    save_weights({"config": cfg.to_dict(), "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                  "scheduler": run.scheduler.state_dict(), "rng": global_rng_state(), "epoch": epoch,
                  "history": run.history, "best": run.best}, member_dir / LAST_CHECKPOINT)
    storage.write_json(member_dir / HISTORY_FILE, run.history)


def log_epoch(writer: Any, row: dict[str, Any], global_step: int) -> None:
    """An epoch's history row as ``epoch/<metric>`` scalars at the global step where the epoch ended."""
    for name in EPOCH_METRICS:
        if row.get(name) is not None:
            writer.add_scalar(f"epoch/{name}", row[name], global_step)
    writer.flush()


def train_member(
    cfg: MemberConfig,
    train_items: Sequence[Item],
    val_items: Sequence[Item] = (),
    member_dir: str | Path = "member",
    *,
    resume: bool = True,
    synthetic: ItemStream | None = None,
    device: str | None = None,
    on_step: Callable[[int, int], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train one member; every epoch ends with ``last.pt`` (resumable) and, when val improves, ``best.pt``.

    Args:
        cfg: the member's settings (its `category` filters the items to person or scene).
        train_items / val_items: from `load_items` (labelled).
        member_dir: output folder (config.json, last.pt, best.pt, history.json, tensorboard/).
        resume: continue from ``last.pt`` when it exists and was made with the same settings.
        synthetic: a callable (n, rng) -> items giving `cfg.synthetic_pairs` fresh pairs per epoch.
        device: "cpu" or "cuda" (default: cuda when available).
        on_step: called as on_step(epoch, step) after each optimiser step (tests interrupt here).
        progress: show a progress bar per epoch.

    Raises:
        ParameterError: when `last.pt` was made with other settings, or no training items remain.
        DataError: when `last.pt` cannot be read as plain weights.
    """
    t0 = time.monotonic()
    member_dir = Path(member_dir)
    member_dir.mkdir(parents=True, exist_ok=True)
    dev = device_of(device)
    train_items, val_items = _own_items(cfg, train_items), _own_items(cfg, val_items)
    if not train_items and not (synthetic and cfg.synthetic_pairs):
        raise ParameterError(f"member {cfg.name}: no labelled training pairs"
                             + (f" of category {cfg.category!r}" if cfg.category else ""))
    run = _start(cfg, len(train_items), synthetic, dev)
    last = member_dir / LAST_CHECKPOINT
    if resume and last.exists():
        _resume(run, cfg, last, member_dir)
    storage.write_json(member_dir / CONFIG_FILE, cfg.to_dict())  # after the resume check: never beside other settings' checkpoints
    if run.start_epoch < cfg.epochs:
        writer = open_curves(member_dir, run.scheduler.last_epoch)
        try:
            for epoch in range(run.start_epoch, cfg.epochs):
                te = time.monotonic()
                row = _train_epoch(run, cfg, epoch, train_items, synthetic, dev, on_step, progress, writer)
                if val_items:
                    row.update(_val_scores(run.model, val_items, dev))
                row["seconds"] = round(time.monotonic() - te, 2)
                run.history.append(row)
                log_epoch(writer, row, run.scheduler.last_epoch)  # before the checkpoint: a crash between them is purged
                _checkpoint(run, cfg, epoch, row, member_dir)
        finally:
            writer.close()
    best_model = load_member(member_dir, device=str(dev))[1]
    return TrainResult(member_dir, best_model, run.history, run.best if val_items else None, time.monotonic() - t0)


def model_from_checkpoint(state: dict[str, Any], device: str | None = None) -> tuple[MemberConfig, PairwiseModel]:
    """The member network of a checkpoint's ``config`` and ``model`` state, in eval mode (no network access)."""
    cfg = MemberConfig.from_dict({**state["config"], "pretrained": False, "checkpoint": "", "init": ""})
    model = PairwiseModel(cfg)
    model.load_state_dict(state["model"])
    model.to(device_of(device)).eval()
    return cfg, model


def load_member(member_dir: str | Path, which: str = "best", device: str | None = None) -> tuple[MemberConfig, PairwiseModel]:
    """A trained member from its folder (no network: the weights are all in the checkpoint).

    Raises:
        DataError: naming the checkpoint when it is missing or not plain weights.
    """
    path = Path(member_dir) / f"{which}.pt"
    if not path.exists():
        raise DataError(path, "member checkpoint not found", "train the member first (notebook 02), or check --run")
    state = load_weights(path, "train the member first (notebook 02), or check --run")
    return model_from_checkpoint(state, device)
