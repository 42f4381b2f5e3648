"""Notebook 06's settings (the report), defined once: defaults are the cpu profile."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from idiff_lib.core import layout
from idiff_lib.core.step_settings import StepSettings


@dataclasses.dataclass
class ReportSettings(StepSettings):
    """What notebook 06 writes besides the tables and figures.

    Attributes:
        html_report: also convert the executed notebooks into one HTML report.
        update_readme: write the tables and two figures into the README's Results section; only a
            run on the embedded benchmark (``data/demo``) does so, any other data folder is left alone.
    """

    STEP: ClassVar[str] = layout.REPORT_STEP

    html_report: bool = True  # the report is the run's one readable summary
    update_readme: bool = True  # the cpu demo run refreshes the README (only for data/demo)
