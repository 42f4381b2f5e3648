"""Issue 28: known, harmless library messages are dropped where the workbench triggers them, each by
one precise pattern on one logger; every other message of that logger still shows."""

from __future__ import annotations

import inspect
import logging
import warnings

import numpy as np
import torch

from idiff_lib.core.quiet import DropMessages, drop_log_messages
from idiff_lib.thinking.model import checkpoints

BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNEL = ("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
              "`pip install kernels` and the kernels >= 0.11.1")


def test_a_dropped_message_is_gone_and_the_loggers_other_messages_show(caplog):
    name = "idiff.test.quiet"
    drop_log_messages(name, r"^known noise")
    drop_log_messages(name, r"^known noise")  # installed twice: one filter
    assert sum(isinstance(f, DropMessages) for f in logging.getLogger(name).filters) == 1
    with caplog.at_level(logging.WARNING, logger=name):
        logging.getLogger(name).warning("known noise: %s", "offline")
        logging.getLogger(name).warning("a real problem, not known noise")
    assert [r.getMessage() for r in caplog.records] == ["a real problem, not known noise"]


def test_the_thinking_room_drops_the_bitsandbytes_kernel_message(caplog):
    import idiff_lib.thinking  # noqa: F401  (installs the drop, as any import of the room does)

    with caplog.at_level(logging.WARNING, logger=BNB_LOGGER):
        logging.getLogger(BNB_LOGGER).warning(BNB_KERNEL, "Kernel repository could not verify publisher trust status")
        logging.getLogger(BNB_LOGGER).warning("CUDA setup failed")
    assert [r.getMessage() for r in caplog.records] == ["CUDA setup failed"]


def test_lora_wraps_without_the_deprecated_flags_warning():
    from transformers import LlamaConfig, LlamaForCausalLM

    from idiff_lib.thinking.model.lora import LoraSettings, apply_lora

    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_lora(model, LoraSettings(target_modules=("q_proj",)), log=lambda _: None)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_agreement_of_a_constant_member_is_zero_without_a_warning():
    from idiff_lib.answer.experiments import analysis

    probs = np.array([[0.5, 0.9], [0.5, 0.2], [0.5, 0.7]])  # the first member never moves
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corr, _ = analysis.agreement_matrix(probs, ["flat", "b"])
    assert corr[0, 1] == 0.0 and abs(corr[1, 1] - 1.0) < 1e-9


def test_hugging_face_bars_are_off_only_where_progress_is_off(monkeypatch):
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging  # alias: not the standard library's logging

    from idiff_lib.core import progress

    enable_progress_bars()
    hf_logging.enable_progress_bar()
    try:
        monkeypatch.setenv(progress.PROGRESS_ENV, "text")  # the CLI, a script: the bars stay
        assert progress.quiet_library_bars() is False and hf_logging.is_progress_bar_enabled()
        monkeypatch.setenv(progress.PROGRESS_ENV, "off")  # as under papermill
        assert progress.quiet_library_bars() is True
        assert are_progress_bars_disabled() and not hf_logging.is_progress_bar_enabled()
    finally:
        enable_progress_bars()
        hf_logging.enable_progress_bar()


def test_loading_a_saved_adapter_drops_only_the_deprecated_flags_warning(tmp_path):
    """`checkpoints.load_model` loads an adapter inside `peft_reads_old_flag` (peft reads the old name again)."""
    from peft import PeftModel
    from transformers import LlamaConfig, LlamaForCausalLM

    from idiff_lib.thinking.model.lora import LoraSettings, apply_lora, peft_reads_old_flag

    def base():
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, num_key_value_heads=2))

    apply_lora(base(), LoraSettings(target_modules=("q_proj",)), log=lambda _: None).save_pretrained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with peft_reads_old_flag():
            PeftModel.from_pretrained(base(), tmp_path)
            warnings.warn("a real problem", UserWarning)
    messages = [str(w.message) for w in caught]
    assert "a real problem" in messages and not [m for m in messages if "is_gradient_checkpointing" in m]
    assert "peft_reads_old_flag" in inspect.getsource(checkpoints.load_model)
