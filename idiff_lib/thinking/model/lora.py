"""LoRA adapters on a Thinking Model's linear layers (Hu et al., ICLR 2022, arXiv:2106.09685), through peft."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch

from idiff_lib.core.errors import ParameterError


@dataclass
class LoraSettings:
    """LoRA on the language model's linear layers (and optionally the vision tower and aligner).

    Attributes:
        r / alpha / dropout: the LoRA rank, scaling numerator and dropout.
        train_vision: also adapt the vision tower's and the aligner's (merger's) linear layers.
        target_modules: explicit module names; None = every linear layer chosen by `lora_target_modules`.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    train_vision: bool = False
    target_modules: tuple[str, ...] | None = None

    def to_peft(self, model: torch.nn.Module):
        from peft import LoraConfig  # deferred: heavy

        targets = list(self.target_modules or lora_target_modules(model, self.train_vision))
        # a model whose projector starts untrained (the small VLM) names it to be trained in full
        extra = list(getattr(model, "lora_modules_to_save", None) or []) or None
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          bias="none", task_type="CAUSAL_LM", modules_to_save=extra)


_VISION_KEYS = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "merger")


def lora_target_modules(model: torch.nn.Module, train_vision: bool = False) -> list[str]:
    """The full names of the linear layers to adapt, chosen from ``model.named_modules()``.

    The output head (``lm_head``) is never adapted; vision tower and aligner layers only with
    `train_vision`.
    """
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.split(".")[-1] == "lm_head":
            continue
        if any(k in name.split(".") for k in _VISION_KEYS) and not train_vision:
            continue
        names.append(name)
    if not names:
        raise ParameterError(f"{type(model).__name__} has no linear layers to adapt with LoRA")
    return names


@contextlib.contextmanager
def peft_reads_old_flag():
    """Around a peft wrap or load: peft reads ``is_gradient_checkpointing``, a name transformers 5 deprecated
    (a FutureWarning per model); that one warning is dropped, every other still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def apply_lora(model: torch.nn.Module, settings: LoraSettings | None = None, log=print):
    """Wrap `model` with LoRA adapters and log ``print_trainable_parameters()``."""
    from peft import get_peft_model  # deferred: heavy

    settings = settings or LoraSettings()
    # transformers 5 renamed the flag (the old name warns); older versions have only the old one
    checkpointing = getattr(model, "is_activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = getattr(model, "is_gradient_checkpointing", False)
    if checkpointing:
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need an input grad
    with peft_reads_old_flag():
        peft_model = get_peft_model(model, settings.to_peft(model))
    trainable, total = peft_model.get_nb_trainable_parameters()
    log(f"LoRA r={settings.r}: trainable params: {trainable:,} || all params: {total:,} || "
        f"trainable%: {100 * trainable / total:.4f}")
    return peft_model
