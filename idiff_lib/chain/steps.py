"""The chain's steps and the settings class of each: step name -> `StepSettings` subclass.

The runner validates every ``--param`` against these classes before the first step starts, and
injects each step's resolved settings into its notebook.
"""

from __future__ import annotations

from typing import Mapping

from idiff_lib.answer.answer_settings import AnalysisSettings, AnswerSettings
from idiff_lib.core import layout
from idiff_lib.core.step_settings import StepSettings
from idiff_lib.data.explore_settings import ExploreSettings
from idiff_lib.report.report_settings import ReportSettings
from idiff_lib.scoring.scoring_settings import ScoringSettings
from idiff_lib.thinking.thinking_settings import ThinkingSettings

STEP_SETTINGS: Mapping[str, type[StepSettings]] = {
    layout.EXPLORE_STEP: ExploreSettings,
    layout.ANSWER_STEP: AnswerSettings,
    layout.THINKING_STEP: ThinkingSettings,
    layout.ANALYSIS_STEP: AnalysisSettings,
    layout.SCORING_STEP: ScoringSettings,
    layout.REPORT_STEP: ReportSettings,
}
