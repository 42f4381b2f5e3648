"""Training a Thinking Model on encoded examples with accelerate: optimiser, schedule, checkpoints, resume.

The same code runs in one process or under ``accelerate launch`` (DDP), with a progress bar,
checkpoints and an exact resume. The checkpoints hold no pickle (`train_checkpoint`): not
accelerate's ``save_state``, and not DeepSpeed, whose checkpoints are pickles.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from safetensors.torch import load_file, save_file

from idiff_lib.core import storage
from idiff_lib.core.curves import open_curves
from idiff_lib.core.errors import ParameterError
from idiff_lib.core.progress import progress_bar
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.train import train_checkpoint
from idiff_lib.thinking.train.encoding import collate


@dataclass
class TrainSettings:
    """How to train (full weights of the tiny model, or LoRA adapters of a real one).

    Attributes:
        epochs / batch_size / grad_accum / lr / weight_decay / warmup_frac / max_grad_norm: the optimiser.
        max_steps: stop after this many optimiser steps (None = all epochs).
        save_every: checkpoint every this many steps (and at the end of each epoch).
        eval_every: with val examples, the val loss every this many steps and at the last one; the
            run ends with the trainable weights of the lowest val loss (`BEST_WEIGHTS`).
        seed: shuffling seed.
        mixed_precision: "no" or "bf16" (GPU).
    """

    epochs: int = 3
    batch_size: int = 8
    grad_accum: int = ThinkingSettings.grad_accum
    lr: float = ThinkingSettings.lr
    weight_decay: float = 0.0
    warmup_frac: float = 0.05
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    save_every: int = 50
    eval_every: int = ThinkingSettings.eval_every
    seed: int = ThinkingSettings.seed
    mixed_precision: str = "no"


def labelled_tail(labels: torch.Tensor, ignore_index: int = -100) -> int:
    """How many last positions hold every labelled token of the batch, plus the one that predicts the
    first of them (the whole length when nothing is labelled)."""
    labelled = (labels != ignore_index).any(0).nonzero()
    if labelled.numel() == 0:
        return labels.shape[1]
    return labels.shape[1] - max(0, int(labelled[0]) - 1)


def loss_inputs(batch: dict) -> dict:
    """`batch` with ``logits_to_keep`` set so the LM head runs only on the labelled tail, and the labels
    cut to it. The prompt's logits carry no loss; over a 49k (SmolLM2) or 152k (Qwen) vocabulary they
    cost about a fifth of a CPU training step and most of its memory. The loss is unchanged; every
    ``transformers`` causal LM (and the small VLM) takes ``logits_to_keep``."""
    labels = batch.get("labels")
    if labels is None or "logits_to_keep" in batch:
        return batch
    keep = labelled_tail(labels)
    return {**batch, "labels": labels[:, labels.shape[1] - keep:], "logits_to_keep": keep}


# The trainable weights at the lowest val loss so far, beside the checkpoint (safetensors, written atomically).
BEST_WEIGHTS = "best_trainable.safetensors"


@torch.no_grad()
def labelled_loss(model: torch.nn.Module, examples: Sequence[dict], pad_id: int, batch_size: int) -> float:
    """The mean loss per labelled token of `examples` (the model left in train mode afterwards)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    items = [{k: v for k, v in ex.items() if k != "id"} for ex in examples]
    for start in range(0, len(items), batch_size):
        batch = {k: v.to(device) for k, v in collate(items[start:start + batch_size], pad_id, "right").items()}
        labelled = int((batch["labels"][:, 1:] != -100).sum())
        total += float(model(**loss_inputs(batch)).loss) * labelled
        count += labelled
    model.train()
    return total / max(1, count)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _data_loader(examples: Sequence[dict], pad_id: int, settings: TrainSettings) -> torch.utils.data.DataLoader:
    """Shuffled, right-padded batches; the generator's seed fixes the order of the batches."""
    items = [{k: v for k, v in ex.items() if k != "id"} for ex in examples]
    return torch.utils.data.DataLoader(items, batch_size=settings.batch_size, shuffle=True,
                                       collate_fn=lambda b: collate(b, pad_id, "right"),
                                       generator=torch.Generator().manual_seed(settings.seed))


def _total_steps(loader, processes: int, settings: TrainSettings) -> int:
    """Optimiser steps of the whole run: all epochs, capped by `max_steps`."""
    steps_per_epoch = math.ceil(len(loader) / max(1, processes) / settings.grad_accum)
    total = settings.epochs * steps_per_epoch
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    return total


def _optimiser(model: torch.nn.Module, settings: TrainSettings, total: int, processes: int):
    """AdamW and its schedule: linear warm-up, then cosine decay to 5% of the learning rate."""
    optimizer = torch.optim.AdamW(_trainable(model), lr=settings.lr, weight_decay=settings.weight_decay)
    # accelerate's scheduler wrapper steps the schedule once per process for each optimiser step,
    # so the schedule is laid out in those units: the same curve for 1 or N processes.
    per_step = max(1, processes)
    warmup = max(1, int(settings.warmup_frac * total)) * per_step
    sched_total = max(1, total) * per_step
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 0.5 * (1 + math.cos(math.pi * min(1.0, s / sched_total)))))
    return optimizer, scheduler


class _Loop:
    """The prepared objects of one training run, its resumable state and its checkpoint files.

    `generator` draws the batch order: each epoch's iterator takes its seed and permutation from it,
    so a checkpoint keeps its state as it was when the current epoch began (`epoch_order`), and a
    resumed run draws that epoch's order again before skipping the batches it already saw.
    """

    def __init__(self, accelerator, model, optimizer, loader, scheduler, settings: TrainSettings, total: int,
                 out_dir: Path, generator: torch.Generator, val_examples: Sequence[dict] = (), pad_id: int = 0):
        self.accelerator, self.model, self.optimizer = accelerator, model, optimizer
        self.loader, self.scheduler, self.settings, self.total = loader, scheduler, settings, total
        self.val_examples, self.pad_id = list(val_examples), pad_id
        self.generator = generator
        self.epoch_order = self.generator.get_state()
        self.ckpt = out_dir / "checkpoint"
        self.staging = out_dir / ".checkpoint.tmp"
        self.best_file = out_dir / BEST_WEIGHTS
        self.state_file = out_dir / "train_state.json"
        self.state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "loss_history": [], "val_history": [],
                      "best_step": None}
        self.bar = None
        self.curves = None  # TensorBoard writer of the main process, opened by `run`

    def restore(self, log) -> int | None:
        """Load the checkpoint when there is one; the step it resumes from, or None.

        Raises:
            DataError: for an older version's checkpoint (pickles), naming the file it does not open.
        """
        if not self.ckpt.exists():
            return None
        accelerator = self.accelerator
        self.state, accelerator.step = train_checkpoint.read_checkpoint(
            self.ckpt, process_index=accelerator.process_index, processes=accelerator.num_processes,
            generator=self.generator, model=accelerator.unwrap_model(self.model), optimizer=self.optimizer,
            scheduler=self.scheduler, scaler=accelerator.scaler)
        self.epoch_order = self.generator.get_state()
        log(f"resuming from step {self.state['step']} (epoch {self.state['epoch']})")
        return self.state["step"]

    def save(self) -> None:
        """Write the checkpoint beside the old one and swap it in whole: an interruption leaves one or the other."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        # Mid-epoch, the batch order as the epoch began: a resumed run draws it again and skips what it saw.
        order = self.epoch_order if self.state["batch_in_epoch"] else self.generator.get_state()
        train_checkpoint.write_checkpoint(
            self.staging, process_index=accelerator.process_index, is_main=accelerator.is_main_process,
            batch_order=order, model=accelerator.unwrap_model(self.model), optimizer=self.optimizer,
            scheduler=self.scheduler, scaler=accelerator.scaler, loop=self.state, accelerator_step=accelerator.step,
            processes=accelerator.num_processes)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            old = self.ckpt.with_name(".checkpoint.old")
            shutil.rmtree(old, ignore_errors=True)
            if self.ckpt.exists():
                self.ckpt.rename(old)
            self.staging.rename(self.ckpt)
            shutil.rmtree(old, ignore_errors=True)
            storage.write_json(self.state_file, self.state)
        if self.curves is not None:
            self.curves.flush()

    def run(self) -> None:
        """Train epoch after epoch until `total` steps or the last epoch; checkpoint after each epoch."""
        state = self.state
        self.bar = progress_bar(total=self.total, initial=state["step"], desc="train",
                                disable=not self.accelerator.is_main_process)
        if self.accelerator.is_main_process:  # loss and lr per step under <run>/tensorboard, resume-safe
            self.curves = open_curves(self.ckpt.parent, state["step"])
        done = state["step"] >= self.total
        while not done and state["epoch"] < self.settings.epochs:
            done = self.epoch()
            if not done or state["batch_in_epoch"] >= len(self.loader):
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
            self.save()
        self.bar.close()
        if self.curves is not None:
            self.curves.close()

    def epoch(self) -> bool:
        """The rest of the current epoch (skipping the batches a resumed run already saw); True once at `total`."""
        accelerator, state, settings = self.accelerator, self.state, self.settings
        epoch_loader = self.loader
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(state["epoch"])
        self.epoch_order = self.generator.get_state()
        if state["batch_in_epoch"]:
            epoch_loader = accelerator.skip_first_batches(self.loader, state["batch_in_epoch"])
        for batch in epoch_loader:
            loss = self.step(batch)
            state["batch_in_epoch"] += 1
            if accelerator.sync_gradients:
                state["step"] += 1
                value = accelerator.gather(loss.detach()[None]).mean().item()
                state["loss_history"].append([state["step"], round(value, 5)])
                if self.curves is not None:
                    self.curves.add_scalar("train/loss", value, state["step"])
                    self.curves.add_scalar("train/lr", self.scheduler.get_last_lr()[0], state["step"])
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{value:.3f}")
                at_end = state["step"] >= self.total
                if self.val_examples and (state["step"] % settings.eval_every == 0 or at_end):
                    self.evaluate()
                if state["step"] % settings.save_every == 0:
                    self.save()
                if at_end:
                    return True
        return False

    def evaluate(self) -> None:
        """The val loss now; the trainable weights are kept in `BEST_WEIGHTS` when it is the lowest so far."""
        state = self.state
        value = round(labelled_loss(self.model, self.val_examples, self.pad_id, self.settings.batch_size), 5)
        state.setdefault("val_history", []).append([state["step"], value])
        if self.curves is not None:
            self.curves.add_scalar("val/loss", value, state["step"])
        best = min(v for _, v in state["val_history"])
        if value <= best and self.accelerator.is_main_process:
            tmp = self.best_file.with_name(self.best_file.name + ".tmp")
            save_file(_trainable_state(self.accelerator.unwrap_model(self.model)), str(tmp))
            tmp.replace(self.best_file)
            state["best_step"] = state["step"]
        self.bar.set_postfix(val=f"{value:.3f}")

    def step(self, batch: dict) -> torch.Tensor:
        """One forward/backward pass; the optimiser steps when the accumulation is complete."""
        accelerator = self.accelerator
        with accelerator.accumulate(self.model):
            loss = self.model(**loss_inputs(batch)).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and self.settings.max_grad_norm:
                accelerator.clip_grad_norm_(_trainable(self.model), self.settings.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        return loss


def train(
    model: torch.nn.Module,
    examples: Sequence[dict],
    pad_id: int,
    out_dir: str | Path,
    settings: TrainSettings | None = None,
    *,
    resume: bool = True,
    val_examples: Sequence[dict] = (),
    log=print,
) -> dict:
    """Train on encoded examples with accelerate; checkpoint to ``out_dir/checkpoint``; resume from it exactly.

    With `val_examples` the val loss is measured every ``settings.eval_every`` steps and at the last
    one, and the run ends with the trainable weights of the lowest val loss: the number of steps is
    chosen by the val curve, not fixed in advance.

    The same function runs in one process or under ``accelerate launch`` (DDP across processes);
    each process sees its own shard of the batches. A resumed run ends with the weights of an
    uninterrupted one: the checkpoint (`train_checkpoint`, no pickles) holds the model, optimiser,
    schedule, every generator and the position in the epoch.

    Returns:
        {"steps", "epochs", "loss_history": [[step, loss], ...], "val_history": [[step, loss], ...],
        "best_step" (the step whose weights the model holds; None without val examples), "seconds",
        "resumed_from", "processes", "is_main_process"}.

    Raises:
        ParameterError: under DeepSpeed (its checkpoints are pickles).
        DataError: when ``out_dir/checkpoint`` is an older version's (pickles: not opened) or does not fit.
    """
    settings = settings or TrainSettings()
    # cpu=True without CUDA: under `accelerate launch --multi_gpu` (torchrun) that selects DDP over gloo.
    accelerator = Accelerator(gradient_accumulation_steps=settings.grad_accum,
                              mixed_precision=settings.mixed_precision, cpu=not torch.cuda.is_available())
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ParameterError("the Thinking Model does not train under DeepSpeed: its checkpoints are pickles, which "
                             "a run folder may not hold (issue 27); fix: launch with DDP instead "
                             "(accelerate launch --multi_gpu --num_processes N -m idiff_lib.cli think train ...)")
    set_seed(settings.seed)
    loader = _data_loader(examples, pad_id, settings)
    generator = loader.generator  # the batch order's; accelerate's prepared loader draws from it too
    total = _total_steps(loader, accelerator.num_processes, settings)
    optimizer, scheduler = _optimiser(model, settings, total, accelerator.num_processes)
    model.train()
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    loop = _Loop(accelerator, model, optimizer, loader, scheduler, settings, total, Path(out_dir), generator,
                 val_examples, pad_id)
    resumed_from = loop.restore(log) if resume else None
    t0 = time.monotonic()
    loop.run()
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(loop.model)
    model.eval()
    state = loop.state
    if state.get("best_step") is not None and loop.best_file.exists():
        best = load_file(str(loop.best_file))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in best:
                    param.copy_(best[name].to(param.device, param.dtype))
    return {"steps": state["step"], "epochs": state["epoch"], "loss_history": state["loss_history"],
            "val_history": state.get("val_history", []), "best_step": state.get("best_step"),
            "seconds": round(time.monotonic() - t0, 2), "resumed_from": resumed_from,
            "processes": accelerator.num_processes, "is_main_process": accelerator.is_main_process}
