"""Notebook 01's settings (explore the pairs), defined once: defaults are the cpu profile."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from idiff_lib.core import layout
from idiff_lib.core.step_settings import WorkedPairSettings


@dataclasses.dataclass
class ExploreSettings(WorkedPairSettings):
    """What notebook 01 draws and checks; the ``paper`` and ``tiny`` overlays are in its profile YAML.

    Attributes:
        dataset: a RAIM JSONL file or folder to explore instead of the chain's data folder.
        raim_dir: the public RAIM-PIQA rationales to compare headings with.
        grid_pairs: pairs drawn as their four decomposed views.
        face_check_pairs: pairs on which the face detector is checked against the p_/s_ labels.
    """

    STEP: ClassVar[str] = layout.EXPLORE_STEP

    dataset: str = ""  # empty: explore the chain's data folder
    raim_dir: str = ""  # empty: the committed heading counts (nothing outside the repository is read)
    grid_pairs: int = 4  # four pairs fill one figure without shrinking the views
    face_check_pairs: int = 40  # enough pairs to see the detector's agreement, seconds on 2 cores
