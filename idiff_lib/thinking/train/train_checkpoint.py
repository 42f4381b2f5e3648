"""A Thinking Model training checkpoint in plain tensors and JSON: opening one never runs code.

A run folder may not hold a pickle (issue 27): accelerate's ``save_state`` writes the optimiser,
the schedule and the random generators with ``torch.save`` (``optimizer.bin``, ``scheduler.bin``,
``random_states_0.pkl``), so the trainer writes its own checkpoint instead:

- ``state.json``: the loop's state (step, epoch, batch in the epoch, histories), accelerate's
  micro-batch counter and the gradient scaler's numbers;
- ``model.safetensors``: the model's state dict;
- ``optimizer.json`` + ``optimizer.safetensors``, ``scheduler.json``: their state dicts, the
  tensors in safetensors and the rest (param groups, step counts) in JSON;
- ``rng_<process>.json`` + ``rng_<process>.safetensors``: Python's, NumPy's and torch's generators
  of each process, and the batch order's generator as it was when the current epoch began.

A nested state dict is written as a JSON skeleton in which each tensor is a ``{"__tensor__": key}``
pointing into the safetensors file, each tuple a ``{"__tuple__": [...]}`` and each dict with keys
that are not strings (the optimiser's parameter ids) a ``{"__items__": [[key, value], ...]}``, so it
reads back equal, types included. A checkpoint folder holding anything else (an older version's
pickles) is refused unopened, with a `DataError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError
from idiff_lib.core.rng import global_rng_state, set_global_rng_state

FORMAT = "idiff-thinking-train-checkpoint/1"
STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
# Suffixes of files that torch.save / pickle write (accelerate's save_state among them): never opened.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt")
_TAGS = ("__tensor__", "__tuple__", "__items__")


def _read_errors() -> tuple[type[Exception], ...]:
    """What reading a bad or unfitting file raises: safetensors, the skeleton, ``load_state_dict``, the generators."""
    return SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError


def restart_hint(folder: Path) -> str:
    """The fix for a checkpoint that cannot be resumed from."""
    return f"delete the folder {folder} and run the training again (it starts from step 0)"


def _encode(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """`obj` as JSON, its tensors moved into `tensors` under their path in the tree."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _encode(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors, f"{path}.key{i}"), _encode(v, tensors, f"{path}.{k}")]
                              for i, (k, v) in enumerate(obj.items())]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{path}: a {type(obj).__name__} cannot be written without pickling")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if list(obj) == ["__tensor__"]:
        return tensors[obj["__tensor__"]]
    if list(obj) == ["__tuple__"]:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if list(obj) == ["__items__"]:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def write_tree(folder: Path, name: str, tree: Any) -> None:
    """`tree` (dicts, lists, tuples, tensors and JSON scalars) as ``name.json`` (+ ``name.safetensors``)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors, name)
    if tensors:
        save_file(tensors, str(folder / f"{name}.safetensors"))
    storage.write_text(folder / f"{name}.json", json.dumps(skeleton) + "\n")


def read_tree(folder: Path, name: str) -> Any:
    """The tree `write_tree` wrote (tensors on the CPU).

    Raises:
        DataError: naming the file that is missing or cannot be read.
    """
    skeleton_file, tensor_file = folder / f"{name}.json", folder / f"{name}.safetensors"
    try:
        skeleton = json.loads(skeleton_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(skeleton_file, f"cannot be read ({type(err).__name__}: {err})", restart_hint(folder)) from None
    try:
        tensors = load_file(str(tensor_file)) if tensor_file.exists() else {}
        return _decode(skeleton, tensors)
    except _read_errors() as err:
        raise DataError(tensor_file, f"cannot be read with {skeleton_file.name} ({type(err).__name__}: {err})",
                        restart_hint(folder)) from None


def rng_state(batch_order: torch.Tensor) -> dict[str, Any]:
    """This process's global generators (`global_rng_state`), and `batch_order` (the state of the loader's generator)."""
    return {**global_rng_state(), "batch_order": batch_order}


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Set the generators `rng_state` read; `generator` (the loader's) to its ``batch_order``."""
    set_global_rng_state(state)
    generator.set_state(state["batch_order"])


def check_folder(folder: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint this module wrote, read before any other file of `folder`.

    Raises:
        DataError: naming a pickled file (an older version's checkpoint, through accelerate's
            ``save_state``), which is not opened, or a folder that is not a complete checkpoint.
    """
    if not folder.is_dir():
        raise DataError(folder, "is not a folder: not a training checkpoint", restart_hint(folder))
    pickles = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        others = f" (also {', '.join(p.name for p in pickles[1:])})" if pickles[1:] else ""
        raise DataError(pickles[0], f"a pickled training state{others}: an older version's checkpoint, written by "
                        "accelerate's save_state; it is not opened, since unpickling a file can run code",
                        restart_hint(folder))
    state_file = folder / STATE_FILE
    if not state_file.exists():
        raise DataError(state_file, "not found: the folder is not a complete training checkpoint",
                        restart_hint(folder))
    state = read_tree(folder, STATE_FILE.removesuffix(".json"))
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(state_file, f"not a training checkpoint of this version (format {FORMAT!r} expected)",
                        restart_hint(folder))
    return state


def write_checkpoint(folder: Path, *, process_index: int, is_main: bool, batch_order: torch.Tensor,
                     model: torch.nn.Module, optimizer, scheduler, scaler, loop: dict[str, Any],
                     accelerator_step: int, processes: int) -> None:
    """This process's part of a checkpoint into the existing `folder`: every process writes its generators,
    the main process the model (unwrapped), optimiser, schedule and, last, ``state.json``."""
    write_tree(folder, f"rng_{process_index}", rng_state(batch_order))
    if not is_main:
        return
    save_model(model, str(folder / MODEL_FILE), force_contiguous=True)
    write_tree(folder, "optimizer", optimizer.state_dict())
    write_tree(folder, "scheduler", scheduler.state_dict())
    write_tree(folder, STATE_FILE.removesuffix(".json"),
               {"format": FORMAT, "loop": loop, "accelerator_step": accelerator_step, "processes": processes,
                "scaler": scaler.state_dict() if scaler is not None else None})


def read_checkpoint(folder: Path, *, process_index: int, processes: int, generator: torch.Generator,
                    model: torch.nn.Module, optimizer, scheduler, scaler) -> tuple[dict[str, Any], int]:
    """Load a checkpoint `write_checkpoint` wrote into the model (unwrapped), optimiser, schedule, scaler
    and generators; (the loop's state, accelerate's micro-batch counter).

    Raises:
        DataError: naming the file of an older version's (pickled) checkpoint, which is not opened, or
            a file that does not fit this run.
    """
    info = check_folder(folder)
    if info.get("processes") != processes:
        raise DataError(folder / STATE_FILE, f"written by a run of {info.get('processes')} processes; this one has "
                        f"{processes}", f"resume with {info.get('processes')} processes, or {restart_hint(folder)}")
    loads = [(MODEL_FILE, lambda: load_model(model, str(folder / MODEL_FILE), strict=True)),
             ("optimizer.json", lambda: optimizer.load_state_dict(read_tree(folder, "optimizer"))),
             ("scheduler.json", lambda: scheduler.load_state_dict(read_tree(folder, "scheduler"))),
             (f"rng_{process_index}.json", lambda: set_rng_state(read_tree(folder, f"rng_{process_index}"), generator))]
    if scaler is not None and info.get("scaler"):
        loads.append((STATE_FILE, lambda: scaler.load_state_dict(info["scaler"])))
    for name, load in loads:
        try:
            load()
        except DataError:
            raise
        except _read_errors() as err:
            raise DataError(folder / name, f"does not fit this run ({type(err).__name__}: {str(err)[:300]})",
                            restart_hint(folder)) from None
    return info["loop"], int(info["accelerator_step"])
