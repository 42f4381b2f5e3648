"""What a notebook of the chain holds: its `Context` (folders, parameters, settings) and its ``metrics.json``.

Each notebook calls ``ctx = context.notebook_context(globals(), "NN_name")`` in the cell after its
``parameters`` cell and ends with ``context.save_metrics(ctx.step_dir, metrics)``; a later step
reads an earlier one's figures with `load_metrics`. The chain itself (`idiff_lib.chain.runner`)
only checks that the file is there and whole (`read_metrics`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idiff_lib.chain.steps import STEP_SETTINGS
from idiff_lib.core import determinism, layout, paths, storage
from idiff_lib.core.errors import DataError, IdiffError, ParameterError, suggest
from idiff_lib.core.step_settings import COMMON_PARAMS, OVERRIDES_PARAM, PROFILES, StepSettings, check_type, mismatch

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


@dataclass
class Context:
    """What a notebook needs from the chain: resolved folders, its parameters and its settings.

    Attributes:
        settings: the step's typed settings (None for a notebook the chain has no class for).
    """

    step: str
    profile: str
    data_dir: Path
    run_dir: Path
    step_dir: Path
    fig_dir: Path
    params: dict[str, Any] = field(default_factory=dict)
    settings: StepSettings | None = None

    def settings_note(self) -> str:
        """One line for the notebook: where its settings are defined and which differ from the cpu defaults."""
        if self.settings is None:
            return f"settings: the parameters cell ({self.profile} profile)"
        cls = type(self.settings)
        changed = self.settings.changes(self.profile)
        where = f"{cls.__name__} ({cls.__module__}), the cpu defaults"
        if not changed:
            return f"settings: {where}, none changed (profile {self.profile})"
        items = "; ".join(f"{name} = {getattr(self.settings, name)!r} ({source})" for name, source in changed.items())
        return f"settings: {where}, changed: {items}"

    def upstream(self, step: str) -> Path:
        """The output folder of an earlier step of the same run."""
        return layout.step_dir(self.run_dir, step)


def notebook_context(namespace: dict[str, Any], step: str) -> Context:
    """Validate a notebook's parameters, build its settings, apply its ``threads`` setting and resolve the chain folders.

    Call it in the cell after ``parameters`` as ``ctx = context.notebook_context(globals(), "NN_name")``.
    The parameters cell holds the chain's folders, ``profile`` and ``overrides``; the settings are the
    step's settings class at that profile with the overrides on top (`StepSettings.for_profile`), so
    each default is written once, in the class. Each value is checked against its annotation, and the
    overrides against the settings class (unknown keys, types and the class's own cross checks). A
    notebook the chain has no settings class for keeps its own annotated parameters, the overrides on top.

    Raises:
        ParameterError: a value of the wrong type, an unknown key or an unknown profile.
    """
    cell = _annotated_params(namespace, step)
    profile = cell.get("profile", "cpu")
    if profile not in PROFILES:
        raise ParameterError(f"{step}: unknown profile {profile!r}.{suggest(profile, PROFILES)} Choose one of {PROFILES}.")
    overrides = cell.pop(OVERRIDES_PARAM, None) or {}
    chain = {k: v for k, v in cell.items() if k in COMMON_PARAMS}
    given = {**{k: v for k, v in cell.items() if k not in COMMON_PARAMS}, **overrides}
    settings_class = STEP_SETTINGS.get(step)
    if settings_class is not None:
        _refuse_loose_settings(namespace, cell, settings_class, step)
        settings = settings_class.for_profile(profile, **given)
        params = {**chain, **settings.as_dict()}
    else:
        for name, value in overrides.items():
            if name in cell and value is not None and cell[name] is not None:
                check_type(name, value, type(cell[name]), step)
        settings, params = None, {**chain, **given}
    apply_threads(params.get("threads"))
    data_dir = Path(params.get("data_dir") or paths.DEMO_DIR).expanduser().resolve()
    run_dir = Path(params.get("run_dir") or paths.RUNS_DIR / "interactive").expanduser().resolve()
    step_dir = Path(params.get("step_dir") or layout.step_dir(run_dir, step)).expanduser().resolve()
    fig_dir = Path(params.get("fig_dir") or paths.FIGURES_DIR).expanduser().resolve()
    for folder in (run_dir, step_dir, fig_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return Context(step, profile, data_dir, run_dir, step_dir, fig_dir, params, settings)


def _refuse_loose_settings(namespace: dict[str, Any], cell: dict[str, Any], cls: type[StepSettings], step: str) -> None:
    """Refuse a setting given as a plain variable (``papermill -p epochs 1``): the notebook would not read it.

    A name counts when it is a field of the step's settings, holds a value of the field's type and is
    not a parameter of the cell.

    Raises:
        ParameterError: naming the variables and the way to pass them.
    """
    types = cls.field_annotations()
    loose = [name for name in types if name in namespace and name not in cell
             and namespace[name] is not None and mismatch(namespace[name], types[name]) is None]
    if loose:
        example = ", ".join(f"{name!r}: {namespace[name]!r}" for name in loose)
        raise ParameterError(f"{step}: {', '.join(loose)} set as notebook variables; the notebook reads its settings "
                             f"from {OVERRIDES_PARAM!r} only. fix: pass {OVERRIDES_PARAM} = {{{example}}} (papermill: "
                             f"-y \"{OVERRIDES_PARAM}: {{{loose[0]}: ...}}\"), or idiff run --param {loose[0]}=...")


def _annotated_params(namespace: dict[str, Any], step: str) -> dict[str, Any]:
    """The parameters cell's values (its annotated names), each checked against its annotation."""
    params: dict[str, Any] = {}
    for name, annotation in namespace.get("__annotations__", {}).items():
        if name.startswith("_") or name not in namespace:
            continue
        expected = annotation if isinstance(annotation, type) else _TYPES.get(str(annotation))
        value = namespace[name]
        if expected is not None and value is not None:
            check_type(name, value, expected, step)
        params[name] = value
    return params


def apply_threads(threads: int | None) -> None:
    """Run the step at its thread count in every library (None: no ``threads`` setting); `determinism.configure`."""
    determinism.configure(threads)


def save_metrics(step_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write a step's ``metrics.json`` atomically (the chain checks it exists)."""
    return storage.write_json(Path(step_dir) / layout.METRICS_FILE, metrics)


def load_metrics(run_dir: str | Path, step: str) -> dict[str, Any]:
    """A finished step's ``metrics.json``.

    Raises:
        IdiffError: the step has not run in this run folder.
        DataError: the file is not a JSON object (damaged); names the step to rerun.
    """
    path = layout.step_dir(run_dir, step) / layout.METRICS_FILE
    if not path.exists():
        raise IdiffError(f"{path} not found: run step {step} first (idiff run --only {step})")
    metrics, problem = read_metrics(path)
    if metrics is None:
        raise DataError(path, problem, f"rerun that step and the ones after it: idiff run --from {step} "
                                       "(with the --profile, --data and --out of this run)")
    return metrics


def read_metrics(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A ``metrics.json``'s object, or None and what is wrong with the file (damaged, not JSON, not an object)."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    except ValueError as exc:  # not JSON (or not UTF-8): a damaged file
        return None, f"is not valid JSON ({exc})"
    if not isinstance(metrics, dict):
        return None, f"holds a {type(metrics).__name__}, not a JSON object"
    return metrics, ""
