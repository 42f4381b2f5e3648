"""Notebook 03's settings (tune the Thinking Model), defined once: the defaults are the cpu profile.

The ``paper`` and ``tiny`` overlays are in ``idiff_lib/configs/profiles/03_tune_thinking_model.yaml``.
`idiff_lib.thinking.train.run.build_run_settings` turns these settings into the `RunSettings` of one
training run; the notebook and ``idiff think train`` both go through it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from idiff_lib.core import layout
from idiff_lib.core.determinism import DEFAULT_THREADS
from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.core.ontology import STAGES
from idiff_lib.core.step_settings import WorkedPairSettings
from idiff_lib.core.vocabulary import RAIM_SFT_FILE
from idiff_lib.thinking.train.grpo_settings import GrpoSettings

# How the stages S0 -> S4 are trained: each from the previous stage's weights (the paper), or one
# run on all stages' prompts (`idiff_lib.thinking.train.run.train_joint`).
LADDERS = ("progressive", "joint")
# Where the S4 verdict of a test pair comes from when the Answer Model did not predict it.
ANSWERS_FALLBACKS = ("reference", "prior")
# Settings that count something and may not be negative (0 has a meaning for each, see the fields).
# The float settings that may not be negative (every int setting is a count: `StepSettings.check_counts`).
_NON_NEGATIVE_FLOATS = ("lora_dropout", "evidence_weight", "evidence_min_presence")


@dataclasses.dataclass
class ThinkingSettings(WorkedPairSettings):
    """What notebook 03 trains and generates with.

    Attributes:
        model_name: "small-vlm" builds the small VLM of pretrained parts (EfficientNet-Lite0 +
            projector + SmolLM2-135M-Instruct); "tiny" a random tiny Qwen2-VL (tests); else a Hub
            name, an alias or a local checkpoint folder.
        stages: the prompt stages, in ladder order.
        ladder: "progressive" (each stage from the previous stage's weights, the paper's way) or
            "joint" (one run on all stages' prompts; every stage's row from the same model).
        align_pairs / align_epochs / align_lr: the projector alignment run before the ladder
            (projector only, S0 prompts; 0 pairs = none).
        epochs_per_stage / batch_size / grad_accum / lr: the optimiser of each stage (batch_size
            sequences per forward pass, grad_accum passes per optimiser step).
        lora / lora_dropout: train LoRA adapters (True) or all weights (False); the adapters' dropout.
        max_pixels: per-image pixel budget at encoding time (0 = the processor's own).
        max_new_tokens / gen_batch_size / no_repeat_ngram_size: greedy decoding.
        constrained_decoding: the ladder's rationales follow `generation.AgreementConstraint` (the
            Overall line and ``<answer>`` agree); the last stage is also written freely on the rung's
            pairs, side by side.
        copy_evidence: with constrained_decoding, the evidence block is copied through: each rationale
            line starts with an evidence line's heading and favoured side, and the model writes the rest.
        train_limit / test_limit: use N evenly spaced pairs of a split (`pairs.spread_subset`; 0 = all);
            test_limit is every rung's test set.
        final_test_limit: the last stage's (and the template rows') test set, a superset of
            test_limit's (0 = the whole split).
        evidence_lines / evidence_weight / evidence_min_presence: the S3/S4 evidence block
            (`idiff_lib.thinking.prompting.evidence.rank_aspects`): how many aspect lines at most, how much an
            aspect's presence (the presence head's probability that the pair differs on it) adds to
            its rank, and the presence below which an aspect is left out.
        val_limit / eval_every: the val loss curve of the training run: on this many evenly spaced
            val pairs every `eval_every` optimiser steps; the run keeps the weights of the lowest
            val loss (0 pairs: no curve, the last weights).
        max_steps: the training run's optimiser steps at most (0 = all epochs).
        tiny_hidden / tiny_layers / tiny_vocab: the tiny model's width, depth and BPE vocabulary.
        s0_control: also train S0 alone for as many epochs as the ladder's last stage has had in all
            ("S0, same epochs as S4"), separating prompt information from training.
        swap_augment: also train on every pair with A and B exchanged.
        use_feature_cues: compute the S2/S3 cue texts from `idiff_lib.features`.
        answers_fallback: the S4 verdict of a pair the Answer Model did not predict: "reference" or "prior".
        seed: shuffling and initialisation.
        threads: torch's CPU threads, applied once by the chain (0 = torch's own choice).
        raim_dir: a folder holding the public RAIM-PIQA ``train_sft_1536.jsonl`` to mine the template
            headings from, with the train split; empty = the committed counts
            (``idiff_lib/configs/raim_vocabulary.json``), so results do not depend on a folder outside
            the repository.
    """

    STEP: ClassVar[str] = layout.THINKING_STEP
    AT_LEAST_ONE: ClassVar[tuple[str, ...]] = (
        "epochs_per_stage", "batch_size", "grad_accum", "max_new_tokens", "gen_batch_size", "tiny_hidden", "tiny_layers",
        "tiny_vocab", "align_epochs", "evidence_lines", "eval_every")

    model_name: str = "small-vlm"  # pretrained parts on CPU; the paper profile names Qwen3-VL-8B-Instruct
    stages: list[str] = dataclasses.field(default_factory=lambda: list(STAGES))  # the whole ladder S0 -> S4
    ladder: str = "joint"  # one LoRA run on every stage's prompts: a run per stage does not fit 2 cores
    align_pairs: int = 16  # projector alignment on 16 pairs first (LLaVA's stage 1): about 1 min on 2 cores
    align_epochs: int = 1
    align_lr: float = 0.001  # a fresh projector learns fast; the frozen parts do not move
    epochs_per_stage: int = 1  # epochs of each run (the joint ladder has one run)
    batch_size: int = 4  # sequences of about 400 tokens per step (about 7 GB of activations on CPU)
    grad_accum: int = 1  # forward passes per optimiser step: 20 steps of 4 learn the format, 10 of 8 did not (measured)
    lr: float = 0.002  # LoRA on a 135M model in 20 steps (5e-4 left the loss at 1.85, 2e-3 at 0.64); the 8B model: 1e-4
    lora: bool = True  # rank-16 LoRA on every linear layer of the language model, plus the projector
    lora_dropout: float = 0.0  # a dropout mask per adapted layer costs ~15% of a CPU step (profiled); paper: 0.05
    max_pixels: int = 0  # the small VLM resizes each view to its encoder's 224 px itself
    max_new_tokens: int = 224  # the reference rationales are 4-7 lines, about 170 SmolLM2 tokens
    gen_batch_size: int = 16  # batched greedy decoding: ~75 tokens/s on 2 cores from 16 rows on (8 rows: ~45)
    train_limit: int = 40  # 40 evenly spaced pairs (80 sequences with swaps, ~3.5 s each on 2 cores); 0 = the whole split
    test_limit: int = 16  # every rung: 16 evenly spaced test pairs x 5 stages (~3.5 s per rationale on 2 cores)
    final_test_limit: int = 48  # the last stage and the template rows: 48 test pairs (the whole split: 0, ~12 min more)
    # Chosen on val with the template filled from the evidence (benchmarks/evidence_choice.py): 5 lines, weight 2,
    # presence >= 0.3 give verdict accuracy 0.85, coverage 0.46, BLEU-4 0.35; 4 lines 0.87 / 0.39 / 0.38; 6 lines
    # 0.84 / 0.53 / 0.32 (the references' own coverage: 0.53). More lines cover more and cost BLEU-4.
    evidence_lines: int = 5
    evidence_weight: float = 2.0
    evidence_min_presence: float = 0.3
    val_limit: int = 8  # the val loss curve: 8 val pairs (~10 s per point on 2 cores)
    eval_every: int = 5  # optimiser steps between val points; the run keeps the lowest point's weights
    max_steps: int = 0  # 0: every step of the epochs
    tiny_hidden: int = 160  # big enough to learn the templated references
    tiny_layers: int = 2  # a few layers: trains in minutes on CPU
    tiny_vocab: int = 1200  # BPE vocabulary learnt on the rationale corpus
    s0_control: bool = False  # progressive ladder only: the joint ladder trains every stage alike
    swap_augment: bool = True  # letters then follow the images and the verdict, not a side prior
    no_repeat_ngram_size: int = 10  # greedy decoding guard against the loops of a small model
    constrained_decoding: bool = True  # the Overall line and <answer> agree (a transformers prefix_allowed_tokens_fn)
    copy_evidence: bool = True  # S3/S4 lines start as the evidence lines do (heading, side); the model writes the rest
    use_feature_cues: bool = True  # cached per image; off in the tiny profile to stay fast
    answers_fallback: str = "reference"  # an upper bound on the Answer Model, said in metrics.json
    seed: int = 0  # shuffling and initialisation
    threads: int = DEFAULT_THREADS  # the 2 CPU cores of the demo machine
    raim_dir: str = ""  # never read a folder outside the repository unless asked
    grpo: bool = True  # GRPO from the tuned model on S3 prompts (the RAIM baseline's reinforcement learning)
    grpo_from_base: bool = False  # also GRPO from the base model (zero reward on cpu: it has not learnt the format)
    grpo_prompts: int = 2  # train prompts per starting point: one step of 2 prompts x 4 generations, about 3 min on 2 cores
    grpo_num_generations: int = GrpoSettings.num_generations  # the baseline's group size
    grpo_batch_size: int = 2 * GrpoSettings.num_generations  # two prompts' groups per step, generated as one batch of 8
    grpo_max_completion_length: int = 200  # as max_new_tokens: the references are under 200 tokens (the baseline: 512)
    grpo_lr: float = GrpoSettings.lr  # LoRA; the baseline trains all weights at 1e-6
    grpo_epochs: int = GrpoSettings.epochs  # the baseline: 10 on GPUs
    grpo_max_steps: int = GrpoSettings.max_steps  # -1 = run the epochs
    grpo_save_steps: int = 1  # checkpoints a killed GRPO run resumes from (2 steps per starting point on cpu)
    grpo_lora: bool = GrpoSettings.lora  # adapters on the base model (an S4 model's own adapter trains on)

    @property
    def model_tag(self) -> str:
        """The trained model's name in the ladder's rows and files: "tiny", "small-vlm" or a Hub name's last part."""
        return "tiny" if self.model_name == "tiny" else self.model_name.rstrip("/").split("/")[-1]

    def validate(self) -> None:
        """Refuse unknown stages, an unknown fallback, negative counts and a missing `raim_dir`."""
        where = f"{self.STEP}: parameter"
        for stage in self.stages:
            if stage not in STAGES:
                raise ParameterError(f"{where} 'stages': unknown stage {stage!r}.{suggest(stage, STAGES)} "
                                     f"Choose among {', '.join(STAGES)}.")
        if not self.stages:
            raise ParameterError(f"{where} 'stages' is empty. fix: list at least one of {', '.join(STAGES)}")
        if self.ladder not in LADDERS:
            raise ParameterError(f"{where} 'ladder' must be one of {', '.join(LADDERS)}, got {self.ladder!r}")
        if self.s0_control and self.ladder != "progressive":
            raise ParameterError(f"{where} 's0_control' needs ladder='progressive' (the joint ladder trains every "
                                 "stage for the same epochs, so it needs no control). fix: set s0_control=False")
        if self.answers_fallback not in ANSWERS_FALLBACKS:
            raise ParameterError(f"{where} 'answers_fallback' must be 'reference' or 'prior', got "
                                 f"{self.answers_fallback!r}")
        super().validate()  # the counts
        for name in _NON_NEGATIVE_FLOATS:
            if getattr(self, name) < 0:
                raise ParameterError(f"{where} {name!r} must be >= 0, got {getattr(self, name)}")
        if self.lora_dropout >= 1:
            raise ParameterError(f"{where} 'lora_dropout' must be below 1, got {self.lora_dropout}")
        try:
            self.grpo_settings()
        except ParameterError as err:  # GrpoSettings.<name> is parameter grpo_<name> here
            raise ParameterError(f"{where} {str(err).replace('GrpoSettings.', 'grpo_')}") from None
        if self.raim_dir and not (Path(self.raim_dir).expanduser() / RAIM_SFT_FILE).exists():
            raise ParameterError(f"{where} 'raim_dir': {self.raim_dir} holds no {RAIM_SFT_FILE}. fix: point "
                                 "it to the public RAIM-PIQA folder, or leave it empty to use the committed counts")

    def grpo_settings(self) -> GrpoSettings:
        """The `GrpoSettings` of each GRPO run (the fields not set here keep `GrpoSettings`' defaults).

        Raises:
            ParameterError: a GRPO value `GrpoSettings.validate` refuses.
        """
        return GrpoSettings(prompts=self.grpo_prompts, num_generations=self.grpo_num_generations,
                            batch_size=self.grpo_batch_size, max_completion_length=self.grpo_max_completion_length,
                            lr=self.grpo_lr, epochs=self.grpo_epochs, max_steps=self.grpo_max_steps,
                            save_steps=self.grpo_save_steps, lora=self.grpo_lora, seed=self.seed).validate()
