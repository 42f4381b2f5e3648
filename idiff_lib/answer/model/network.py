"""The answer model's network: a difference-aware Siamese model that decides whether Image A or B is better.

Reference: iDiff, winner of the NTIRE 2026 RAIM challenge Track 1 (Professional Image Quality
Assessment). Its answer branch runs one backbone, shared across the four views of a pair
(global-left, global-right, local-left, local-right), and a difference-aware head on
``[f_L, f_R, f_L - f_R, |f_L - f_R|]`` per stream; person/scene specialists and an equal-weight
ensemble of backbones (wide_resnet50_2, efficientnet_b2, convnext_small, swinv2 small,
maxvit_tiny) carry the accuracy from 0.578 (one model on the merged image) to 0.912.

The logit is antisymmetric by construction, ``logit(L, R) = g(L, R) - g(R, L)``, so swapping A
and B negates it and ``p`` becomes ``1 - p``. The ``merged`` mode (the ablation ladder's first
row, one model on the merged A|B image) is made antisymmetric the same way, by swap averaging.
Mean, std and input size come from ``timm.data.resolve_model_data_config``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # alias: PyTorch's usual short name
from torch import nn

from idiff_lib.answer.model.backbones import create_backbone, feature_dim, freeze_stages
from idiff_lib.answer.model.checkpoints import load_weights
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.core.errors import ParameterError


class DiffHead(nn.Module):
    """``g(a, b) = MLP([a, b, a - b, |a - b|])``; the stream's logit is ``g(a, b) - g(b, a)``."""

    def __init__(self, dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``g(a, b) - g(b, a)`` per row."""
        n = a.shape[0]
        first, second = torch.cat([a, b], 0), torch.cat([b, a], 0)  # both orders in one batch
        g = self.mlp(torch.cat([first, second, first - second, (first - second).abs()], 1)).squeeze(1)
        return g[:n] - g[n:]


class PairwiseModel(nn.Module):
    """Logit of "the left image (A) is better" from a batch of views.

    Input: ``(B, V, 3, H, W)`` normalised crops, V = 4 in "split" mode (global-left,
    global-right, local-left, local-right) and V = 2 in "merged" mode (global-left,
    global-right, put side by side into one image inside the model).
    """

    def __init__(self, cfg: MemberConfig, backbone: nn.Module | None = None):
        import timm  # deferred: heavy

        super().__init__()
        self.cfg = cfg
        self.backbone = backbone if backbone is not None else create_backbone(cfg)
        freeze_stages(self.backbone, cfg.frozen_stages)
        dim = feature_dim(self.backbone)
        if cfg.mode == "split":
            self.global_head = DiffHead(dim, cfg.hidden, cfg.dropout)
            self.local_head = DiffHead(dim, cfg.hidden, cfg.dropout)
        else:
            self.merged_head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(dim, 1))

        data_cfg = timm.data.resolve_model_data_config(self.backbone)
        self.register_buffer("mean", torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_cfg["std"]).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-range or [0, 1] float crops -> the backbone's normalised input."""
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled features of a batch of normalised crops (channels_last on a GPU)."""
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x).float()

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """The logit of "A is better" per pair; in eval mode a swap of A and B negates it exactly."""
        if self.training:
            return self._logit(views)
        # The head is antisymmetric, but a backbone's output can differ in the last bit with an
        # image's position in the batch. Evaluating every pair in a canonical order (A|B or B|A,
        # whichever is lexicographically first) and negating makes a swap negate the logit exactly.
        flip = _canonical_flip(views)
        swap = torch.tensor([1, 0, 3, 2][: views.shape[1]], device=views.device)
        canonical = torch.where(flip.view(-1, 1, 1, 1, 1), views[:, swap], views)
        logit = self._logit(canonical)
        return torch.where(flip, -logit, logit)

    def ordered_logit(self, views: torch.Tensor) -> torch.Tensor:
        """The logit with the views in the order given (no canonical A|B ordering, as in training).

        For explanations (`idiff_lib.answer.experiments.explain`): the backbone then sees the views in the
        input's order, so its activations line up with global A, global B, local A, local B.
        """
        return self._logit(views)

    def _logit(self, views: torch.Tensor) -> torch.Tensor:
        b, v = views.shape[:2]
        if self.cfg.mode == "merged":
            size = views.shape[-2:]
            lr = torch.cat([views[:, 0], views[:, 1]], dim=-1)
            rl = torch.cat([views[:, 1], views[:, 0]], dim=-1)
            both = F.interpolate(torch.cat([lr, rl], 0), size=size, mode="bilinear", antialias=True, align_corners=False)
            h = self.merged_head(self.features(self.normalise(both))).squeeze(1)
            return h[:b] - h[b:]
        f = self.features(self.normalise(views.flatten(0, 1))).view(b, v, -1)
        return self.global_head(f[:, 0], f[:, 1]) + self.local_head(f[:, 2], f[:, 3])


def _canonical_flip(views: torch.Tensor) -> torch.Tensor:
    """True where the right side comes first in lexicographic order of its pixels (per pair)."""
    diff = (views[:, 0::2] - views[:, 1::2]).flatten(1)
    first = (diff != 0).to(torch.uint8).argmax(1, keepdim=True)
    return diff.gather(1, first).squeeze(1) > 0


def build_model(cfg: MemberConfig) -> PairwiseModel:
    """A member's network, with the pretext backbone or a generalist's weights loaded from `cfg.init`."""
    model = PairwiseModel(cfg)
    if cfg.init:
        state = load_weights(cfg.init, "pretrain the backbone again (notebook 02), or clear `init`")
        if "model" in state:  # a member checkpoint: take the whole network (backbone and heads)
            missing, unexpected = model.load_state_dict(state["model"], strict=False)
        else:
            missing, unexpected = model.backbone.load_state_dict(state.get("backbone", state), strict=False)
        if unexpected or [m for m in missing if not m.endswith("num_batches_tracked")]:
            raise ParameterError(f"member {cfg.name}: init weights {cfg.init} do not fit {cfg.backbone} "
                                 f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}). "
                                 "fix: pretrain the same backbone, or clear `init`")
    return model


