"""Typed step settings: defined once, with the cpu profile as defaults and a YAML overlay per profile.

Each notebook's parameters are one dataclass deriving from `StepSettings` (for example
`idiff_lib.answer.settings.AnswerSettings` for notebook 02). Its field defaults are the ``cpu``
profile; ``idiff_lib/configs/profiles/<step>.yaml`` overlays the other profiles (``paper``,
``tiny``). The notebook's papermill ``parameters`` cell repeats the cpu defaults as plain literals
(a test checks that they are equal), the chain validates ``--param`` overrides against the fields
before any step starts, and the CLI builds the same dataclass. An unknown key or a value of the
wrong type is refused with the list of known keys.
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

S = TypeVar("S", bound="StepSettings")


def check_type(name: str, value: Any, expected: type, where: str) -> None:
    """Refuse a value that is not of the declared type (an int is accepted for a float)."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    ok = False if expected is int and isinstance(value, bool) else isinstance(value, expected)
    if not ok:
        raise ParameterError(
            f"{where}: parameter {name!r} must be {expected.__name__}, got {type(value).__name__} {value!r}. "
            f"fix: pass a value of type {expected.__name__} (e.g. --param {name}=<value>)"
        )


def _plain_type(annotation: Any) -> type | None:
    """``list[str]`` -> list, ``int`` -> int; None for annotations that are not checked."""
    origin = typing.get_origin(annotation)
    if origin is not None:
        return origin if isinstance(origin, type) else None
    return annotation if isinstance(annotation, type) else None


@dataclasses.dataclass
class StepSettings:
    """Base of every notebook's settings. Subclasses set ``STEP`` to the notebook's file stem."""

    STEP: ClassVar[str] = ""

    @classmethod
    def field_types(cls) -> dict[str, type | None]:
        hints = typing.get_type_hints(cls)
        return {f.name: _plain_type(hints[f.name]) for f in dataclasses.fields(cls)}

    @classmethod
    def known_keys(cls) -> list[str]:
        return [*COMMON_PARAMS, *(f.name for f in dataclasses.fields(cls))]

    @classmethod
    def check(cls, params: dict[str, Any], where: str = "") -> None:
        """Refuse unknown keys and wrongly typed values, naming the known keys."""
        where = where or cls.STEP
        types = {**COMMON_PARAMS, **cls.field_types()}
        for name, value in params.items():
            if name not in types:
                raise ParameterError(
                    f"{where}: unknown parameter {name!r}.{suggest(name, types)} "
                    f"Known parameters: {', '.join(types)}."
                )
            expected = types[name]
            if expected is not None and value is not None:
                check_type(name, value, expected, where)

    @classmethod
    def from_params(cls: type[S], params: dict[str, Any], where: str = "") -> S:
        """The settings for these parameters (chain parameters such as ``profile`` are skipped)."""
        cls.check(params, where)
        own = {f.name for f in dataclasses.fields(cls)}
        settings = cls(**{k: v for k, v in params.items() if k in own})
        settings.validate()
        return settings

    @classmethod
    def profile_overlay(cls, profile: str) -> dict[str, Any]:
        """The profile's values that differ from the cpu defaults, read from the step's YAML."""
        return profile_overlay(cls.STEP, profile)

    @classmethod
    def for_profile(cls: type[S], profile: str, **overrides: Any) -> S:
        """The settings of a profile, with optional overrides on top."""
        return cls.from_params({**cls.profile_overlay(profile), **overrides}, f"{cls.STEP} ({profile})")

    def validate(self) -> None:
        """Check values against each other (subclasses add their own rules)."""

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
