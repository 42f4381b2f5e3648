"""Training rows for ms-swift (the iDiff recipe's trainer): SFT and GRPO shapes.

A GRPO export is three files: the dataset (rows with ``solution``), the reward plugin for
``--external_plugins`` and a ``swift rlhf`` script with the challenge baseline's settings. Its prompts
never carry the reference answer: answer-aware (S4) prompts take the Answer Model's verdicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.scoring.rewards import BASELINE_PATTERNS
from idiff_lib.thinking.prompting import prompts as prompts_mod  # alias: 'prompts' names built prompts in this module
from idiff_lib.thinking.train.grpo_rows import check_grpo_rows, label_leaks


def swift_records(
    pairs: Sequence[pairs_mod.Pair],
    prompts: Mapping[str, prompts_mod.Prompt],
    shape: str = "sft",
) -> list[dict]:
    """Rows for ms-swift: ``{"messages": [...], "images": [abs paths]}`` (+ ``"solution"`` for GRPO).

    ms-swift's multimodal format takes ``<image>`` placeholders in the user text and the image
    paths in ``images``; an SFT row ends with the assistant's completion, a GRPO row carries the
    reference in ``solution`` for its accuracy/format rewards.
    """
    if shape not in ("sft", "grpo"):
        raise ParameterError(f"export shape must be 'sft' or 'grpo', got {shape!r}")
    rows = []
    for pair in pairs:
        if pair.answer is None:
            raise pair.error("cannot export an unlabeled pair for training", "export a labelled split")
        images = [str(pair.image_path(i).resolve()) for i in range(len(pair.image_refs))]
        messages = prompts[pair.id].records()
        completion = pairs_mod.format_completion(pair.thinking, pair.answer)
        row: dict[str, Any] = {"id": pair.id, "messages": messages, "images": images}
        if shape == "sft":
            row["messages"] = messages + [{"role": "assistant", "content": completion}]
        else:
            row["solution"] = completion
        rows.append(row)
    return rows


# The reward plugin for ``swift rlhf --external_plugins``: the baseline's two ORMs, with the regular
# expressions taken from `idiff_lib.scoring.rewards` when the file is written, so the logic cannot drift
# (tests/test_grpo.py runs the written file against our functions).
_PLUGIN_TEMPLATE = '''"""Reward functions for ms-swift GRPO, written by `idiff think export-swift --shape grpo`.

The NTIRE 2026 RAIM baseline's base_acc and format_acc (narthchin/RAIM-PIQA plugins/reward_funcs.py),
with the patterns of idiff_lib.scoring.rewards; empty or non-text completions get 0.
"""
import re
from typing import List

from swift.plugin.orm import ORM, orms

ANSWER_RE = re.compile({answer!r}, re.IGNORECASE)
FORMAT_RE = re.compile({format!r})


def _letter(text):
    match = ANSWER_RE.search(text) if isinstance(text, str) else None
    return match.group(1).upper() if match else None


class IdiffAccuracy(ORM):
    def __call__(self, completions: List[str], solution: List[str] = None, **kwargs) -> List[float]:
        solution = solution if solution is not None else kwargs.get("solution", [])
        return [1.0 if _letter(s) and _letter(c) == _letter(s) else 0.0 for c, s in zip(completions, solution)]


class IdiffFormat(ORM):
    def __call__(self, completions: List[str], **kwargs) -> List[float]:
        return [1.0 if isinstance(c, str) and c.strip() and FORMAT_RE.match(c) else 0.0 for c in completions]


orms["base_acc"] = IdiffAccuracy
orms["format_acc"] = IdiffFormat
'''

# `swift rlhf` settings of the baseline's scripts/grpo.sh (RAIM-PIQA, commit 392f842).
SWIFT_GRPO_FLAGS = (
    ("rlhf_type", "grpo"), ("model_type", "qwen3_vl"), ("beta", "0.04"), ("reward_funcs", "base_acc format_acc"),
    ("reward_weights", "1.0 0.5"), ("train_type", "full"), ("torch_dtype", "bfloat16"),
    ("load_from_cache_file", "true"), ("max_completion_length", "512"), ("num_train_epochs", "10"),
    ("per_device_train_batch_size", "1"), ("learning_rate", "1e-6"), ("gradient_accumulation_steps", "2"),
    ("split_dataset_ratio", "0."), ("save_steps", "25"), ("logging_steps", "1"), ("max_length", "2048"),
    ("warmup_ratio", "0.05"), ("dataloader_num_workers", "4"), ("dataset_num_proc", "4"), ("num_generations", "4"),
    ("temperature", "0.9"), ("deepspeed", "zero3"), ("log_completions", "true"),
)


def reward_plugin_source() -> str:
    """The text of the ms-swift reward plugin, built from our rewards' patterns."""
    return _PLUGIN_TEMPLATE.format(**BASELINE_PATTERNS)


def swift_grpo_command(dataset: str, plugin: str, model: str = "Qwen/Qwen3-VL-8B-Instruct",
                       output_dir: str = "output/grpo") -> str:
    """A ``swift rlhf`` shell script with the baseline's GRPO settings (4 GPUs, DeepSpeed ZeRO-3)."""
    flags = [("model", model), ("dataset", dataset), ("external_plugins", plugin), ("output_dir", output_dir)]
    lines = [f"    --{name} {value}" for name, value in flags + list(SWIFT_GRPO_FLAGS)]
    return ("#!/usr/bin/env bash\n# The RAIM baseline's GRPO recipe (scripts/grpo.sh), written by "
            "`idiff think export-swift --shape grpo`; run it from any folder.\nset -euo pipefail\n"
            'cd "$(dirname "$0")"\n'
            "MAX_PIXELS=${MAX_PIXELS:-5120000} NPROC_PER_NODE=${NPROC_PER_NODE:-4} \\\nswift rlhf \\\n"
            + " \\\n".join(lines) + "\n")


def grpo_stage(stage: str | None, have_answers: bool, have_cues: bool = False) -> tuple[str, str]:
    """The prompt stage of a GRPO export, and a note saying why.

    S4 prompts carry a verdict; in a GRPO export it must be the Answer Model's (an answers file),
    never the label the accuracy reward checks. Without one, the default is the highest stage
    without a verdict that the inputs fill: S3 with cue texts, else S1 (the expert template).

    Raises:
        ParameterError: S4 asked for without an answers file.
    """
    if stage == "S4" and not have_answers:
        raise ParameterError("export-swift --shape grpo --stage S4 needs --answers (the Answer Model's predictions): "
                             "the reference answers would give the accuracy reward its own solution. fix: pass "
                             "--answers PREDS.jsonl or a run folder, or choose --stage S0..S3")
    if stage is not None:
        return stage, f"stage {stage}"
    if have_answers:
        return "S4", "stage S4 with the Answer Model's verdicts"
    fallback = "S3" if have_cues else "S1"
    return fallback, f"stage {fallback}: no verdict in the prompt, as no --answers was given"


def write_swift_grpo(out: str | Path, rows: Sequence[dict], source: str | Path | None = None,
                     model: str = "Qwen/Qwen3-VL-8B-Instruct") -> dict[str, Path]:
    """Write the GRPO dataset `out`, the reward plugin and the ``swift rlhf`` script beside it.

    The rows are checked first (`check_grpo_rows`, `label_leaks`), so nothing is written for bad input.

    Returns:
        {"dataset", "plugin", "script"}: the paths written.
    """
    check_grpo_rows(rows, source)
    leaks = label_leaks(rows)
    if leaks:
        raise DataError(source, leaks[0], "build answer-aware prompts from the Answer Model's predictions")
    out = Path(out)
    plugin = out.with_name(out.stem + "_reward_funcs.py")
    script = out.with_name(out.stem + "_grpo.sh")
    storage.write_jsonl(out, rows)
    storage.write_text(plugin, reward_plugin_source())
    storage.write_text(script, swift_grpo_command(out.name, plugin.name, model=model))
    script.chmod(0o755)
    return {"dataset": out, "plugin": plugin, "script": script}
