"""Typed step settings: defined once, with the cpu profile as defaults and a YAML overlay per profile.

Each notebook's parameters are one dataclass deriving from `StepSettings` (for example
`idiff_lib.answer.answer_settings.AnswerSettings` for notebook 02). Its field defaults are the ``cpu``
profile; ``idiff_lib/configs/profiles/<step>.yaml`` overlays the other profiles (``paper``,
``tiny``). Each default is written there only: the notebook's papermill ``parameters`` cell holds the
chain's folders, ``profile`` and ``overrides`` (the settings changed from the profile's values), and
the notebook builds its settings with `StepSettings.for_profile` (`idiff_lib.chain.context`). The
chain validates ``--param`` overrides against the fields before any step starts and passes each
step its own as ``overrides``; the CLI builds the same dataclass. An unknown key or a value of the
wrong type (down to the items of a list or dict) is refused with the list of known keys, and an int
setting is a count that may not be negative (`StepSettings.check_counts`).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from idiff_lib.core.errors import ParameterError, suggest

PROFILES = ("cpu", "paper", "tiny")
PROFILE_DIR = Path(__file__).resolve().parents[1] / "configs" / "profiles"
# Chain parameters every notebook has besides its own settings (resolved by the chain's Context).
COMMON_PARAMS: dict[str, type] = {
    "profile": str,
    "data_dir": str,
    "run_dir": str,
    "step_dir": str,
    "fig_dir": str,
}

# The parameters cell's one settings parameter: this step's settings changed from its profile's values
# (the chain passes the step's ``--param`` values in it; in JupyterLab, e.g. ``overrides = {"epochs": 1}``).
OVERRIDES_PARAM = "overrides"
# Every name of a notebook's parameters cell.
CELL_PARAMS: dict[str, type] = {**COMMON_PARAMS, OVERRIDES_PARAM: dict}

# The chain's own parameters, set from `idiff run`'s flags only: a ``--param`` for one is refused, naming its flag.
CHAIN_FLAGS: dict[str, str] = {"profile": "--profile", "data_dir": "--data", "run_dir": "--out", "step_dir": "--out",
                               "fig_dir": "--fig-dir"}

S = TypeVar("S", bound="StepSettings")

# Example literals for the fix of a wrongly typed value.
_EXAMPLES: dict[type, str] = {str: "'text'", int: "1", float: "0.5", bool: "True"}


def check_type(name: str, value: Any, expected: Any, where: str) -> None:
    """Refuse a value that does not match its annotation (an int is accepted for a float).

    `expected` is a type (``int``) or a generic alias (``list[str]``, ``dict[str, str]``), whose
    items are checked too; other annotations (unions, ``Any``) are not checked.

    Raises:
        ParameterError: naming the parameter, the expected type and the offending item.
    """
    bad = mismatch(value, expected)
    if bad is not None:
        wanted = _type_name(expected)
        got = f"{type(value).__name__} {value!r}" if bad == "" else f"{value!r}, whose {bad}"
        raise ParameterError(
            f"{where}: parameter {name!r} must be {wanted}, got {got}. "
            f"fix: pass a value of type {wanted}, e.g. --param \"{name}={_example(expected)}\""
        )


def mismatch(value: Any, expected: Any) -> str | None:
    """None when `value` matches `expected`; else "" (the value itself) or which item does not."""
    plain = _plain_type(expected)
    if plain is None:
        return None
    if plain is float and isinstance(value, int) and not isinstance(value, bool):
        return None
    if (plain is int and isinstance(value, bool)) or not isinstance(value, plain):
        return ""
    args = typing.get_args(expected)
    if plain is list and len(args) == 1:
        items = [(f"item {i}", item, args[0]) for i, item in enumerate(value)]
    elif plain is dict and len(args) == 2:
        items = [entry for k, v in value.items() for entry in ((f"key {k!r}", k, args[0]), (f"value {v!r}", v, args[1]))]
    else:
        items = []
    for what, item, annotation in items:
        if mismatch(item, annotation) is not None:
            return f"{what} is {type(item).__name__}, not {_type_name(annotation)}"
    return None


def _plain_type(annotation: Any) -> type | None:
    """``list[str]`` -> list, ``int`` -> int; None for annotations that are not checked."""
    origin = typing.get_origin(annotation)
    if origin is not None:
        return origin if isinstance(origin, type) else None
    return annotation if isinstance(annotation, type) else None


def _type_name(annotation: Any) -> str:
    """``int`` -> "int", ``list[str]`` -> "list[str]"."""
    return annotation.__name__ if isinstance(annotation, type) and not typing.get_args(annotation) else str(annotation)


def _example(annotation: Any) -> str:
    """A literal of the annotation's type, for the fix of an error message: ``list[str]`` -> "['text']"."""
    plain, args = _plain_type(annotation), typing.get_args(annotation)
    if plain is list:
        return f"[{_example(args[0]) if args else '...'}]"
    if plain is dict:
        return f"{{{_example(args[0])}: {_example(args[1])}}}" if len(args) == 2 else "{...}"
    return _EXAMPLES.get(plain, "<value>") if plain is not None else "<value>"


@dataclasses.dataclass
class StepSettings:
    """Base of every notebook's settings. Subclasses set ``STEP`` to the notebook's file stem."""

    STEP: ClassVar[str] = ""
    # Every int setting counts something and may not be negative (`check_counts`); these must be at
    # least 1. An int whose default is negative uses negative values as a sentinel (-1: "no limit")
    # and is left to the class's own `validate`.
    AT_LEAST_ONE: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def field_annotations(cls) -> dict[str, Any]:
        """Each field's resolved annotation (``list[str]``, ``int``, ...)."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def known_keys(cls) -> list[str]:
        return [*COMMON_PARAMS, *(f.name for f in dataclasses.fields(cls))]

    @classmethod
    def check(cls, params: dict[str, Any], where: str = "") -> None:
        """Refuse unknown keys and wrongly typed values, naming the known keys."""
        where = where or cls.STEP
        types = {**COMMON_PARAMS, **cls.field_annotations()}
        for name, value in params.items():
            if name not in types:
                raise ParameterError(
                    f"{where}: unknown parameter {name!r}.{suggest(name, types)} "
                    f"Known parameters: {', '.join(types)}."
                )
            if value is not None:
                check_type(name, value, types[name], where)

    @classmethod
    def from_params(cls: type[S], params: dict[str, Any], where: str = "") -> S:
        """The settings for these parameters (chain parameters such as ``profile`` are skipped)."""
        cls.check(params, where)
        own = {f.name for f in dataclasses.fields(cls)}
        settings = cls(**{k: v for k, v in params.items() if k in own})
        settings.validate()
        return settings

    def check_counts(self) -> None:
        """Refuse a negative int setting, and one below 1 among `AT_LEAST_ONE`.

        Raises:
            ParameterError: naming the parameter, its value and the smallest value allowed.
        """
        annotations = self.field_annotations()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if annotations[f.name] is not int or isinstance(value, bool) or not isinstance(value, int):
                continue
            least = 1 if f.name in self.AT_LEAST_ONE else 0
            if value < least and not (isinstance(f.default, int) and f.default < 0):
                raise ParameterError(f"{self.STEP}: parameter {f.name!r} must be >= {least} (it counts something), got "
                                     f"{value}. fix: pass --param {f.name}=<a whole number >= {least}>")

    @classmethod
    def profile_overlay(cls, profile: str) -> dict[str, Any]:
        """The profile's values that differ from the cpu defaults, read from the step's YAML."""
        return profile_overlay(cls.STEP, profile)

    @classmethod
    def for_profile(cls: type[S], profile: str, **overrides: Any) -> S:
        """The settings of a profile, with optional overrides on top."""
        return cls.from_params({**cls.profile_overlay(profile), **overrides}, f"{cls.STEP} ({profile})")

    def changes(self, profile: str) -> dict[str, str]:
        """Each setting whose value is not the cpu default -> where it comes from ("<profile> profile" or "overrides")."""
        default, overlay = type(self)(), self.profile_overlay(profile)
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                from_profile = f.name in overlay and overlay[f.name] == value
                out[f.name] = f"{profile} profile" if from_profile else OVERRIDES_PARAM
        return out

    def validate(self) -> None:
        """Check the counts (`check_counts`); subclasses add their own rules after ``super().validate()``.

        Raises:
            ParameterError: naming the parameter and the fix.
        """
        self.check_counts()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def profile_overlay(step: str, profile: str) -> dict[str, Any]:
    """The overlay of one profile for one step (``{}`` for the cpu profile, whose values are the defaults)."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}.{suggest(profile, PROFILES)} Choose one of {PROFILES}.")
    path = PROFILE_DIR / f"{step}.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    overlay = data.get(profile) or {}
    if not isinstance(overlay, dict):
        raise ParameterError(f"{path}: the {profile!r} entry must be a mapping of parameter: value")
    return dict(overlay)


@dataclasses.dataclass
class WorkedPairSettings(StepSettings):
    """Settings of a notebook that follows the worked pair (notebooks 01, 02, 03 and 05).

    Attributes:
        worked_pair: the test pair id followed through the chain ("" = the rule of
            `idiff_lib.scoring.worked_pair.choose_worked_pair`: an instructive trade-off pair).
    """

    worked_pair: str = ""  # empty: the library picks a trade-off test pair, the same in every notebook
