"""GPU check of GRPO for the Thinking Model at the paper's scale: a few TRL GRPOTrainer steps, LoRA r=16, bf16.

Builds a randomly initialised Qwen3-VL-8B (the paper's Thinking Model, public dimensions from
``idiff_lib/configs/qwen3_vl_8b.json``; ``--arch qwen2.5-vl-7b`` for the older one; no download), attaches
LoRA r=16 to every linear layer of the language model as the GRPO step does
(`idiff_lib.thinking.model.lora.apply_lora`), and runs a few steps of the project's
`idiff_lib.thinking.train.grpo.grpo_trainer` (TRL's ``GRPOTrainer`` with our accuracy and format rewards,
the RAIM baseline's group of 4 completions at temperature 0.9, KL beta 0.04, at most 512 tokens each)
with gradient checkpointing. It reports seconds per GRPO step (generation, rewards, the policy's and
the KL reference's log-probabilities, backward and AdamW), the part of it spent generating, the
completion tokens/s, and the peak GPU memory.

Prompts are text, as in notebook 03's GRPO step (`idiff_lib.thinking.train.grpo_run`: the S3 prompt writes
the images' evidence out as cue text). No tokenizer is downloaded: `word_tokenizer` maps every id of the
model's vocabulary to a word ``w<id>`` and keeps Qwen's special tokens at their ids, so TRL can encode
the prompts and decode any sampled id. Random weights almost never sample the end token, so every
completion runs to the length cap: the worst case for time and memory. Timings from random weights are
valid for speed and memory, not for rewards.

Usage (GPU):  python benchmarks/gpu_grpo_check.py --out benchmarks/results/gpu_grpo_check.json
CPU smoke test of the setup: python benchmarks/gpu_grpo_check.py --tiny --device cpu --steps 1 --warmup 0
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from gpu_thinking_check import (
    ARCHES,
    CONFIG_DIR,
    DEFAULT_ARCH,
    build_model,
    load_config,
    run_check,
)

# Qwen's special tokens (the same ids in Qwen2.5-VL and Qwen3-VL).
QWEN_SPECIAL_TOKENS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                       "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|vision_pad|>": 151654,
                       "<|image_pad|>": 151655, "<|video_pad|>": 151656}
LOW_ID = 1000  # prompt words are drawn above this id


def word_tokenizer(vocab_size: int, special_tokens: dict[str, int] | None = None):
    """A whitespace word-level tokenizer covering ids ``0 .. vocab_size - 1`` (no download).

    Every id is the word ``w<id>`` except the special tokens, which keep their ids, so any id a
    random model samples decodes, and ``"w5 w7"`` encodes to ``[5, 7]``.

    Args:
        vocab_size: the model's vocabulary size (``config.text_config.vocab_size``).
        special_tokens: token -> id (default: Qwen's); ``<|im_end|>`` is the end token and
            ``<|endoftext|>`` the padding.

    Raises:
        ValueError: a special token's id outside the vocabulary.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = dict(QWEN_SPECIAL_TOKENS if special_tokens is None else special_tokens)
    outside = {t: i for t, i in special.items() if not 0 <= i < vocab_size}
    if outside:
        raise ValueError(f"special token ids {outside} lie outside the vocabulary of {vocab_size}")
    by_id = {i: t for t, i in special.items()}
    vocab = {by_id.get(i, f"w{i}"): i for i in range(vocab_size)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in special
                                                                if t not in ("<|im_end|>", "<|endoftext|>")]})
    return tokenizer


def grpo_check_rows(n: int, prompt_tokens: int, vocab_size: int, seed: int = 0) -> list[dict]:
    """`n` GRPO rows: a prompt of `prompt_tokens` random words and a solution in the baseline's format."""
    from idiff_lib.data.pairs import format_completion

    rng = np.random.default_rng(seed)
    high = min(vocab_size, 150000)
    rows = []
    for i in range(n):
        answer = "AB"[i % 2]
        solution = format_completion([f"Global Overall: Image {answer} is better."], answer)
        words = " ".join(f"w{t}" for t in rng.integers(LOW_ID, high, prompt_tokens))
        rows.append({"id": f"check{i}", "prompt": words, "solution": solution})
    return rows


class _StepTimer:
    """Wall time of each trainer step and of the generate calls inside it (synchronised on CUDA)."""

    def __init__(self, device: str):
        self.device = device
        self.steps: list[float] = []
        self.generate: list[float] = []
        self._step_generate = 0.0
        self._t0 = 0.0

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class StepTimer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer.sync()
                timer._step_generate = 0.0
                timer._t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.sync()
                timer.steps.append(time.perf_counter() - timer._t0)
                timer.generate.append(timer._step_generate)

        return StepTimer()

    def wrap_generate(self, model) -> None:
        """Time `model.generate` (the instance TRL's ``unwrap_model_for_generation`` hands back)."""
        inner = model.generate

        def generate(*args, **kwargs):
            self.sync()
            t = time.perf_counter()
            out = inner(*args, **kwargs)
            self.sync()
            self._step_generate += time.perf_counter() - t
            return out

        model.generate = generate


def _machine(device: str) -> dict:
    import peft
    import transformers
    import trl

    info = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
            "gpus": torch.cuda.device_count() if device.startswith("cuda") else 0,
            "cuda": torch.version.cuda if device.startswith("cuda") else None, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "peft": peft.__version__}
    return info


def config_overrides(on_gpu: bool) -> dict:
    """The ``GRPOConfig`` fields the check sets beside `GrpoSettings`: no checkpoints, no TensorBoard, and on a
    GPU bf16 with activation checkpointing (non-reentrant, as LoRA needs)."""
    import dataclasses

    from trl import GRPOConfig

    overrides = {"report_to": [], "save_strategy": "no", "use_cpu": not on_gpu, "bf16": on_gpu}
    if on_gpu:  # transformers 5 renamed gradient_checkpointing (the old name warns); older versions have only that
        fields = {f.name for f in dataclasses.fields(GRPOConfig)}
        name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
        overrides.update({name: True, f"{name}_kwargs": {"use_reentrant": False}})
    return overrides


def _trainer(model, tokenizer, rows, args: argparse.Namespace, out_dir: str, on_gpu: bool):
    """The project's GRPO trainer (`grpo_trainer`) with the check's schedule and `config_overrides`."""
    from idiff_lib.scoring.rewards import RewardLog
    from idiff_lib.thinking.train.grpo import grpo_trainer
    from idiff_lib.thinking.train.grpo_settings import GrpoSettings

    settings = GrpoSettings(prompts=0, num_generations=args.generations, batch_size=args.batch,
                            max_completion_length=args.completion_tokens, lora_r=16, lora_alpha=32,
                            max_steps=args.warmup + args.steps, save_steps=10**6, seed=0).validate()
    trainer = grpo_trainer(model, tokenizer, rows, settings, out_dir, log=RewardLog(), **config_overrides(on_gpu))
    return trainer, settings


def run(args: argparse.Namespace) -> dict:
    """Build the model, run `args.warmup + args.steps` GRPO steps, and return the measurements."""
    from idiff_lib.thinking.model.lora import LoraSettings, apply_lora

    device, on_gpu = args.device, args.device.startswith("cuda")
    dtype = torch.bfloat16 if on_gpu else torch.float32
    config = load_config(args.config, tiny=args.tiny, arch=args.arch)
    vocab = config.text_config.vocab_size
    t0 = time.perf_counter()
    model = build_model(config, device, dtype)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    tokenizer = word_tokenizer(vocab)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    lines: list[str] = []
    model = apply_lora(model, LoraSettings(r=16, alpha=32, dropout=0.05), log=lines.append)
    n_prompts = (args.warmup + args.steps) * args.batch // args.generations
    rows = grpo_check_rows(n_prompts, args.prompt_tokens, vocab)
    timer = _StepTimer(device)
    with tempfile.TemporaryDirectory() as out_dir:
        trainer, settings = _trainer(model, tokenizer, rows, args, out_dir, on_gpu)
        trainer.add_callback(timer.callback())
        timer.wrap_generate(trainer.model)
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    logged = [h for h in trainer.state.log_history if "completions/mean_length" in h][args.warmup:]
    steps, gen = timer.steps[args.warmup:], timer.generate[args.warmup:]
    step_s, gen_s = float(np.median(steps)), float(np.median(gen))
    mean_len = float(np.mean([h["completions/mean_length"] for h in logged])) if logged else float("nan")
    completion_tokens = mean_len * args.batch
    return {
        **_machine(device),
        "dtype": str(dtype).replace("torch.", ""), "arch": args.arch,
        "config": Path(args.config or CONFIG_DIR / ARCHES[args.arch][0]).name + (" (tiny)" if args.tiny else ""),
        "params_b": round(n_params / 1e9, 3), "lora": lines[-1] if lines else "",
        "build_seconds": round(build_s, 1), "prompt_tokens": args.prompt_tokens,
        "completions_per_step": args.batch, "num_generations": settings.num_generations,
        "max_completion_tokens": args.completion_tokens, "beta": settings.beta, "temperature": settings.temperature,
        "gradient_checkpointing": on_gpu, "timed_steps": len(steps),
        "step_seconds": round(step_s, 3),
        "step_seconds_all": [round(s, 3) for s in timer.steps],
        "generate_seconds_per_step": round(gen_s, 3),
        "completion_mean_tokens": round(mean_len, 1),
        "generate_completion_tokens_per_second": round(completion_tokens / gen_s, 1) if gen_s > 0 else None,
        "step_completion_tokens_per_second": round(completion_tokens / step_s, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
        "rewards_logged": sorted(k for k in (logged[-1] if logged else {}) if k.startswith("rewards/")),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=DEFAULT_ARCH, choices=sorted(ARCHES),
                   help="model dimensions: the paper's Qwen3-VL-8B (default) or Qwen2.5-VL-7B")
    p.add_argument("--config", default=None, help="a config JSON in place of the arch's own")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="shrink the model (CPU smoke test of this script)")
    p.add_argument("--steps", type=int, default=3, help="timed GRPO steps")
    p.add_argument("--warmup", type=int, default=1, help="GRPO steps run first and not timed")
    p.add_argument("--generations", type=int, default=4, help="completions per prompt (the baseline's 4)")
    p.add_argument("--batch", type=int, default=4, help="completions per step, a multiple of --generations")
    p.add_argument("--prompt-tokens", type=int, default=400, help="text tokens per prompt")
    p.add_argument("--completion-tokens", type=int, default=512, help="max tokens per completion (the baseline's 512)")
    p.add_argument("--out", help="write the results JSON here")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be at least 1 and --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> dict:
    return run_check(parse_args(argv), run)


if __name__ == "__main__":
    main()
