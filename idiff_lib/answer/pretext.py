"""A quality-aware start for small backbones: degradation recognition, and an on-the-fly pair stream.

No ImageNet weights can be downloaded on the CPU profile, and a backbone trained from scratch on
~300 fixed pairs learns the photos rather than the defects. So each backbone is first trained to
recognise degradations on random crops of the **training** photos, with labels that cost nothing:
which defect was applied (or none), how strongly, and how much of the crop its region mask covers.
The defects come from `idiff_lib.benchmark.degrade` (the generator of the embedded benchmark), drawn without
limit. This is the self-supervised "learn the distortions first" idea of e.g. RankIQA (Liu et al.,
ICCV 2017) and CONTRIQUE (Madhusudana et al., IEEE TIP 2022), in its simplest supervised form.

`synthetic_factory` gives the pairwise training the same unlimited supply: fresh pairs rendered by
`degrade.sample_pair` from the training photos, cut into the four views like the data folder's.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from idiff_lib.answer import model as am
from idiff_lib.benchmark import degrade
from idiff_lib.core import storage
from idiff_lib.data.content import detect_faces
from idiff_lib.data.views import Views, detail_box, load_views, resize, split_merged

NONE = "none"


@dataclass
class Photo:
    """A training photo with what the degradation code needs, computed once."""

    id: str
    rgb: np.ndarray
    category: str
    faces: list
    masks: dict[str, np.ndarray]


def _meta_sources(data_dir: str | Path | None) -> dict[str, str]:
    """pair id -> source photo name, from ``<data_dir>/meta/train.jsonl`` when the folder has one."""
    meta = Path(data_dir) / "meta" / "train.jsonl" if data_dir else None
    sources: dict[str, str] = {}
    if meta is None or not meta.exists():
        return sources
    for row in storage.read_jsonl_rows(meta):
        src = next((row[k] for k in ("photo", "source", "source_photo") if row.get(k)), None)
        if isinstance(src, dict):
            src = src.get("name") or src.get("id") or src.get("photo")
        if row.get("id") and src:
            sources[str(row["id"])] = str(src)
    return sources


def training_photos(train_split: Any, data_dir: str | Path | None = None, limit: int = 0) -> list[Photo]:
    """The training split's source photos (never a val or test photo).

    When the data folder's ``meta/train.jsonl`` names catalogue photos (`idiff_lib.benchmark.photos`, as the
    embedded benchmark does), those pristine photos are loaded. Otherwise (a user's own data) the
    better rendition's global view of each training pair stands in for the photo: it is the least
    degraded image of that shot the training data holds.
    """
    from idiff_lib.benchmark import photos as catalogue

    sources = _meta_sources(data_dir)
    out, seen = [], set()
    for pair, cat in zip(train_split.pairs, train_split.categories):
        key = sources.get(pair.id, pair.id)
        if key in seen:
            continue
        seen.add(key)
        if key in catalogue.PHOTOS:
            photo = catalogue.load_photo(key)
            rgb, cat, faces = np.ascontiguousarray(photo.rgb), photo.category, list(photo.faces)
        else:
            views = load_views(pair)
            rgb = views.global_left if pair.answer == "A" else views.global_right
            faces = detect_faces(rgb) if cat == "person" else []
        out.append(Photo(str(key), rgb, cat, faces, degrade.region_masks(rgb, faces, cat)))
        if limit and len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------- the pretext task
KINDS = (NONE, *degrade.DEFECTS)


class PretextModel(nn.Module):
    """Backbone + three heads: defect kind (classes), severity and region coverage (regressions)."""

    def __init__(self, cfg: am.MemberConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = am.create_backbone(cfg)
        dim = am.feature_dim(self.backbone)
        self.kind = nn.Linear(dim, len(KINDS))
        self.severity = nn.Linear(dim, 1)
        self.coverage = nn.Linear(dim, 1)
        import timm

        data_cfg = timm.data.resolve_model_data_config(self.backbone)
        self.register_buffer("mean", torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_cfg["std"]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.backbone((x - self.mean) / self.std)
        return self.kind(f), self.severity(f).squeeze(1), self.coverage(f).squeeze(1)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip (4:2:0), as data sets store their views."""
    return _decode(_encode(img, quality))


def pretext_batch(photos: Sequence[Photo], n: int, crop: int, rng: np.random.Generator,
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


def pretrain(cfg: am.MemberConfig, photos: Sequence[Photo], steps: int, out: str | Path, *, batch: int = 32,
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
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st.get("steps") == steps and st.get("backbone") == cfg.backbone:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            start, log = st["step"], st["log"]
    if start >= steps and out.exists():
        return out
    model.train()
    t0 = time.monotonic()
    bar = tqdm(range(start, steps), desc=f"pretext {cfg.backbone}", leave=False, disable=not progress)
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
            with storage.atomic_path(state_path) as tmp:
                torch.save({"step": step + 1, "steps": steps, "backbone": cfg.backbone, "model": model.state_dict(),
                            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "log": log}, tmp)
    with storage.atomic_path(out) as tmp:
        torch.save({"backbone": model.backbone.state_dict(), "name": cfg.backbone, "steps": steps}, tmp)
    storage.write_json(out.with_suffix(".json"), {"backbone": cfg.backbone, "steps": steps, "log": log,
                                                  "seconds_this_run": round(time.monotonic() - t0, 1)})
    return out


def pretrain_backbones(settings: Any, train_split: Any, data_dir: str | Path, out_dir: str | Path,
                       progress: bool = True) -> dict[str, str]:
    """Pretext-pretrain every backbone of notebook 02's settings; backbone -> checkpoint path."""
    torch.set_num_threads(max(1, settings.threads))
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


# --------------------------------------------------------------------------- the pair stream
def views_of(a: np.ndarray, b: np.ndarray, global_hw: tuple[int, int], local_side: int) -> Views:
    """Four views of a rendered pair: globals resized like the data's, aligned detail crops at native pixels."""
    side = min(local_side, *a.shape[:2])
    x, y, w, h = detail_box(a, b, side / min(a.shape[:2]))
    wh = (global_hw[1], global_hw[0])
    return Views(resize(a, wh), resize(b, wh), a[y:y + h, x:x + w], b[y:y + h, x:x + w])


def _benchmark_sample(name: str, rng: np.random.Generator, index: int, jpeg_quality: int) -> tuple[bytes, bytes, str, str]:
    """One pair drawn exactly as `idiff_lib.benchmark.build` draws the benchmark's (crop, scale, defects, views)."""
    from idiff_lib.benchmark import build as demo_data

    plan = {"id": f"syn_{index}", "photo": name, "answer": str(rng.choice(["A", "B"])), "index": index}
    sample = demo_data.make_sample(plan, "train", int(rng.integers(2**31)))
    return _encode(sample.c0, jpeg_quality), _encode(sample.c1, jpeg_quality), sample.meta["answer"], sample.meta["category"]


def _encode(img: np.ndarray, quality: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG" if not quality else "JPEG", quality=quality or 95, subsampling=2)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


class SyntheticSource:
    """Fresh labelled pairs rendered from the training photos: ``generate(n, rng)``.

    When the data folder's ``meta/train.jsonl`` names catalogue photos (the embedded benchmark),
    pairs are drawn by the benchmark's own generator (`demo_data.make_sample`: crop, scale,
    defects, detail window) and stored through the same JPEG q80 round trip; otherwise
    `degrade.sample_pair` renders the stand-in photos of `training_photos` and `views_of` cuts
    their views. Each pair is ``(c0 bytes, c1 bytes, answer, category)``.

    `catalogue_names` overrides which catalogue photos the benchmark's generator draws from (e.g.
    the val / test photos, for held-out pairs no training pair shares a photo with).
    """

    def __init__(self, train_split: Any, data_dir: str | Path | None = None, photos: Sequence[Photo] | None = None,
                 jpeg_quality: int = 80, catalogue_names: Sequence[str] | None = None):
        from idiff_lib.benchmark import photos as catalogue

        self.jpeg_quality = jpeg_quality
        if catalogue_names is not None:
            self.names = sorted(catalogue.check_name(n).name for n in catalogue_names)
        else:
            self.names = sorted({v for v in _meta_sources(data_dir).values() if v in catalogue.PHOTOS})
        self.photos: list[Photo] = []
        if not self.names:
            self.photos = list(photos) if photos is not None else training_photos(train_split, data_dir)
            first = load_views(train_split.pairs[0])
            self.global_hw, self.local_side = first.global_left.shape[:2], min(first.local_left.shape[:2])

    def generate(self, n: int, rng: np.random.Generator, progress: bool = True) -> list[tuple[bytes, bytes, str, str]]:
        out = []
        for k in tqdm(range(n), desc="synthetic pairs", leave=False, disable=not progress or n < 50):
            if self.names:
                out.append(_benchmark_sample(self.names[int(rng.integers(len(self.names)))], rng, k, self.jpeg_quality))
                continue
            photo = self.photos[int(rng.integers(len(self.photos)))]
            sample = degrade.sample_pair(photo.rgb, rng, faces=photo.faces, category=photo.category, masks=photo.masks)
            v = views_of(sample.a, sample.b, self.global_hw, self.local_side)
            out.append((_encode(np.concatenate([v.global_left, v.global_right], 1), self.jpeg_quality),
                        _encode(np.concatenate([v.local_left, v.local_right], 1), self.jpeg_quality),
                        sample.answer, photo.category))
        return out


def decoded_views(c0: bytes, c1: bytes) -> Views:
    """The four views of a generated pair's encoded merged images."""
    gl, gr = split_merged(_decode(c0))
    ll, lr = split_merged(_decode(c1))
    return Views(gl, gr, ll, lr)


def synthetic_factory(train_split: Any, data_dir: str | Path | None = None, photos: Sequence[Photo] | None = None,
                      jpeg_quality: int = 80) -> Callable[[am.MemberConfig], Callable]:
    """cfg -> (n, rng) -> items: fresh labelled pairs from `SyntheticSource`, as training items.

    Draws are cached by the RNG's seed, so members trained with the same seed and epoch share one
    draw (generated once).
    """
    source = SyntheticSource(train_split, data_dir, photos, jpeg_quality)
    drawn: dict[tuple, list[tuple[bytes, bytes, str, str]]] = {}

    def generate(n: int, rng: np.random.Generator) -> list[tuple[bytes, bytes, str, str]]:
        key = (tuple(np.atleast_1d(rng.bit_generator.seed_seq.entropy).tolist()), n)
        if key not in drawn:
            drawn[key] = source.generate(n, rng)
        return drawn[key]

    def for_member(cfg: am.MemberConfig) -> Callable[[int, np.random.Generator], list[am.Item]]:
        split_cfg = am.MemberConfig(**{**cfg.to_dict(), "mode": "split"})
        n_views = 4 if cfg.mode == "split" else 2

        def draw(n: int, rng: np.random.Generator) -> list[am.Item]:
            items = []
            for k, (c0, c1, answer, category) in enumerate(generate(n, rng)):
                prepared = am.prepare_views(decoded_views(c0, c1), split_cfg)
                items.append(am.Item(f"syn_{k}", prepared[:n_views], float(answer == "A"), category))
            return items

        return draw

    return for_member


# --------------------------------------------------------------------------- synthetic cue table
_WORKER_SOURCE: SyntheticSource | None = None


def _cue_chunk(seed: int, index: int, size: int) -> pd.DataFrame:
    """One chunk of synthetic pairs with their pair cues (deterministic in seed and index)."""
    from idiff_lib.features import pair_cues

    assert _WORKER_SOURCE is not None
    rng = np.random.default_rng([seed, index, 23])
    rows = []
    for k, (c0, c1, answer, category) in enumerate(_WORKER_SOURCE.generate(size, rng, progress=False)):
        row = pair_cues.pair_cues(decoded_views(c0, c1))
        row.update({"label": float(answer == "A"), "meta.person": float(category == "person")})
        rows.append(pd.Series(row, name=f"syn_{seed}_{index}_{k}"))
    return pd.DataFrame(rows)


def synthetic_cue_table(source: SyntheticSource, n: int, out_dir: str | Path, seed: int = 0, chunk: int = 250,
                        workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """`n` synthetic pairs' `pair_cues` columns plus ``label`` (1 = A better), for the feature member.

    Chunks of `chunk` pairs are written to ``out_dir/chunk_<seed>_<index>.parquet`` atomically as
    they finish, so an interrupted build resumes and a rerun with the same seed reads them back.
    `workers` processes share the work (the generator and the cues are single-threaded NumPy/OpenCV).
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    from idiff_lib.features import pair_cues

    global _WORKER_SOURCE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [min(chunk, n - i) for i in range(0, n, chunk)]
    path = lambda i: out_dir / f"chunk_{pair_cues.VERSION}_{seed}_{i:04d}.parquet"  # noqa: E731
    todo = [i for i in range(len(sizes)) if not path(i).exists()]
    _WORKER_SOURCE = source
    bar = tqdm(total=n, initial=n - sum(sizes[i] for i in todo), desc="synthetic cue pairs", unit="pair",
               disable=not progress)

    def save(i: int, frame: pd.DataFrame) -> None:
        with storage.atomic_path(path(i)) as tmp:
            frame.to_parquet(tmp)
        bar.update(sizes[i])

    try:
        if workers > 1 and len(todo) > 1 and "fork" in mp.get_all_start_methods():
            with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                futures = {pool.submit(_cue_chunk, seed, i, sizes[i]): i for i in todo}
                for fut in cf.as_completed(futures):
                    save(futures[fut], fut.result())
        else:
            for i in todo:
                save(i, _cue_chunk(seed, i, sizes[i]))
    finally:
        bar.close()
        _WORKER_SOURCE = None
    frames = [pd.read_parquet(path(i)) for i in range(len(sizes))]
    return pd.concat(frames) if frames else pd.DataFrame()
