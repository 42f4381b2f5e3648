"""No-reference IQA-model features through pyiqa (Chen et al., "TOPIQ", IEEE TIP 2024, and the IQA-PyTorch toolbox).

Metrics: PIQE (Venkatanath et al., NCC 2015) needs no weights; LIQE
(Zhang et al., CVPR 2023) and Q-Align (Wu et al., ICML 2024), which the iDiff paper names, and
TOPIQ-NR, MUSIQ (Ke et al., ICCV 2021) and CLIP-IQA (Wang et al., AAAI 2023) are used only when
their weights are already on disk. pyiqa's grey-level ``entropy`` also runs offline and can be asked
for by name, but it is not in the default set: it equals the hand-crafted entropy feature of
`idiff_lib.features.cv` exactly and costs about 0.2 s per view (100x PIQE), which dominated the
feature table's time.

Where pyiqa looks (read from its source, pyiqa 0.1.16): checkpoints are fetched by
``pyiqa.utils.download_util.load_file_from_url`` into ``torch.hub.get_dir()/pyiqa`` (its
``DEFAULT_CACHE_DIR``); CLIP backbones by ``pyiqa.archs.clip_model.load`` into
``torch.hub.get_dir()/clip``; Q-Align by ``transformers.from_pretrained('q-future/one-align')``
into the Hugging Face hub cache. This module checks those files BEFORE creating a metric, so a
missing weight is one warning naming the file and URL, the metric's columns are left out, and
nothing ever touches the network. A `weights_dir` laid out like torch hub's folder (``pyiqa/``,
``clip/``; pyiqa checkpoints may also sit at its top level) can be given instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import try_to_load_from_cache

from idiff_lib.core.errors import OfflineError, ParameterError, suggest
from idiff_lib.core.imaging import MIN_SIDE, to_rgb, working_size
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import Views

OFFLINE_METRICS = ("piqe",)
WEIGHTLESS_METRICS = OFFLINE_METRICS + ("entropy",)  # run offline; entropy only when asked for by name
LEARNED_METRICS = ("liqe", "qalign", "topiq_nr", "musiq", "clipiqa")
DEFAULT_METRICS = OFFLINE_METRICS + LEARNED_METRICS
IQA_SIDE = 512  # px: views are downscaled to this long side before scoring (PIQE takes ~10 ms per 320x256 view)
IQA_VERSION = f"v1-{IQA_SIDE}"
QALIGN_REPO = "q-future/one-align"


@dataclass(frozen=True)
class Weight:
    """One file a metric needs: `kind` is "pyiqa", "clip" or "hf" (a Hugging Face repo id in `name`)."""

    kind: str
    name: str
    url: str


# Checkpoint names from pyiqa 0.1.16's ``default_model_urls`` tables (liqe_arch 'koniq', musiq_arch
# 'koniq10k', topiq_arch 'cfanet_nr_koniq_res50'). They are listed here rather than read from those
# modules because importing liqe_arch/clipiqa_arch imports the `clip` package, which may be broken
# (it needs setuptools' pkg_resources, so the project pins setuptools<81); tests check the names against the importable tables.
CHECKPOINTS = {"liqe": "liqe_koniq.pt", "musiq": "musiq_koniq_ckpt-e95806b9.pth",
               "topiq_nr": "cfanet_nr_koniq_res50-9a73138b.pth"}
CLIP_BACKBONES = {"liqe": "ViT-B/32", "clipiqa": "RN50"}
ARCH_MODULES = {"liqe": "liqe_arch", "musiq": "musiq_arch", "topiq_nr": "topiq_arch", "clipiqa": "clipiqa_arch",
                "qalign": "qalign_arch"}


def _pyiqa_weight(name: str) -> Weight:
    from pyiqa.archs.arch_util import get_url_from_name  # deferred: heavy

    return Weight("pyiqa", name, get_url_from_name(name))


def _clip_weight(name: str) -> Weight:
    from pyiqa.archs.clip_model import _MODELS  # deferred: heavy

    url = _MODELS[name]
    return Weight("clip", os.path.basename(url), url)


def required_weights(metric: str) -> list[Weight]:
    """The files `metric` loads, with their download URLs (pyiqa's URL helper and CLIP table)."""
    if metric in WEIGHTLESS_METRICS:
        return []
    if metric == "qalign":
        return [Weight("hf", QALIGN_REPO, f"https://huggingface.co/{QALIGN_REPO}")]
    if metric not in LEARNED_METRICS:
        known = WEIGHTLESS_METRICS + LEARNED_METRICS
        raise ParameterError(f"unknown IQA metric {metric!r}; choose from {known}.{suggest(metric, known)}")
    # topiq_nr: the CFANet checkpoint holds the ResNet-50 backbone too, so timm's ImageNet weights are not needed
    out = [_pyiqa_weight(CHECKPOINTS[metric])] if metric in CHECKPOINTS else []
    if metric in CLIP_BACKBONES:
        out.append(_clip_weight(CLIP_BACKBONES[metric]))
    return out


_IMPORT_CHECK = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module("pyiqa.archs." + name)
        out[name] = None
    except ImportError as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


@cache
def _import_problems() -> dict[str, str | None]:
    """Import every learned metric's pyiqa module once, in a child process.

    A child, because importing pyiqa's Q-Align code replaces transformers' Llama classes in the
    whole process (``replace_llama_modality_adaptive``), which would break any Llama-based language
    model loaded later in it (the Thinking Model's SmolLM2).
    """
    modules = sorted(set(ARCH_MODULES.values()))
    done = subprocess.run([sys.executable, "-c", _IMPORT_CHECK, *modules], capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0 or not done.stdout.strip():
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {m: f"import check failed: {reason[:200]}" for m in modules}
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_problem(metric: str) -> str | None:
    """Why pyiqa's implementation of `metric` cannot be imported here, or None when it can.

    Checked in a child process (`_import_problems`), so the check never changes this one.
    """
    if metric not in ARCH_MODULES:
        return None
    return _import_problems().get(ARCH_MODULES[metric])


def default_weights_dir() -> Path:
    """torch hub's folder, where pyiqa puts ``pyiqa/`` and ``clip/`` (``$TORCH_HOME/hub``)."""
    return Path(torch.hub.get_dir())


def find_weight(weight: Weight, weights_dir: str | Path | None = None) -> Path | None:
    """The local path of `weight`, or None. Never downloads."""
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if weight.kind == "pyiqa":
        for path in (root / "pyiqa" / weight.name, root / weight.name):
            if path.is_file():
                return path
        return None
    if weight.kind == "clip":
        path = root / "clip" / weight.name
        return path if path.is_file() else None

    hit = try_to_load_from_cache(weight.name, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None


def missing_weights(metric: str, weights_dir: str | Path | None = None) -> list[Weight]:
    return [w for w in required_weights(metric) if find_weight(w, weights_dir) is None]


def _where(weight: Weight, weights_dir: str | Path | None) -> str:
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if weight.kind == "hf":
        return f"the Hugging Face cache (huggingface-cli download {weight.name})"
    return str(root / weight.kind / weight.name)


def available_metrics(metrics: Sequence[str] | None = None, weights_dir: str | Path | None = None,
                      warn: bool = True, strict: bool = False) -> list[str]:
    """The metrics whose weights are all on disk and whose code imports; one warning per metric left out.

    The weights are checked first; only a metric whose files are all present has its pyiqa module
    imported, to catch a broken dependency before a run.

    Args:
        strict: a learned metric that cannot run stops the run instead (the paper profile asks for
            its IQA models by name; a thinner S3 prompt would change the experiment silently).

    Raises:
        OfflineError: with `strict`, naming every metric left out and the files to fetch.
    """
    metrics = list(DEFAULT_METRICS if metrics is None else metrics)
    out, reasons = [], {}
    for metric in metrics:
        missing = missing_weights(metric, weights_dir)
        problem = None if missing else import_problem(metric)
        if not missing and problem is None:
            out.append(metric)
        elif missing:
            reasons[metric] = "weights not found offline. Fetch " + "; ".join(
                f"{w.url} -> {_where(w, weights_dir)}" for w in missing)
        else:
            reasons[metric] = (f"its pyiqa code cannot be imported ({problem}). fix: pip install -e . "
                               "(it pins setuptools<81 for pkg_resources and installs icecream)")
    if strict and reasons:
        raise OfflineError("the IQA cues ask for learned metrics that cannot run here: " + " | ".join(
            f"{m}: {why}" for m, why in reasons.items()) + " (or leave them out of iqa_metrics)")
    for metric, why in reasons.items() if warn else ():
        warnings.warn(f"IQA metric {metric!r} left out: {why}", UserWarning, stacklevel=2)
    return out


@cache
def lower_better(metric: str) -> bool:
    """Whether a lower score is better, from pyiqa's metric table (no model is created)."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS  # deferred: heavy

    return bool(DEFAULT_CONFIGS[metric].get("lower_better", False))


@contextlib.contextmanager
def _offline(weights_dir: str | Path | None) -> Iterator[None]:
    """Point torch hub at `weights_dir` and forbid Hugging Face downloads while a metric is built."""
    old_hub, old_env = torch.hub.get_dir(), {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if weights_dir is not None:
        torch.hub.set_dir(str(weights_dir))
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        yield
    finally:
        torch.hub.set_dir(old_hub)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def create_metric(metric: str, weights_dir: str | Path | None = None, device: str = "cpu") -> Any:
    """A pyiqa metric built from local files only.

    Raises:
        OfflineError: naming the files and URLs to fetch, when a weight is missing (checked first).
    """
    import pyiqa  # deferred: heavy

    missing = missing_weights(metric, weights_dir)
    if missing:
        raise OfflineError(f"IQA metric {metric!r} needs " + "; ".join(
            f"{w.url} at {_where(w, weights_dir)}" for w in missing))
    problem = import_problem(metric)
    if problem:
        raise OfflineError(f"IQA metric {metric!r}: pyiqa's implementation cannot be imported ({problem})")

    kwargs: dict[str, Any] = {}
    pyiqa_files = [w for w in required_weights(metric) if w.kind == "pyiqa"]
    if pyiqa_files:
        kwargs["pretrained_model_path"] = str(find_weight(pyiqa_files[0], weights_dir))
    if metric == "topiq_nr":
        kwargs["backbone_pretrain"] = False
    with _offline(weights_dir):
        return pyiqa.create_metric(metric, device=device, **kwargs)


def to_tensor(img: np.ndarray, max_side: int = IQA_SIDE):
    """(1, 3, H, W) float tensor in [0, 1] from an RGB/grey uint8 image, at the IQA working size."""
    rgb = working_size(to_rgb(img), max_side)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float() / 255.0


class IQAScorer:
    """Scores views with the pyiqa metrics whose weights are on disk (built lazily, once each).

    Args:
        metrics: names (default `DEFAULT_METRICS`); missing ones are warned about once and dropped.
        weights_dir: a folder laid out like torch hub's (default: torch hub's folder).
        strict: stop (OfflineError) instead of dropping a metric that cannot run.
    """

    def __init__(self, metrics: Sequence[str] | None = None, weights_dir: str | Path | None = None, device: str = "cpu",
                 strict: bool = False):
        for m in metrics or ():
            required_weights(m)  # unknown names fail here, before any warning
        self.weights_dir, self.device = weights_dir, device
        self.metrics = available_metrics(metrics, weights_dir, strict=strict)
        self._built: dict[str, Any] = {}

    def metric(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = create_metric(name, self.weights_dir, self.device)
        return self._built[name]

    def score(self, img: np.ndarray, name: str) -> float:
        with torch.no_grad():
            return float(self.metric(name)(to_tensor(img).to(self.device)).reshape(-1)[0])

    def pair_scores(self, pair: Pair, views: Views, name: str) -> dict[str, float]:
        """``iqa.<metric>.<view>.<A|B|diff>`` for the global and local views of a pair.

        Raises:
            DataError: naming the pair, when the metric fails on a view or returns a non-finite score.
        """
        out: dict[str, float] = {}
        for view, (a, b) in {"global": (views.global_left, views.global_right),
                             "local": (views.local_left, views.local_right)}.items():
            scores = {}
            for side, img in (("A", a), ("B", b)):
                if min(img.shape[:2]) < MIN_SIDE:
                    raise pair.error(f"{view} view of image {side} is {img.shape[1]}x{img.shape[0]} px, "
                                     f"under the {MIN_SIDE} px the IQA metrics need", "re-export larger views")
                try:
                    value = self.score(img, name)
                except (RuntimeError, ValueError, AssertionError) as exc:
                    raise pair.error(f"IQA metric {name} failed on the {view} view of image {side}: {exc}",
                                     "check the image, or leave this metric out (iqa_metrics=)") from None
                if not np.isfinite(value):
                    raise pair.error(f"IQA metric {name} gave {value} on the {view} view of image {side}",
                                     "check the image (constant or corrupt?), or leave this metric out")
                scores[side] = value
            out[f"iqa.{name}.{view}.A"], out[f"iqa.{name}.{view}.B"] = scores["A"], scores["B"]
            out[f"iqa.{name}.{view}.diff"] = scores["A"] - scores["B"]
        return out
