"""Grad-CAM of the Answer Model's difference logit on a pair's four views (notebook 04).

A member's network (`PairwiseModel`) runs one backbone over the pair's four views (global A,
global B, local A, local B) and returns one logit, "A is better". Grad-CAM (the ``grad-cam``
library, ``pytorch_grad_cam``) weighs the backbone's last convolutional feature map by the
gradient of that logit, once per view, so each view gets a map of where the evidence for the
model's answer lies. The target is the logit of the answer the member gives (the logit itself
when it says A, its negation when it says B), so warm regions on either side are the ones that
pushed the member towards its answer. Each map is scaled to [0, 1] per view by the library.

The target layer is the deepest module of the backbone whose output is a 4-D map with at least
2 × 2 positions at the member's crop size (the last stage of a plain timm backbone; the last
stage of the features-only model inside `StatsPool`; the stage before it when the last one
shrinks to 1 × 1 on small crops). With ``pooling="stats"`` the logit also reads earlier
stages; the map shows the last stage's share of it.

A head member of the cache-first profile (`idiff_lib.answer.train.head_member`) is explained the same
way through its frozen backbone and its head (`explain_head_pair`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from torch import nn

from idiff_lib.answer.experiments.analysis import Step02Outputs
from idiff_lib.answer.experiments.ensemble import NetworkMember
from idiff_lib.answer.model.feature_cache import PAIR_VIEWS, FrozenBackbone
from idiff_lib.answer.model.inputs import crop_views, crops_to_tensor, load_items
from idiff_lib.answer.model.network import PairwiseModel
from idiff_lib.answer.train.head_member import HeadMember, feature_cache
from idiff_lib.core.errors import ParameterError
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views

CAM_TARGETS = ("predicted", "A", "B")  # which answer's logit the map explains


@dataclass
class PairCam:
    """One pair's Grad-CAM maps as one member sees it.

    Attributes:
        pair_id: the pair's id.
        views: (V, H, W, 3) uint8 central crops the member scored (global A, global B, local A, local B).
        cams: (V, H, W) float maps in [0, 1], one per view.
        p_left: the member's p(A is better) on these crops.
        target: "A" or "B", the answer whose logit the maps explain.
        member: the member's name.
        label: the pair's true answer ("A"/"B"; "" when unlabelled).
        ensemble_p: the whole ensemble's p(A is better) on the pair, when known.
    """

    pair_id: str
    views: np.ndarray
    cams: np.ndarray
    p_left: float
    target: str
    member: str = ""
    label: str = ""
    ensemble_p: float | None = None


class _PairLogit(nn.Module):
    """One pair's views (V, 3, H, W) -> its logit (1,), views kept in order (the CAM's batch is the views)."""

    def __init__(self, model: PairwiseModel):
        super().__init__()
        self.model = model

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """The member's logit of "A is better" for the single pair made of `views`."""
        return self.model.ordered_logit(views.unsqueeze(0))


class _SignedLogit:
    """A Grad-CAM target: the logit (+1, evidence for A) or its negation (-1, evidence for B)."""

    def __init__(self, sign: float):
        self.sign = sign

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return self.sign * output


def deepest_map_layer(backbone: nn.Module, size: int) -> nn.Module | None:
    """The backbone's deepest module with a 4-D output of at least 2 × 2 positions at crop side `size`.

    Found by running one blank crop through the backbone with forward hooks (a plain timm backbone
    and a features-only model alike); None when no module gives such a map.
    """
    found: list[nn.Module] = []

    def hook(module: nn.Module, _inputs: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.dim() == 4 and min(out.shape[-2:]) >= 2:
            found.append(module)

    handles = [m.register_forward_hook(hook) for m in backbone.modules() if m is not backbone]
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, 3, size, size, device=device))
    finally:
        for h in handles:
            h.remove()
        backbone.train(was_training)
    return found[-1] if found else None


def cam_target_layer(model: PairwiseModel, size: int | None = None) -> nn.Module:
    """A member network's Grad-CAM layer: `deepest_map_layer` of its backbone at its crop size.

    Works for a plain timm backbone (``num_classes=0``) and for `StatsPool` around a features-only model.

    Raises:
        ParameterError: when no module of the backbone gives such a map.
    """
    size = size or model.cfg.img_size
    layer = deepest_map_layer(model.backbone, size)
    if layer is None:
        raise ParameterError(f"member {model.cfg.name}: backbone {model.cfg.backbone} has no convolutional map of at "
                             f"least 2x2 at img_size {size}; fix: explain a CNN member, or one with larger crops")
    return layer


def explain_pair(model: PairwiseModel, pair: Pair, target: str = "predicted", layer: nn.Module | None = None,
                 member: str = "") -> PairCam:
    """Grad-CAM maps of a member's difference logit on the central crops of a pair's four views.

    Args:
        model: a "split" member network (four views).
        pair: the pair to explain (its images are read from disk).
        target: "predicted" (the member's own answer), "A" or "B".
        layer: the module whose map is weighed (default: `cam_target_layer`).
        member: a name recorded in the result.

    Raises:
        ParameterError: for a "merged" member or an unknown `target`.
        DataError: when the pair's images cannot be read.
    """
    if model.cfg.mode != "split":
        raise ParameterError(f"member {model.cfg.name}: Grad-CAM explains the four views of a 'split' member, "
                             f"not mode {model.cfg.mode!r}; fix: pass a split member")
    if target not in CAM_TARGETS:
        raise ParameterError(f"target must be one of {CAM_TARGETS}, got {target!r}")
    device = next(model.parameters()).device
    crops = crop_views(load_items([pair], model.cfg)[0].views, model.cfg.img_size, None)
    x = crops_to_tensor(crops[None])[0].to(device)
    model.eval()
    with torch.no_grad():
        logit = float(model.ordered_logit(x[None])[0])
    side = ("A" if logit > 0 else "B") if target == "predicted" else target
    layer = layer if layer is not None else cam_target_layer(model)
    with torch.enable_grad(), GradCAM(model=_PairLogit(model), target_layers=[layer]) as cam:
        maps = cam(input_tensor=x.requires_grad_(True), targets=[_SignedLogit(1.0 if side == "A" else -1.0)])
    return PairCam(pair.id, crops, np.asarray(maps, dtype=np.float32), float(1 / (1 + np.exp(-logit))), side,
                   member or model.cfg.name, label=pair.answer or "")


def cam_pair_indices(p: np.ndarray, labels: np.ndarray, n: int = 4) -> list[int]:
    """`n` pairs to explain: the most confident right answers and the most confident wrong ones, about half each."""
    p, labels = np.asarray(p, float), np.asarray(labels, float)
    conf = np.abs(p - 0.5)
    right = [int(i) for i in np.argsort(-conf) if (p[i] > 0.5) == (labels[i] > 0.5)]
    wrong = [int(i) for i in np.argsort(-conf) if (p[i] > 0.5) != (labels[i] > 0.5)]
    take_wrong = min(len(wrong), n // 2)
    chosen = wrong[:take_wrong] + right[: n - take_wrong]
    return chosen + [i for i in wrong[take_wrong:] if len(chosen) < n and i not in chosen][: n - len(chosen)]


def cam_rows(p: np.ndarray, labels: np.ndarray, n: int, ids: Sequence[str], first: str = "") -> list[int]:
    """`cam_pair_indices`, with the pair `first` (an id in `ids`) moved or added to the front when `n` > 0."""
    chosen = cam_pair_indices(p, labels, n)
    if n > 0 and first in ids:
        k = list(ids).index(first)
        chosen = [k] + [i for i in chosen if i != k]
    return chosen


def first_network_member(members: Sequence[object]) -> NetworkMember | HeadMember:
    """The first member with a backbone (a network, or a head on a frozen backbone): the one Grad-CAM explains.

    Raises:
        ParameterError: when the ensemble has no such member (only the feature member).
    """
    for m in members:
        if isinstance(m, NetworkMember) or (isinstance(m, HeadMember) and m.input in ("global+local", "evidence")):
            return m
    raise ParameterError("the ensemble has no network member to explain; fix: train step 02 with at least one backbone")


class _HeadLogit(nn.Module):
    """A head member as one differentiable function: four views (4, 3, S, S) -> its logit (1,).

    The frozen backbone's stages are pooled (mean and std) per view, the global and local A - B
    differences are scaled and read by the member's head (through its defect heads for an evidence
    member), exactly as on the cached descriptors.
    """

    def __init__(self, member: HeadMember, extractor: FrozenBackbone, category: str = ""):
        super().__init__()
        self.extractor, self.model = extractor, extractor.model
        head = member.head.heads.get(category) or member.head.heads[""]
        self.register_buffer("coef", torch.as_tensor(head.coef, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(head.scale, dtype=torch.float32))
        self.evidence = member.defects is not None
        if self.evidence:
            self.register_buffer("d_coef", torch.as_tensor(member.defects.coef, dtype=torch.float32))
            self.register_buffer("d_scale", torch.as_tensor(member.defects.scale, dtype=torch.float32))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        d = self.extractor.pool(self.model(views))
        x = torch.cat([d[0] - d[1], d[2] - d[3]])
        if self.evidence:
            x = (x / self.d_scale) @ self.d_coef
        return ((x / self.scale) @ self.coef).reshape(1)


def explain_head_pair(member: HeadMember, pair: Pair, cache: dict, category: str = "", target: str = "predicted",
                      max_side: int = 256) -> PairCam:
    """Grad-CAM of a head member's logit through its frozen backbone, on central squares of the four views.

    The four views are cut to one common central square (their smallest side, at most `max_side`),
    so the map explains the head on those crops; the cached descriptors it was trained on cover
    each whole view.
    """
    if target not in CAM_TARGETS:
        raise ParameterError(f"target must be one of {CAM_TARGETS}, got {target!r}")
    extractor = feature_cache(member.spec, cache, member.cache_root).extractor
    v = load_views(pair)
    views = [getattr(v, name) for name in PAIR_VIEWS]
    side = min(max_side, *(min(x.shape[:2]) for x in views))
    crops = np.stack([_central(x, side) for x in views])
    x = torch.cat([extractor.tensor(c) for c in crops])
    model = _HeadLogit(member, extractor, category).eval()
    with torch.no_grad():
        logit = float(model(x)[0])
    side_answer = ("A" if logit > 0 else "B") if target == "predicted" else target
    layer = deepest_map_layer(extractor.model, side)
    if layer is None:
        raise ParameterError(f"member {member.name}: no convolutional map of at least 2x2 at {side} px")
    with torch.enable_grad(), GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=x.requires_grad_(True), targets=[_SignedLogit(1.0 if side_answer == "A" else -1.0)])
    return PairCam(pair.id, crops, np.asarray(maps, dtype=np.float32), float(1 / (1 + np.exp(-logit))), side_answer,
                   member.name, label=pair.answer or "")


def _central(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = (h - side) // 2, (w - side) // 2
    return image[y:y + side, x:x + side]


def explain_run(run: Step02Outputs, n: int = 4, target: str = "predicted", first: str = "") -> list[PairCam]:
    """Grad-CAM maps of the first network member (routed by category) on `n` test pairs of a step-02 run.

    The pairs are chosen on the ensemble's test answers by `cam_pair_indices`; each result carries the
    pair's label and the ensemble's p_left. `first` (a test pair id, the worked pair) is the first row,
    one more than `n` when it is not among the chosen; with `n` 0, or an id not in the test split, it
    adds nothing.
    """
    member = first_network_member(run.ensemble.members)
    out, cache = [], {}
    for i in cam_rows(run.final_test, run.test_labels, n, [p.id for p in run.test_pairs], first):
        pair = run.test_pairs[i]
        if isinstance(member, HeadMember):
            cam = explain_head_pair(member, pair, cache, run.test_categories[i], target)
        else:
            cam = explain_pair(member.route(run.test_categories[i]), pair, target, member=member.name)
        out.append(replace(cam, ensemble_p=float(run.final_test[i])))
    return out
