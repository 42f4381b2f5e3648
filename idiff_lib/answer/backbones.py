"""Backbones of the answer-model members: names, pretrained weights and the timm feature extractor.

Backbones come from timm (``num_classes=0``). Unknown names raise with close matches.
``pretrained=True`` members fail fast offline, before any training, naming the weights to fetch;
a local checkpoint file is accepted instead.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from idiff_lib.answer.member_config import MemberConfig
from idiff_lib.core.errors import OfflineError, ParameterError, suggest

# Short names of the members used by the profiles -> timm model names. Any other timm name is
# accepted as well; these keys only spare the user the exact timm spelling.
ANSWER_BACKBONES: dict[str, str] = {
    "wide_resnet50_2": "wide_resnet50_2",
    "efficientnet_b2": "efficientnet_b2",
    "convnext_small": "convnext_small",
    # swinv2_cr_small_224 takes 224 crops directly (the window8_256 variant needs 256 inputs).
    "swinv2_small": "swinv2_cr_small_224",
    "maxvit_tiny": "maxvit_tiny_tf_224",
    "resnet10t": "resnet10t",
    "convnext_atto": "convnext_atto",
    "efficientnet_b0": "efficientnet_b0",
    "mobilenetv3_small": "mobilenetv3_small_100",
    "lcnet_050": "lcnet_050",
    "regnetx_002": "regnetx_002",
    "resnet18": "resnet18",
}


def resolve_backbone(name: str) -> str:
    """The timm model name for a registry key or a timm name; unknown names suggest close ones.

    Raises:
        ParameterError: when neither ANSWER_BACKBONES nor ``timm.list_models()`` knows the name.
    """
    import timm

    if name in ANSWER_BACKBONES:
        return ANSWER_BACKBONES[name]
    base = name.split(".", 1)[0]  # a pretrained tag such as resnet50.a1_in1k is allowed
    if base in timm.list_models():
        return name
    choices = list(ANSWER_BACKBONES) + timm.list_models()
    hint = suggest(name, choices) or suggest(base, choices)
    raise ParameterError(
        f"unknown backbone {name!r}: not a key of ANSWER_BACKBONES nor a timm model.{hint} "
        "fix: use a timm name from timm.list_models() or one of " + ", ".join(ANSWER_BACKBONES)
    )


# --------------------------------------------------------------------------- pretrained weights
def pretrained_source(timm_name: str) -> dict[str, str]:
    """Where timm 1.0 fetches the weights of `timm_name`: the Hugging Face repo and the legacy URL."""
    import timm

    cfg = timm.models.get_pretrained_cfg(timm_name)
    cfg_dict = cfg.to_dict() if cfg is not None else dict(timm.create_model(timm_name, pretrained=False).pretrained_cfg)
    return {"hf_hub_id": cfg_dict.get("hf_hub_id") or "", "url": cfg_dict.get("url") or "",
            "hf_hub_filename": cfg_dict.get("hf_hub_filename") or ""}


def pretrained_cached(timm_name: str) -> str | None:
    """The local file holding `timm_name`'s pretrained weights, or None (never touches the network).

    timm 1.0 loads from the Hugging Face hub (``timm/<model>.<tag>``, ``model.safetensors`` or
    ``pytorch_model.bin``) and falls back to the legacy GitHub URL in torch hub's cache.
    """
    from huggingface_hub import try_to_load_from_cache

    src = pretrained_source(timm_name)
    if src["hf_hub_id"]:
        names = [src["hf_hub_filename"]] if src["hf_hub_filename"] else ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]
        for filename in names:
            hit = try_to_load_from_cache(src["hf_hub_id"], filename)
            if isinstance(hit, str) and os.path.exists(hit):
                return hit
    if src["url"]:
        legacy = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(src["url"])
        if legacy.exists():
            return str(legacy)
    return None


def _online(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_weights(configs: Iterable[MemberConfig], online: bool | None = None) -> None:
    """Fail before any training when a pretrained member's weights cannot be had.

    Raises:
        OfflineError: naming every missing weight file, where to get it, and the
            `checkpoint` alternative.
        ParameterError: for an unknown backbone name or a missing local checkpoint file.
    """
    missing = []
    for cfg in configs:
        timm_name = resolve_backbone(cfg.backbone)
        if cfg.checkpoint:
            if not Path(cfg.checkpoint).expanduser().exists():
                raise ParameterError(f"member {cfg.name}: checkpoint {cfg.checkpoint} not found. "
                                     "fix: give the path of a local weights file (.safetensors/.pth/.bin)")
            continue
        if cfg.pretrained and pretrained_cached(timm_name) is None:
            src = pretrained_source(timm_name)
            missing.append(f"  - {cfg.name} ({timm_name}): Hugging Face repo {src['hf_hub_id'] or '-'}"
                           + (f", or {src['url']}" if src["url"] else ""))
    if not missing:
        return
    if online is None:
        online = _online()
    if online:
        return  # timm downloads them itself
    raise OfflineError(
        "pretrained backbone weights are not in the local cache and there is no network:\n"
        + "\n".join(missing)
        + "\n  fix: on a machine with internet run `huggingface-cli download <repo>` for each (or "
          "`python -c \"import timm; timm.create_model('<name>', pretrained=True)\"`) and copy "
          f"the cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) here; or set the member's "
          "`checkpoint` to a local weights file; or use the cpu profile (pretrained=False)."
    )


def create_backbone(cfg: MemberConfig) -> nn.Module:
    """The timm feature extractor of a member (``num_classes=0``)."""
    import timm

    timm_name = resolve_backbone(cfg.backbone)
    kwargs: dict[str, Any] = {"num_classes": 0}
    if "swin" in timm_name or "maxvit" in timm_name:
        kwargs["img_size"] = cfg.img_size
    if cfg.checkpoint:
        return timm.create_model(timm_name, pretrained=True,
                                 pretrained_cfg_overlay={"file": str(Path(cfg.checkpoint).expanduser())}, **kwargs)
    return timm.create_model(timm_name, pretrained=cfg.pretrained, **kwargs)


def feature_dim(backbone: nn.Module) -> int:
    """Width of a timm model's pooled output with ``num_classes=0`` (after any pre-logits head)."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)

