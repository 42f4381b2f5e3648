"""GRPO for the Thinking Model: TRL's ``GRPOTrainer`` around our rewards.

The recipe is the NTIRE 2026 RAIM challenge baseline's (``narthchin/RAIM-PIQA`` ``scripts/grpo.sh``,
MIT): Group Relative Policy Optimization (Shao et al., "DeepSeekMath", arXiv:2402.03300) with the
rewards ``base_acc`` (weight 1.0) and ``format_acc`` (0.5), KL beta 0.04, 4 generations per prompt
at temperature 0.9. The rewards are `idiff_lib.scoring.rewards`' (checked against the baseline's);
our `consistency_reward` is a third one, weight 0 unless asked for.

The RL loop is TRL's (`trl.GRPOTrainer`). Its settings are `idiff_lib.thinking.train.grpo_settings`;
its rows are checked by `idiff_lib.thinking.train.grpo_rows` before anything trains or is exported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from datasets import Dataset
from peft import LoraConfig
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.scoring.rewards import REWARD_LOG, RewardLog, accuracy_reward, consistency_reward, format_reward
from idiff_lib.thinking.train.grpo_rows import check_grpo_rows, label_leaks
from idiff_lib.thinking.train.grpo_settings import GrpoSettings


# ---------------------------------------------------------------------------------------------
# TRL: reward functions with its signature, the config, the trainer
# ---------------------------------------------------------------------------------------------
def _completion_text(completion) -> object:
    """TRL hands a conversational completion as ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, list) and completion and isinstance(completion[0], Mapping):
        return completion[0].get("content")
    return completion


def trl_reward_functions(settings: GrpoSettings, log: RewardLog | None = None) -> tuple[list[Callable], list[float]]:
    """Our rewards as TRL reward functions (``f(completions, solution, **kw) -> list[float]``) and their weights.

    Rewards whose weight is 0 are left out (TRL still computes every function it is given).
    Completions TRL cannot decode reach the rewards as they are and are counted in `log`.
    """
    log = REWARD_LOG if log is None else log

    def accuracy(completions, solution, **kwargs) -> list[float]:
        return [accuracy_reward(_completion_text(c), s, log) for c, s in zip(completions, solution)]

    def format_(completions, **kwargs) -> list[float]:
        return [format_reward(_completion_text(c), log) for c in completions]

    def consistency(completions, **kwargs) -> list[float]:
        return [consistency_reward(_completion_text(c), log) for c in completions]

    format_.__name__ = "format"  # TRL names the logged curve after the function: rewards/format/mean
    chosen = [(f, w) for f, w in ((accuracy, settings.accuracy_weight), (format_, settings.format_weight),
                                  (consistency, settings.consistency_weight)) if w > 0]
    if not chosen:
        raise ParameterError("GrpoSettings: every reward weight is 0. fix: give accuracy_weight or format_weight > 0")
    return [f for f, _ in chosen], [w for _, w in chosen]


def grpo_config(settings: GrpoSettings, out_dir: str | Path, **overrides):
    """TRL's ``GRPOConfig`` for `settings` (field names as in trl 1.16), written under `out_dir`.

    `overrides` are further ``GRPOConfig`` fields (e.g. ``report_to=[]`` in tests).
    """
    settings.validate()
    _, weights = trl_reward_functions(settings)
    kwargs = dict(
        output_dir=str(out_dir), learning_rate=settings.lr, num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size, num_generations=settings.num_generations,
        temperature=settings.temperature, beta=settings.beta, max_completion_length=settings.max_completion_length,
        reward_weights=weights, logging_steps=settings.logging_steps, save_steps=settings.save_steps,
        max_steps=settings.max_steps, seed=settings.seed, use_cpu=True, bf16=False, disable_tqdm=True,
        report_to=["tensorboard"],  # event files under out_dir/runs/, beside the checkpoints
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def _reward_log_callback(log: RewardLog):
    """A callback that adds the refused-completion counts to every log entry (history and TensorBoard)."""
    class RewardLogCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            counts = {"refused_completions": sum(log.counts.values()),
                      **{f"refused/{k}": v for k, v in log.summary().items()}}
            if logs is not None:
                logs.update(counts)
            if state.log_history:
                state.log_history[-1].update(counts)

    return RewardLogCallback()


def grpo_trainer(model, processing_class, rows: Sequence[Mapping], settings: GrpoSettings, out_dir: str | Path,
                 source: str | Path | None = None, log: RewardLog | None = None, **config_overrides):
    """A ``trl.GRPOTrainer`` on checked `rows` (``prompt`` + ``solution``), LoRA when `settings.lora`.

    A model that already holds LoRA adapters (an S4 run, or `prepare_model` with ``lora``) trains
    those; new adapters are added only to a model without any.

    Every log entry also carries ``refused_completions`` (empty or non-UTF-8 completions the rewards
    gave 0, from `log`), so none is rewarded 0 in silence.
    """
    check_grpo_rows(rows, source)
    leaks = label_leaks(rows)
    if leaks:
        raise DataError(source, leaks[0], "build answer-aware prompts from the Answer Model's predictions")
    limit = settings.prompts or len(rows)
    data = Dataset.from_list([{"prompt": r["prompt"], "solution": r["solution"]} for r in rows[:limit]])
    log = REWARD_LOG if log is None else log
    funcs, _ = trl_reward_functions(settings, log)
    peft_config = None
    if settings.lora and not hasattr(model, "peft_config"):  # a model with adapters trains those

        peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, processing_class=processing_class, reward_funcs=funcs, train_dataset=data,
                          args=grpo_config(settings, out_dir, **config_overrides), peft_config=peft_config)
    # First, so that the TensorBoard writer sees the counts too.
    trainer.callback_handler.callbacks.insert(0, _reward_log_callback(log))

    trainer.remove_callback(PrinterCallback)  # a dict per step on stdout; the log history and TensorBoard keep them
    return trainer
