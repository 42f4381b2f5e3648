"""The answer model: a difference-aware Siamese network that decides whether Image A or B is better.

Reference: iDiff, winner of the NTIRE 2026 RAIM challenge Track 1 (Professional Image Quality
Assessment). Its answer branch runs one backbone, shared across the four views of a pair
(global-left, global-right, local-left, local-right), and a difference-aware head on
``[f_L, f_R, f_L - f_R, |f_L - f_R|]`` per stream; person/scene specialists and an equal-weight
ensemble of backbones (wide_resnet50_2, efficientnet_b2, convnext_small, swinv2 small,
maxvit_tiny) carry the accuracy from 0.578 (one model on the merged image) to 0.912.

Design choices of this implementation:

- The logit is antisymmetric by construction, ``logit(L, R) = g(L, R) - g(R, L)``, so swapping
  A and B negates it and ``p`` becomes ``1 - p``. The ``merged`` mode (the ablation ladder's first
  row, one model on the merged A|B image) is made antisymmetric the same way, by swap averaging.
- Backbones come from timm (``num_classes=0``); mean, std and input size from
  ``timm.data.resolve_model_data_config``. Unknown names raise with close matches.
- Training: AdamW, cosine schedule with warm-up, fixed seeds, swap augmentation, aligned random
  crops (the same window in A and B, so the difference stays meaningful), a checkpoint every
  epoch plus best-on-val, and ``resume=True`` continuing an interrupted run to the same result.
  bf16 autocast and channels_last are used on a GPU only.
- ``pretrained=True`` members fail fast offline, before any training, naming the weights to fetch;
  a local checkpoint file is accepted instead.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from idiff_lib.core import storage
from idiff_lib.data import views as views_mod
from idiff_lib.core.errors import DataError, OfflineError, ParameterError, suggest
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import Views, load_views

MODES = ("split", "merged")
CATEGORIES = ("person", "scene")

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

# The members of each profile (registry keys or timm names).
PROFILE_MEMBERS: dict[str, tuple[str, ...]] = {
    "paper": ("wide_resnet50_2", "efficientnet_b2", "convnext_small", "swinv2_small", "maxvit_tiny"),
    "cpu": ("resnet10t", "convnext_atto", "efficientnet_b0"),
    "tiny": ("resnet10t",),
}


# --------------------------------------------------------------------------- configuration
@dataclass
class MemberConfig:
    """Everything that defines one trained member (saved beside its checkpoints).

    Attributes:
        name: the member's folder name inside the run (e.g. ``resnet10t``, ``resnet10t_person``).
        backbone: a key of ANSWER_BACKBONES or any timm model name.
        mode: "split" (four views, the iDiff input) or "merged" (one image A|B, ladder row 1).
        pretrained: load timm's ImageNet weights (needs them in the Hugging Face cache, or
            `checkpoint`).
        checkpoint: a local weights file to load into the backbone instead of downloading.
        init: a state dict of the backbone from the degradation pretext task (`idiff_lib.answer.pretext`),
            or a member's ``best.pt`` to fine-tune (specialists start from the generalist).
        category: "" for a generalist, "person" or "scene" for a specialist (trains on that
            category only).
        img_size: crop side fed to the backbone.
        resize: short side the global view is resized to before cropping.
        local_resize: short side the detail view is resized to; 0 keeps its native pixels, so
            noise and halos are seen at the resolution the expert saw them.
        epochs / batch_size / lr / weight_decay / warmup_frac: optimisation (AdamW + cosine).
        hidden / dropout: the difference-aware head.
        seed: seeds Python, NumPy and torch; each epoch reseeds from (seed, epoch).
        synthetic_pairs: fresh pairs per epoch drawn from the training photos by the degradation
            generator (0 = only the fixed training pairs).
        swap_aug: randomly exchange A and B (and the label) in training.
    """

    name: str
    backbone: str
    mode: str = "split"
    pretrained: bool = False
    checkpoint: str = ""
    init: str = ""
    category: str = ""
    img_size: int = 224
    resize: int = 256
    local_resize: int = 256
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    hidden: int = 256
    dropout: float = 0.1
    seed: int = 42
    synthetic_pairs: int = 0
    swap_aug: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParameterError(f"member {self.name}: mode {self.mode!r} is not one of {MODES}.{suggest(self.mode, MODES)}")
        if self.category not in ("", *CATEGORIES):
            raise ParameterError(f"member {self.name}: category {self.category!r} must be '', 'person' or 'scene'")
        for key in ("img_size", "resize", "epochs", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ParameterError(f"member {self.name}: {key} must be >= 1, got {getattr(self, key)}")
        if self.resize < self.img_size:
            raise ParameterError(f"member {self.name}: resize ({self.resize}) must be >= img_size ({self.img_size})")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MemberConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            key = sorted(unknown)[0]
            raise ParameterError(f"unknown member setting {key!r}.{suggest(key, known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# --------------------------------------------------------------------------- the network
class DiffHead(nn.Module):
    """``g(a, b) = MLP([a, b, a - b, |a - b|])``; the stream's logit is ``g(a, b) - g(b, a)``."""

    def __init__(self, dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
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
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone if backbone is not None else create_backbone(cfg)
        dim = feature_dim(self.backbone)
        if cfg.mode == "split":
            self.global_head = DiffHead(dim, cfg.hidden, cfg.dropout)
            self.local_head = DiffHead(dim, cfg.hidden, cfg.dropout)
        else:
            self.merged_head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(dim, 1))
        import timm

        data_cfg = timm.data.resolve_model_data_config(self.backbone)
        self.register_buffer("mean", torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_cfg["std"]).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-range or [0, 1] float crops -> the backbone's normalised input."""
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x).float()

    def forward(self, views: torch.Tensor) -> torch.Tensor:
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
        state = torch.load(cfg.init, map_location="cpu", weights_only=False)
        if "model" in state:  # a member checkpoint: take the whole network (backbone and heads)
            missing, unexpected = model.load_state_dict(state["model"], strict=False)
        else:
            missing, unexpected = model.backbone.load_state_dict(state.get("backbone", state), strict=False)
        if unexpected or [m for m in missing if not m.endswith("num_batches_tracked")]:
            raise ParameterError(f"member {cfg.name}: init weights {cfg.init} do not fit {cfg.backbone} "
                                 f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}). "
                                 "fix: pretrain the same backbone, or clear `init`")
    return model


# --------------------------------------------------------------------------- inputs
def _resize_short(img: np.ndarray, short: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = short / min(h, w)
    if abs(scale - 1.0) < 1e-6:
        return img
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS))


def _same_size(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return views_mod.resize(b, (a.shape[1], a.shape[0]))


def prepare_views(views: Views, cfg: MemberConfig) -> tuple[np.ndarray, ...]:
    """Resize the four views once (kept in memory); crops are taken per epoch by `crop_views`."""
    gl = _resize_short(views.global_left, cfg.resize)
    gr = _same_size(gl, _resize_short(views.global_right, cfg.resize))
    local_short = cfg.local_resize if cfg.local_resize > 0 else max(cfg.img_size, min(views.local_left.shape[:2]))
    local_short = max(local_short, cfg.img_size)
    ll = _resize_short(views.local_left, local_short)
    lr = _same_size(ll, _resize_short(views.local_right, local_short))
    return (gl, gr, ll, lr) if cfg.mode == "split" else (gl, gr)


def crop_views(prepared: Sequence[np.ndarray], size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Aligned crops: the same window in left and right, random (with a shared flip) or central.

    Returns:
        uint8 array (V, size, size, 3).
    """
    flip = bool(rng.random() < 0.5) if rng is not None else False
    out = []
    for i in range(0, len(prepared), 2):
        left, right = prepared[i], prepared[i + 1]
        h, w = left.shape[:2]
        if rng is not None:
            y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        else:
            y, x = (h - size) // 2, (w - size) // 2
        for img in (left, right):
            crop = img[y:y + size, x:x + size]
            out.append(crop[:, ::-1] if flip else crop)
    return np.stack(out)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(B, V, H, W, 3) uint8 -> (B, V, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 1, 4, 2, 3).float().div_(255.0)


@dataclass
class Item:
    """One training or evaluation sample: prepared views and, when labelled, 1.0 if A is better."""

    id: str
    views: tuple[np.ndarray, ...]
    label: float | None = None
    category: str | None = None


def label_of(pair: Pair) -> float | None:
    return None if pair.answer is None else float(pair.answer == "A")


def load_items(pairs: Iterable[Pair], cfg: MemberConfig, desc: str = "loading views",
               cache: dict | None = None) -> list[Item]:
    """Decode, split and resize every pair's views once (shared `cache` across members of one size).

    Raises:
        DataError: naming the pair's file and line when an image is missing or unreadable.
    """
    pairs = list(pairs)
    items = []
    split_cfg = MemberConfig(**{**cfg.to_dict(), "mode": "split"})
    key_cfg = (cfg.resize, cfg.local_resize, cfg.img_size)
    n_views = 4 if cfg.mode == "split" else 2
    for pair in tqdm(pairs, desc=desc, leave=False, disable=len(pairs) < 20):
        key = (pair.id, str(pair.source), key_cfg)
        if cache is not None and key in cache:
            prepared = cache[key]
        else:
            prepared = prepare_views(load_views(pair), split_cfg)
            if cache is not None:
                cache[key] = prepared
        items.append(Item(pair.id, prepared[:n_views], label_of(pair), pair.category))
    return items


# --------------------------------------------------------------------------- training
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def device_of(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _batches(n: int, size: int) -> Iterable[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


@torch.no_grad()
def predict_items(model: PairwiseModel, items: Sequence[Item], batch_size: int = 16,
                  device: torch.device | None = None, desc: str | None = None) -> np.ndarray:
    """p(A is better) for each item, on central aligned crops."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    size = model.cfg.img_size
    for idx in tqdm(list(_batches(len(items), batch_size)), desc=desc or "predicting", leave=False,
                    disable=len(items) < 4 * batch_size):
        x = to_tensor(np.stack([crop_views(items[i].views, size, None) for i in idx])).to(device)
        with _autocast(device):
            out.append(torch.sigmoid(model(x).float()).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float):
    warmup = max(1, int(round(total_steps * warmup_frac)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj: dict, path: Path) -> None:
    with storage.atomic_path(path) as tmp:
        torch.save(obj, tmp)


@dataclass
class TrainResult:
    """What `train_member` leaves behind: the folder, the best model and the epoch history."""

    member_dir: Path
    model: PairwiseModel
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float | None = None
    seconds: float = 0.0


SyntheticSource = Callable[[int, np.random.Generator], list[Item]]


def train_member(
    cfg: MemberConfig,
    train_items: Sequence[Item],
    val_items: Sequence[Item] = (),
    member_dir: str | Path = "member",
    *,
    resume: bool = True,
    synthetic: SyntheticSource | None = None,
    device: str | None = None,
    on_step: Callable[[int, int], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train one member; every epoch ends with ``last.pt`` (resumable) and, when val improves, ``best.pt``.

    Args:
        cfg: the member's settings (its `category` filters the items to person or scene).
        train_items / val_items: from `load_items` (labelled).
        member_dir: output folder (config.json, last.pt, best.pt, history.json).
        resume: continue from ``last.pt`` when it exists and was made with the same settings.
        synthetic: a callable (n, rng) -> items giving `cfg.synthetic_pairs` fresh pairs per epoch.
        on_step: called as on_step(epoch, step) after each optimiser step (tests interrupt here).

    Raises:
        ParameterError: when `last.pt` was made with other settings, or no training items remain.
    """
    t0 = time.monotonic()
    member_dir = Path(member_dir)
    member_dir.mkdir(parents=True, exist_ok=True)
    dev = device_of(device)
    train_items = [it for it in train_items if it.label is not None and (not cfg.category or it.category == cfg.category)]
    val_items = [it for it in val_items if it.label is not None and (not cfg.category or it.category == cfg.category)]
    if not train_items and not (synthetic and cfg.synthetic_pairs):
        raise ParameterError(f"member {cfg.name}: no labelled training pairs"
                             + (f" of category {cfg.category!r}" if cfg.category else ""))
    seed_everything(cfg.seed)
    model = build_model(cfg).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    n_per_epoch = len(train_items) + (cfg.synthetic_pairs if synthetic else 0)
    steps_per_epoch = math.ceil(n_per_epoch / cfg.batch_size)
    scheduler = _schedule(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_frac)
    history: list[dict[str, Any]] = []
    best = -1.0
    start_epoch = 0
    last = member_dir / "last.pt"
    if resume and last.exists():
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state["config"] != cfg.to_dict():
            raise ParameterError(f"{last} was made with other settings; fix: delete {member_dir} or pass resume=False")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
    storage.write_json(member_dir / "config.json", cfg.to_dict())  # after the resume check: never beside other settings' checkpoints
    loss_fn = nn.BCEWithLogitsLoss()
    for epoch in range(start_epoch, cfg.epochs):
        te = time.monotonic()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1009 + epoch)
        items = list(train_items)
        if synthetic is not None and cfg.synthetic_pairs:
            fresh = synthetic(cfg.synthetic_pairs, np.random.default_rng([cfg.seed, epoch, 7]))
            items += [it for it in fresh if not cfg.category or it.category == cfg.category]  # specialists: own category
        order = rng.permutation(len(items))
        model.train()
        losses, correct, seen = [], 0, 0
        bar = tqdm(list(_batches(len(items), cfg.batch_size)), desc=f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}",
                   leave=False, disable=not progress)
        for step, idx in enumerate(bar):
            crops, labels = [], []
            for i in idx:
                it = items[order[i]]
                views, label = it.views, float(it.label)
                if cfg.swap_aug and rng.random() < 0.5:
                    views = tuple(views[j ^ 1] for j in range(len(views)))  # exchange A and B
                    label = 1.0 - label
                crops.append(crop_views(views, cfg.img_size, rng))
                labels.append(label)
            x, y = to_tensor(np.stack(crops)).to(dev), torch.tensor(labels, device=dev)
            with _autocast(dev):
                logit = model(x).float()
            loss = loss_fn(logit, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            correct += int(((logit > 0).float() == y).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            if on_step is not None:
                on_step(epoch, step)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "train_acc": correct / max(1, seen),
                               "n_train": seen, "lr": scheduler.get_last_lr()[0]}
        if val_items:
            p = predict_items(model, val_items, device=dev)
            y_val = np.array([it.label for it in val_items])
            eps = 1e-6
            row["val_loss"] = float(-np.mean(y_val * np.log(p + eps) + (1 - y_val) * np.log(1 - p + eps)))
            row["val_acc"] = float(np.mean((p > 0.5) == (y_val > 0.5)))
        row["seconds"] = round(time.monotonic() - te, 2)
        history.append(row)
        score = row.get("val_acc", row["train_acc"])
        if score > best:
            best = score
            _save({"config": cfg.to_dict(), "model": model.state_dict(), "epoch": epoch, "val_acc": row.get("val_acc")},
                  member_dir / "best.pt")
        _save({"config": cfg.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "rng": _rng_state(), "epoch": epoch, "history": history,
               "best": best}, last)
        storage.write_json(member_dir / "history.json", history)
    best_model = load_member(member_dir, device=str(dev))[1]
    return TrainResult(member_dir, best_model, history, best if val_items else None, time.monotonic() - t0)


def load_member(member_dir: str | Path, which: str = "best", device: str | None = None) -> tuple[MemberConfig, PairwiseModel]:
    """A trained member from its folder (no network: the weights are all in the checkpoint)."""
    path = Path(member_dir) / f"{which}.pt"
    if not path.exists():
        raise DataError(path, "member checkpoint not found", "train the member first (notebook 02), or check --run")
    state = torch.load(path, map_location="cpu", weights_only=False)
    cfg = MemberConfig.from_dict({**state["config"], "pretrained": False, "checkpoint": "", "init": ""})
    model = PairwiseModel(cfg)
    model.load_state_dict(state["model"])
    model.to(device_of(device)).eval()
    return cfg, model


# --------------------------------------------------------------------------- profiles
def profile_members(profile: str, backbones: Sequence[str] | None = None, **settings: Any) -> list[MemberConfig]:
    """Generalist member configs for a profile; `settings` override the dataclass defaults.

    The paper profile defaults to pretrained=True, resize 256 -> crop 224, AdamW 1e-4 / wd 1e-4,
    batch 32, 10 epochs, seed 42 (the dataclass defaults).
    """
    if profile not in PROFILE_MEMBERS:
        raise ParameterError(f"unknown profile {profile!r}.{suggest(profile, PROFILE_MEMBERS)}")
    names = list(backbones) if backbones else list(PROFILE_MEMBERS[profile])
    base = {"pretrained": profile == "paper"}
    base.update(settings)
    configs = []
    for name in names:
        resolve_backbone(name)
        configs.append(MemberConfig.from_dict({"name": name, "backbone": name, **base}))
    return configs


# --------------------------------------------------------------------------- CLI
def add_cli(sub: argparse._SubParsersAction) -> None:
    answer = sub.add_parser("answer", help="the answer model (A or B)")
    asub = answer.add_subparsers(dest="answer_command", required=True)
    pred = asub.add_parser("predict", help="predict A/B for every pair of a JSONL file with a trained run")
    pred.add_argument("--run", required=True, help="the run folder of notebook 02 (holds ensemble.json), or the chain's run folder")
    pred.add_argument("--data", required=True, help="a RAIM-PIQA JSONL file (labelled or unlabeled)")
    pred.add_argument("--out", required=True, help="where to write the predictions (JSONL, one object per pair)")
    pred.add_argument("--data-root", default=None, help="a folder to look for images in when the paths do not resolve")
    pred.add_argument("--batch-size", type=int, default=16)
    pred.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    pred.add_argument("--skip-bad", action="store_true", help="write an error row for unreadable pairs instead of stopping")
    pred.set_defaults(func=_cli_predict)


def _cli_predict(args: argparse.Namespace) -> int:
    from idiff_lib.answer import ensemble
    from idiff_lib.data.pairs import read_pairs

    pairs = read_pairs(args.data, data_root=args.data_root, skip_bad=args.skip_bad)
    ens = ensemble.load_run(args.run, device=args.device)
    rows = ensemble.predict_rows(ens, pairs, batch_size=args.batch_size, skip_bad=args.skip_bad)
    for err in pairs.skipped:
        rows.append({"id": None, "answer": None, "p_left": None, "error": str(err)})
    storage.write_jsonl(args.out, rows)
    labelled = [r for r in rows if r.get("label") is not None and r.get("answer") is not None]
    msg = f"wrote {len(rows)} predictions to {args.out}"
    if labelled:
        acc = sum(r["answer"] == r["label"] for r in labelled) / len(labelled)
        msg += f" (accuracy {acc:.3f} on {len(labelled)} labelled pairs)"
    bad = sum(r.get("error") is not None for r in rows)
    if bad:
        msg += f"; {bad} bad pair(s) reported in 'error'"
    print(msg)
    return 0

