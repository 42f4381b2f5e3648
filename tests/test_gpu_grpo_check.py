"""The GPU GRPO check (`benchmarks/gpu_grpo_check.py`): its tokenizer, its rows, and a CPU smoke run of the setup."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from idiff_lib.thinking.train.grpo_rows import check_grpo_rows, label_leaks


@pytest.fixture(scope="module")
def check():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_grpo_check.py"
    spec = importlib.util.spec_from_file_location("gpu_grpo_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_word_tokenizer_covers_the_vocabulary_and_keeps_qwens_special_ids(check):
    tokenizer = check.word_tokenizer(151936)
    assert len(tokenizer) == 151936
    assert tokenizer("w5 w151935")["input_ids"] == [5, 151935]
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (151645, 151643)
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert tokenizer.decode([7, 151645, 9], skip_special_tokens=True) == "w7 w9"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        check.word_tokenizer(1000)  # Qwen's special ids lie above 151000


def test_check_rows_pass_the_grpo_checks_and_have_the_prompt_length(check):
    rows = check.grpo_check_rows(4, prompt_tokens=12, vocab_size=151936)
    check_grpo_rows(rows)
    assert label_leaks(rows) == []
    assert [r["solution"].count("<answer>A</answer>") for r in rows] == [1, 0, 1, 0]
    tokenizer = check.word_tokenizer(151936)
    assert all(len(tokenizer(r["prompt"])["input_ids"]) == 12 for r in rows)


def test_check_refuses_bad_schedules(check):
    with pytest.raises(SystemExit):
        check.parse_args(["--steps", "0"])
    args = check.parse_args([])
    assert (args.arch, args.generations, args.completion_tokens) == ("qwen3-vl-8b", 4, 512)


def test_gpu_overrides_are_valid_grpo_config_fields(check, tmp_path):
    from idiff_lib.thinking.train.grpo import grpo_config
    from idiff_lib.thinking.train.grpo_settings import GrpoSettings

    overrides = check.config_overrides(on_gpu=True)
    assert overrides["bf16"] and not overrides["use_cpu"]
    cpu_safe = {k: v for k, v in overrides.items() if k not in ("bf16", "use_cpu")}  # bf16 needs a GPU to validate
    config = grpo_config(GrpoSettings(), tmp_path, **cpu_safe)
    assert config.gradient_checkpointing and config.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert not check.config_overrides(on_gpu=False).get("bf16")


@pytest.mark.slow
def test_gpu_grpo_check_setup_runs_on_cpu_with_a_tiny_config(check, tmp_path):
    """Two GRPO steps (one untimed) of the tiny Qwen3-VL through the project's TRL trainer."""
    out = tmp_path / "r.json"
    result = check.main(["--tiny", "--device", "cpu", "--steps", "1", "--warmup", "1", "--prompt-tokens", "8",
                         "--completion-tokens", "4", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["arch"] == "qwen3-vl-8b" and result["config"] == "qwen3_vl_8b.json (tiny)"
    assert result["timed_steps"] == 1 and len(result["step_seconds_all"]) == 2
    assert 0 < result["generate_seconds_per_step"] < result["step_seconds"]
    assert 0 < result["completion_mean_tokens"] <= 4
    assert {"rewards/accuracy/mean", "rewards/format/mean"} <= set(result["rewards_logged"])
    assert "trainable params" in result["lora"] and result["peak_memory_gib"] is None
