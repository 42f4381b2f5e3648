"""A quality-aware start for small backbones: degradation recognition on the training photos.

No ImageNet weights can be downloaded on the CPU profile, and a backbone trained from scratch on
~300 fixed pairs learns the photos rather than the defects. So each backbone is first trained to
recognise degradations on random crops of the **training** photos, with labels that cost nothing:
which defect was applied (or none), how strongly, and how much of the crop its region mask covers.
The defects come from `idiff_lib.data.degrade` (the generator of the embedded benchmark), drawn without
limit. This is the self-supervised "learn the distortions first" idea of e.g. RankIQA (Liu et al.,
ICCV 2017) and CONTRIQUE (Madhusudana et al., IEEE TIP 2022), in its simplest supervised form.

The pairwise training gets the same unlimited supply from `idiff_lib.answer.train.synthetic`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # alias: PyTorch's usual short name
from PIL import Image
from torch import nn

from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.answer.model.backbones import create_backbone, feature_dim
from idiff_lib.answer.model.checkpoints import load_weights, save_weights
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.train.splits import Split
from idiff_lib.answer.train.training_photos import TrainingPhoto, decode_image, encode_image, training_photos
from idiff_lib.core import storage
from idiff_lib.core.progress import progress_bar
from idiff_lib.data import degrade

NONE = "none"  # the pretext class of an undegraded crop
KINDS = (NONE, *degrade.DEFECTS)


class PretextModel(nn.Module):
    """Backbone + three heads: defect kind (classes), severity and region coverage (regressions)."""

    def __init__(self, cfg: MemberConfig):
        import timm  # deferred: heavy

        super().__init__()
        self.cfg = cfg
        self.backbone = create_backbone(cfg)
        dim = feature_dim(self.backbone)
        self.kind = nn.Linear(dim, len(KINDS))
        self.severity = nn.Linear(dim, 1)
        self.coverage = nn.Linear(dim, 1)

        data_cfg = timm.data.resolve_model_data_config(self.backbone)
        self.register_buffer("mean", torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_cfg["std"]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.backbone((x - self.mean) / self.std)
        return self.kind(f), self.severity(f).squeeze(1), self.coverage(f).squeeze(1)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip (4:2:0), as data sets store their views."""
    return decode_image(encode_image(img, quality))


def pretext_batch(photos: Sequence[TrainingPhoto], n: int, crop: int, rng: np.random.Generator,
                  crops_per_render: int = 4, jpeg_quality: int = 80) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`n` labelled crops: each render applies one defect (or none) to a window of a photo.

    Crops are taken at half, full and double scale, and stored through a JPEG round trip at
    `jpeg_quality` (0 to skip), as the pairs' views are (the embedded benchmark writes q80).
    """
    xs, kinds, sev, cov = [], [], [], []
    while len(xs) < n:
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.rgb.shape[:2]
        win = min(h, w, 4 * crop)
        y0, x0 = int(rng.integers(0, h - win + 1)), int(rng.integers(0, w - win + 1))
        window = photo.rgb[y0:y0 + win, x0:x0 + win]
        kind = KINDS[int(rng.integers(len(KINDS)))]
        severity = float(rng.uniform(0.2, 1.0)) if kind != NONE else 0.0
        if kind == NONE:
            mask, out = np.zeros(window.shape[:2], np.float32), window
        else:
            region = str(rng.choice([r for r in photo.masks]))
            mask = photo.masks[region][y0:y0 + win, x0:x0 + win]
            out = degrade.apply(window, kind, severity, None if region == "global" else mask, rng)
        for _ in range(crops_per_render):
            # Three scales, as the views show a photo: shrunk (a global view), as is, and enlarged
            # 2x (a detail view blown up for inspection).
            scale = float(rng.choice([0.5, 1.0, 2.0]))
            side = int(round(crop / scale))
            if side > win:
                scale, side = 1.0, crop
            cy, cx = int(rng.integers(0, win - side + 1)), int(rng.integers(0, win - side + 1))
            img = out[cy:cy + side, cx:cx + side]
            if side != crop:
                resample = Image.Resampling.BICUBIC if side < crop else Image.Resampling.LANCZOS
                img = np.asarray(Image.fromarray(img).resize((crop, crop), resample))
            xs.append(_jpeg(img, jpeg_quality) if jpeg_quality else img)
            c = float(mask[cy:cy + side, cx:cx + side].mean()) if kind != NONE else 0.0
            kinds.append(KINDS.index(kind) if c > 0.05 else 0)  # a crop the region misses looks clean
            sev.append(severity if c > 0.05 else 0.0)
            cov.append(c)
            if len(xs) >= n:
                break
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div_(255.0)
    return x, {"kind": torch.tensor(kinds), "severity": torch.tensor(sev, dtype=torch.float32),
               "coverage": torch.tensor(cov, dtype=torch.float32)}


def pretrain(cfg: MemberConfig, photos: Sequence[TrainingPhoto], steps: int, out: str | Path, *, batch: int = 32,
             crop: int = 96, lr: float = 2e-3, save_every: int = 50, progress: bool = True) -> Path:
    """Train `cfg.backbone` on the pretext task; writes ``<out>`` (backbone state) and resumes from it.

    The checkpoint holds the step, model, optimiser and scheduler, so an interrupted run continues;
    the batches are drawn from an RNG seeded by (seed, step), so a resumed run sees the same data.
    """
    out = Path(out)
    state_path = out.with_suffix(".state.pt")
    torch.manual_seed(cfg.seed)  # the heads' initialisation: the same in every process
    model = PretextModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.1)
    start, log = 0, []
    if state_path.exists():
        st = load_weights(state_path, f"delete {state_path} to pretrain {cfg.backbone} from the start")
        if st.get("steps") == steps and st.get("backbone") == cfg.backbone:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            start, log = st["step"], st["log"]
    if start >= steps and out.exists():
        return out
    model.train()
    t0 = time.monotonic()
    bar = progress_bar(range(start, steps), desc=f"pretext {cfg.backbone}", leave=False, disable=not progress)
    for step in bar:
        rng = np.random.default_rng([cfg.seed, step, 11])
        torch.manual_seed(cfg.seed * 7919 + step)
        x, y = pretext_batch(photos, batch, crop, rng)
        kind, sev, cov = model(x)
        loss = F.cross_entropy(kind, y["kind"]) + F.mse_loss(sev, y["severity"]) + F.mse_loss(cov, y["coverage"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc = float((kind.argmax(1) == y["kind"]).float().mean())
        log.append({"step": step + 1, "loss": float(loss.detach()), "kind_acc": acc})
        bar.set_postfix(loss=f"{log[-1]['loss']:.3f}", acc=f"{acc:.2f}")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_weights({"step": step + 1, "steps": steps, "backbone": cfg.backbone, "model": model.state_dict(),
                          "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "log": log}, state_path)
    save_weights({"backbone": model.backbone.state_dict(), "name": cfg.backbone, "steps": steps}, out)
    storage.write_json(out.with_suffix(".json"), {"backbone": cfg.backbone, "steps": steps, "log": log,
                                                  "seconds_this_run": round(time.monotonic() - t0, 1)})
    return out


def pretrain_backbones(settings: AnswerSettings, train_split: Split, data_dir: str | Path, out_dir: str | Path,
                       progress: bool = True) -> dict[str, str]:
    """Pretext-pretrain every backbone of notebook 02's settings; backbone -> checkpoint path."""
    photos = training_photos(train_split, data_dir)
    out_dir = Path(out_dir)
    paths = {}
    for name in settings.backbones:
        cfg = settings.member(name)
        paths[name] = str(pretrain(cfg, photos, settings.pretext_steps, out_dir / f"{name}.pt",
                                   batch=settings.pretext_batch, crop=settings.pretext_crop, progress=progress))
    return paths


def summary(out_dir: str | Path) -> pd.DataFrame:
    """Per backbone: steps, final loss and defect-kind accuracy (mean of the last 20 steps)."""
    rows = []
    for path in sorted(Path(out_dir).glob("*.json")):
        info = json.loads(path.read_text(encoding="utf-8"))
        tail = info["log"][-20:]
        rows.append({"backbone": info["backbone"], "steps": info["steps"],
                     "loss": float(np.mean([r["loss"] for r in tail])) if tail else math.nan,
                     "kind_acc": float(np.mean([r["kind_acc"] for r in tail])) if tail else math.nan,
                     "chance": 1 / len(KINDS)})
    return pd.DataFrame(rows)


