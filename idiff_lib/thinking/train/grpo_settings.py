"""What a GRPO run trains with (`GrpoSettings`): the RAIM challenge baseline's recipe, sized for the cpu profile.

Notebook 03's ``grpo_*`` settings build it (`ThinkingSettings.grpo_settings`); the trainer is
`idiff_lib.thinking.train.grpo`.
"""

from __future__ import annotations

import dataclasses

from idiff_lib.core.errors import ParameterError


@dataclasses.dataclass
class GrpoSettings:
    """What a GRPO run trains with; the defaults are the cpu profile (a short schedule on 2 cores).

    Attributes:
        prompts: train on the first N prompts (0 = all).
        num_generations / temperature / beta: the group size, sampling temperature and KL weight.
        max_completion_length: generated tokens per completion.
        lr / epochs / batch_size: the optimiser; ``batch_size`` counts completions and must be a
            multiple of ``num_generations``.
        lora / lora_r / lora_alpha: train LoRA adapters (cpu) or all weights (the baseline's way).
        accuracy_weight / format_weight / consistency_weight: the reward weights.
        logging_steps / save_steps / max_steps: logging, checkpoints, a step cap (-1 = none).
        seed: sampling and initialisation.
    """

    prompts: int = 20  # ~20 prompts x 4 generations fit the cpu profile's 8 minutes (issue 18's measurements)
    num_generations: int = 4  # the baseline's group size
    temperature: float = 0.9  # the baseline's sampling temperature
    beta: float = 0.04  # the baseline's KL weight
    max_completion_length: int = 256  # cpu: 80 completions x 256 tokens ~ 5 min at 72 tokens/s (baseline: 512)
    lr: float = 1e-5  # LoRA moves fewer weights than the baseline's full fine-tuning at 1e-6
    epochs: int = 1  # the baseline runs 10 on GPUs; one pass shows the mechanism on CPU
    batch_size: int = 4  # one prompt's group per step
    lora: bool = True  # cpu: adapters only; the paper profile may train all weights, as the baseline
    lora_r: int = 16
    lora_alpha: int = 32
    accuracy_weight: float = 1.0  # the baseline's base_acc weight
    format_weight: float = 0.5  # the baseline's format_acc weight
    consistency_weight: float = 0.0  # ours, off by default: the baseline has no such reward
    logging_steps: int = 1  # every step, for the reward curves
    save_steps: int = 5  # checkpoints a killed run resumes from
    max_steps: int = -1  # -1 = run the epochs
    seed: int = 0

    def validate(self) -> "GrpoSettings":
        for name in ("num_generations", "max_completion_length", "epochs", "batch_size", "logging_steps",
                     "save_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise ParameterError(f"GrpoSettings.{name} must be at least 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ParameterError("GrpoSettings.num_generations must be at least 2: GRPO compares completions "
                                 "within a group")
        if self.batch_size % self.num_generations:
            raise ParameterError(f"GrpoSettings.batch_size ({self.batch_size}) must be a multiple of "
                                 f"num_generations ({self.num_generations})")
        if min(self.accuracy_weight, self.format_weight, self.consistency_weight) < 0:
            raise ParameterError("GrpoSettings reward weights may not be negative")
        if self.temperature <= 0 or self.beta < 0 or self.lr <= 0:
            raise ParameterError("GrpoSettings: temperature and lr must be positive, beta not negative")
        return self
