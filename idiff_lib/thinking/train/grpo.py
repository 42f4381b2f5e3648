"""GRPO for the Thinking Model: the checked input, the settings, and TRL's ``GRPOTrainer`` around our rewards.

The recipe is the NTIRE 2026 RAIM challenge baseline's (``narthchin/RAIM-PIQA`` ``scripts/grpo.sh``,
MIT): Group Relative Policy Optimization (Shao et al., "DeepSeekMath", arXiv:2402.03300) with the
rewards ``base_acc`` (weight 1.0) and ``format_acc`` (0.5), KL beta 0.04, 4 generations per prompt
at temperature 0.9. The rewards are `idiff_lib.scoring.rewards`' (checked against the baseline's);
our `consistency_reward` is a third one, weight 0 unless asked for.

The RL loop is TRL's (`trl.GRPOTrainer`), imported only when a trainer is built. A GRPO row is
``{"id", "messages" or "prompt", "images"?, "solution"}``; `check_grpo_rows` refuses a row whose
``solution`` holds no ``<answer>`` letter before anything trains or is exported, and
`label_leaks` refuses prompts that carry their own solution.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping, Sequence


from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.scoring.rewards import (REWARD_LOG, RewardLog, accuracy_reward, baseline_letter, consistency_reward,
                                       format_reward, thinking_text)

# The sentence `prompts.answer_block` opens an S4 verdict with: "Answer Model verdict: Image A (Left) ...".
_VERDICT_OPENING = "Answer Model verdict: Image "
# Below this many rows, every verdict equal to its solution is no evidence of a leak.
LEAK_MIN_ROWS = 8


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


# ---------------------------------------------------------------------------------------------
# The input: every solution holds an answer, no prompt holds its solution
# ---------------------------------------------------------------------------------------------
def check_grpo_rows(rows: Sequence[Mapping], source: str | Path | None = None,
                    lines: Sequence[int | None] | None = None) -> None:
    """Refuse GRPO rows whose ``solution`` has no ``<answer>`` letter (they would be rewarded 0 in silence).

    Args:
        rows: the rows, as exported or read.
        source: the file they come from (named in the error).
        lines: each row's 1-based line in `source` (default: its position).

    Raises:
        DataError: naming the file and line of the first bad row, and how many there are.
    """
    bad = [i for i, row in enumerate(rows) if baseline_letter(row.get("solution")) is None]
    if not bad:
        return
    first = rows[bad[0]]
    line = lines[bad[0]] if lines is not None else bad[0] + 1
    more = f" ({len(bad)} of {len(rows)} rows)" if len(bad) > 1 else ""
    raise DataError(source, f"sample {first.get('id', '?')!r}: its solution holds no <answer>A|B</answer>{more}",
                    "give every GRPO row a solution '<thinking>...</thinking><answer>A</answer>'", line)


def read_grpo_file(path: str | Path) -> list[dict]:
    """A GRPO JSONL file, checked by `check_grpo_rows` (the same check as the export's)."""
    rows = storage.read_jsonl_rows(path)
    text_lines = Path(path).read_text(encoding="utf-8").splitlines()
    lines = [i + 1 for i, ln in enumerate(text_lines) if ln.strip()]
    check_grpo_rows(rows, path, lines)
    return rows


def prompt_text(row: Mapping) -> str:
    """Every text a GRPO row's prompt shows the model (system and user turns, or a plain prompt)."""
    prompt = row.get("prompt", row.get("messages", []))
    if isinstance(prompt, str):
        return prompt
    parts = []
    for message in prompt:
        content = message.get("content", "")
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
        parts.append(str(content))
    return "\n".join(parts)


def prompt_verdict(row: Mapping) -> str | None:
    """The S4 verdict a row's prompt carries ("A"/"B"), or None for a prompt without one."""
    text = prompt_text(row)
    at = text.find(_VERDICT_OPENING)
    if at < 0:
        return None
    letter = text[at + len(_VERDICT_OPENING):at + len(_VERDICT_OPENING) + 1]
    return letter if letter in ("A", "B") else None


def label_leaks(rows: Sequence[Mapping], min_rows: int = LEAK_MIN_ROWS) -> list[str]:
    """Why these GRPO prompts give away their solutions (empty when they do not).

    A prompt leaks when it quotes its solution's rationale or its ``<answer>`` tag, and a set of
    answer-aware prompts leaks when every verdict (of at least `min_rows`) equals its solution's
    letter: that is the label, not an Answer Model's prediction.
    """
    problems = []
    verdicts = []
    for row in rows:
        text, solution = prompt_text(row), str(row.get("solution", ""))
        rationale = thinking_text(solution)
        if rationale and rationale in " ".join(text.split()):
            problems.append(f"sample {row.get('id', '?')!r}: the prompt quotes the solution's rationale")
        if solution and solution in text:
            problems.append(f"sample {row.get('id', '?')!r}: the prompt quotes the solution")
        verdicts.append((prompt_verdict(row), baseline_letter(solution)))
    given = [(v, s) for v, s in verdicts if v is not None]
    if len(given) >= min_rows and all(v == s for v, s in given):
        problems.append(f"every one of {len(given)} prompt verdicts equals its solution's answer: the prompts "
                        "carry the labels, not the Answer Model's predictions")
    return problems


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
    from trl import GRPOConfig

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
    from transformers import TrainerCallback

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
    from datasets import Dataset
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

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
