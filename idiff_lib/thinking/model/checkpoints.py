"""Where a Thinking Model's weights come from: a local folder, the Hugging Face cache or the Hub.

Any Hugging Face image-text-to-text model loads by name or local folder through
``AutoModelForImageTextToText`` + ``AutoProcessor`` (Qwen2-VL, Wang et al., 2024, arXiv:2409.12191;
Qwen2.5-VL, Bai et al., 2025, arXiv:2502.13923; Qwen3-VL, Qwen team, 2025). A folder holding a
LoRA adapter loads its base model and then the adapter. `staging_dir` writes a model folder so
that it appears only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from transformers import AutoModelForImageTextToText, AutoProcessor

from idiff_lib.core.errors import DataError, OfflineError, ParameterError, suggest
from idiff_lib.thinking.model import small_vlm  # noqa: F401  (registers the small VLM with the Auto classes)
from idiff_lib.thinking.model.lora import peft_reads_old_flag

# The paper profile's checkpoints (Hugging Face Hub names), by short alias.
PAPER_MODELS = {
    "qwen3-vl-8b": "Qwen/Qwen3-VL-8B-Instruct",
    "qwen2.5-vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct",
}


class staging_dir:
    """Write a folder beside `target` and move it into place only when the block succeeds.

    A crash while saving a model leaves the previous folder (or none), never a half-written one
    that a resumed run would take for finished.
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.tmp = self.target.with_name(f".{self.target.name}.tmp{os.getpid()}")

    def __enter__(self) -> Path:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.target.exists():
            shutil.rmtree(self.target)
        os.replace(self.tmp, self.target)


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether huggingface.co answers (False at once when the offline variables are set)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_checkpoint(name_or_path: str, allow_download: bool | None = None) -> str:
    """A local folder, a cached Hub snapshot, or the Hub name when it can be downloaded.

    Args:
        name_or_path: a local folder, a Hub name (``Qwen/Qwen3-VL-8B-Instruct``) or an alias of
            `PAPER_MODELS` (``qwen3-vl-8b``).
        allow_download: None = download when the Hub answers; False = cache only.

    Raises:
        OfflineError: the checkpoint is neither local nor cached and cannot be downloaded; the
            message names what to download and where to point the workbench.
    """
    name = PAPER_MODELS.get(name_or_path, name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise DataError(path, "the model folder has no config.json",
                            "point to a folder written by save_pretrained (or a downloaded Hub snapshot)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise OfflineError(f"model {name_or_path!r}: no such folder and not a Hub name 'org/model'. "
                           f"Known aliases: {', '.join(PAPER_MODELS)}.{suggest(name_or_path, PAPER_MODELS)}")

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # not in the cache: any hub error type means "not here"
        pass
    if allow_download is None:
        allow_download = _hub_reachable()
    if not allow_download:
        raise OfflineError(
            f"model {name!r} is not in the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) "
            f"and the Hub cannot be reached. fix: on a machine with internet run `hf download {name}` "
            f"(or `huggingface-cli download {name}`) and copy the cache, or pass a local folder "
            "(model_name=/path/to/checkpoint); for CPU work use the tiny model (`idiff think build-tiny`)."
        )
    return name


def check_chat_template(processor, source: str | Path) -> None:
    """Refuse a processor without a chat template: every prompt is rendered with ``apply_chat_template``.

    Raises:
        DataError: naming `source` (the model folder or Hub name) and the fix.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None):
        return
    raise DataError(source, "the model's processor has no chat template, so prompts cannot be formatted as chat turns",
                    "use an instruction-tuned checkpoint (a '-Instruct' model) whose folder holds chat_template.jinja "
                    "(or chat_template.json, or a chat_template entry in tokenizer_config.json), or copy that file "
                    "from the matching Instruct model into the folder")


def load_model(
    name_or_path: str,
    *,
    device: str | None = None,
    dtype: str = "auto",
    gradient_checkpointing: bool | None = None,
    allow_download: bool | None = None,
    trainable_adapter: bool = False,
    merge_adapter: bool = False,
):
    """Load any image-text-to-text model and its processor (``AutoModelForImageTextToText`` / ``AutoProcessor``).

    Args:
        name_or_path: see `resolve_checkpoint`; a folder holding a LoRA adapter
            (``adapter_config.json``) loads its base model and then the adapter.
        device: "cuda", "cpu" or None (CUDA when available).
        dtype: "auto" = bfloat16 on GPU, float32 on CPU; or "bfloat16" / "float32".
        gradient_checkpointing: None = on for GPU, off on CPU.
        trainable_adapter: load a LoRA adapter ready to train further (progressive stages).
        merge_adapter: fold a LoRA adapter into the base weights (peft ``merge_and_unload``), for
            inference only: eager decoding is bound by kernel launches, and the unmerged adapter
            adds two small matmuls to every linear layer (8B model on an H100: 10 new tokens/s
            unmerged against 44 merged; ``benchmarks/results/gpu_thinking_check.json``).

    Returns:
        (model, processor)

    Raises:
        DataError: the folder's processor has no chat template (`check_chat_template`), before the
            weights are read.
    """
    from peft import PeftModel  # deferred: heavy
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                   "bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[dtype]
    adapter = Path(name_or_path) / "adapter_config.json"
    if adapter.exists():
        base_name = json.loads(adapter.read_text())["base_model_name_or_path"]
        model, processor = load_model(base_name, device=device, dtype=dtype,
                                      gradient_checkpointing=gradient_checkpointing, allow_download=allow_download)
        if merge_adapter and trainable_adapter:
            raise ParameterError("load_model: merge_adapter and trainable_adapter exclude each other. fix: merge only "
                                 "for inference (merge_adapter=True, trainable_adapter=False)")
        with peft_reads_old_flag():
            model = PeftModel.from_pretrained(model, name_or_path, is_trainable=trainable_adapter)
        return (model.merge_and_unload() if merge_adapter else model), processor
    source = resolve_checkpoint(name_or_path, allow_download)
    processor = AutoProcessor.from_pretrained(source)
    check_chat_template(processor, source)
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype).to(device)
    processor.tokenizer.padding_side = "left"
    if gradient_checkpointing is None:
        gradient_checkpointing = device.startswith("cuda")
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model, processor
