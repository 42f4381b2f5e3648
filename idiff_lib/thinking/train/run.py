"""One Thinking Model training run, and the progressive ladder of runs S0 -> S4.

Reference: iDiff, the winning method of the NTIRE 2026 RAIM challenge, Track 1 (Professional Image
Quality Assessment), fine-tunes Qwen3-VL-8B-Instruct with LoRA through progressive prompt stages
S0 -> S4 (`idiff_lib.thinking.prompting.prompts`). A run folder holds ``checkpoint/`` (resume) and
``final/`` (the weights or adapter, the processor, ``vocabulary.json`` and ``thinking.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from accelerate import PartialState

from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.core.vocabulary import Vocabulary
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.thinking.model.checkpoints import load_model, resolve_checkpoint, staging_dir
from idiff_lib.thinking.model.lora import LoraSettings, apply_lora
from idiff_lib.thinking.model.small_vlm_build import build_small_vlm, check_small_vlm_sources
from idiff_lib.thinking.model.tiny import TinySettings, build_tiny_model, rationale_corpus
from idiff_lib.thinking.prompting import prompts as prompts_mod  # alias: 'prompts' names built prompts in this module
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.train.encoding import SWAP_SUFFIX, context_length, examples_for, swap_sides_text, swapped_pair
from idiff_lib.thinking.train.training import TrainSettings, train

# The run's record in ``final/``: its settings and training result (a finished run is not retrained).
RUN_INFO_FILE = "thinking.json"


@dataclass
class RunSettings:
    """Everything one Thinking Model training run needs, saved as ``thinking.json`` in its folder.

    Attributes:
        model: a Hub name, alias or folder; ``"tiny"`` builds the tiny model in ``RUN/base``;
            ``"small-vlm"`` builds the small VLM of pretrained parts there (`build_small_vlm`).
        stage: the prompt stage (S0..S4).
        lora: train LoRA adapters (True) or all weights (False, the tiny model's default).
        max_pixels: per-image pixel budget at encoding time (None = the processor's).
        max_new_tokens / gen_batch_size / no_repeat_ngram_size: generation.
        swap_augment: also train on every pair with A and B exchanged (`swapped_pair`).
        raim_dir: a RAIM-PIQA folder whose public rationales join the tiny tokenizer's corpus and
            the template counts (mined afresh); empty = the committed counts only.
        stage_mix: the joint ladder: training prompts cycle through these stages, pair by pair
            (empty = every prompt at `stage`).
        projector_only: train the projector alone, everything else frozen (the alignment run).
    """

    model: str = "tiny"
    stage: str = "S4"
    stage_mix: tuple[str, ...] = ()
    projector_only: bool = False
    lora: bool = False
    max_pixels: int | None = None
    max_new_tokens: int = 256
    gen_batch_size: int = 8
    no_repeat_ngram_size: int = 0
    swap_augment: bool = False
    raim_dir: str = ""
    tiny: TinySettings = field(default_factory=TinySettings)
    lora_settings: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSettings":
        nested = {"tiny": TinySettings, "lora_settings": LoraSettings, "train": TrainSettings}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            name = sorted(unknown)[0]
            raise ParameterError(f"unknown thinking setting {name!r}.{suggest(name, known)}")
        kwargs = {}
        for key, value in data.items():
            if key in nested and isinstance(value, Mapping):
                sub = nested[key]
                sub_known = {f.name for f in fields(sub)}
                bad = set(value) - sub_known
                if bad:
                    b = sorted(bad)[0]
                    raise ParameterError(f"unknown {key} setting {b!r}.{suggest(b, sub_known)}")
                value = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            kwargs[key] = tuple(value) if key == "stage_mix" else value
        return cls(**kwargs)


def build_run_settings(
    settings: ThinkingSettings,
    *,
    stage: str = "S4",
    mixed_precision: str | None = None,
    max_steps: int | None = None,
    save_every: int = TrainSettings.save_every,
    tiny_max_pixels: int | None = None,
) -> RunSettings:
    """The `RunSettings` of a training run with notebook 03's `settings` (the notebook and ``idiff think train``).

    Args:
        settings: the step's settings (``max_pixels`` 0 = the processor's own budget).
        stage: the prompt stage (`train_ladder` sets each stage's own).
        mixed_precision: "no", "bf16" or "fp16"; None = bf16 on a GPU, else no.
        max_steps / save_every: stop after this many optimiser steps; checkpoint every this many.
        tiny_max_pixels: the tiny image processor's pixel budget; None = `settings.max_pixels` (or the
            tiny default when that is 0).
    """
    max_pixels = settings.max_pixels or None
    if mixed_precision is None:
        mixed_precision = "bf16" if torch.cuda.is_available() else "no"
    tiny = TinySettings(vocab_size=settings.tiny_vocab, hidden_size=settings.tiny_hidden, layers=settings.tiny_layers,
                        intermediate_size=3 * settings.tiny_hidden,  # Qwen's MLP ratio, kept by the tiny model
                        max_pixels=tiny_max_pixels or max_pixels or TinySettings.max_pixels, seed=settings.seed)
    train_settings = TrainSettings(epochs=settings.epochs_per_stage, batch_size=settings.batch_size,
                                   grad_accum=settings.grad_accum, lr=settings.lr,
                                   max_steps=max_steps if max_steps is not None else (settings.max_steps or None),
                                   eval_every=settings.eval_every,
                                   save_every=save_every, seed=settings.seed, mixed_precision=mixed_precision)
    return RunSettings(model=settings.model_name, stage=prompts_mod.check_stage(stage), lora=settings.lora,
                       max_pixels=max_pixels, max_new_tokens=settings.max_new_tokens,
                       gen_batch_size=settings.gen_batch_size, no_repeat_ngram_size=settings.no_repeat_ngram_size,
                       swap_augment=settings.swap_augment, raim_dir=settings.raim_dir, tiny=tiny,
                       lora_settings=LoraSettings(dropout=settings.lora_dropout), train=train_settings)


SMALL_VLM = "small-vlm"  # settings.model value: SmolLM2-135M + EfficientNet-Lite0 (`small_vlm_build`)


def check_model_source(model_name: str) -> None:
    """Fail fast when `model_name`'s weights can be had neither here nor by download ("tiny" needs none).

    Raises:
        DataError / OfflineError: naming what to install or provide.
    """
    if model_name == SMALL_VLM:
        check_small_vlm_sources()
    elif model_name != "tiny":
        resolve_checkpoint(model_name)


def prepare_model(run_dir: Path, settings: RunSettings, corpus_pairs: Sequence[pairs_mod.Pair] = (),
                  init_from: str | Path | None = None, log=print):
    """Model + processor for training.

    From `init_from` (an earlier stage's weights) when given, else the tiny model built in
    ``run_dir/base`` (tokenizer corpus: `corpus_pairs`), else the small VLM of pretrained parts
    built there (``"small-vlm"``), else the named checkpoint; LoRA adapters
    are added when the settings ask for them and the model has none yet.
    """
    if init_from is not None:
        model, processor = load_model(str(init_from), trainable_adapter=True)
    elif settings.model in ("tiny", SMALL_VLM):
        base = run_dir / "base"
        # Under `accelerate launch` the main process builds the model; the others wait, then load it.
        with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
            if not (base / "config.json").exists() and settings.model == SMALL_VLM:
                build_small_vlm(base)
            elif not (base / "config.json").exists():
                build_tiny_model(base, rationale_corpus(corpus_pairs, settings.raim_dir or None), settings.tiny)
        model, processor = load_model(str(base))
    else:
        model, processor = load_model(settings.model)
    if settings.projector_only:
        freeze_all_but_projector(model, log)
    elif settings.lora and not hasattr(model, "peft_config"):
        model = apply_lora(model, settings.lora_settings, log=log)
    return model, processor


def freeze_all_but_projector(model: torch.nn.Module, log=print) -> int:
    """Freeze every weight except the projector's (`lora_modules_to_save`); returns the trainable count.

    Raises:
        ParameterError: a model that names no projector (only the small VLM does).
    """
    names = tuple(getattr(model, "lora_modules_to_save", None) or ())
    if not names:
        raise ParameterError(f"{type(model).__name__} names no projector to align. fix: align the small VLM "
                             f"(model_name '{SMALL_VLM}'), or set align_pairs=0")
    trainable = 0
    for name, param in model.named_parameters():
        keep = any(n in name.split(".") for n in names)
        param.requires_grad_(keep)
        trainable += param.numel() if keep else 0
    log(f"alignment: training the projector only ({trainable:,} parameters); vision encoder and language model frozen")
    return trainable


def train_run(
    run_dir: str | Path,
    train_pairs: Sequence[pairs_mod.Pair],
    settings: RunSettings,
    *,
    cues: Mapping[str, Mapping[str, str]] | None = None,
    vocabulary: Vocabulary | None = None,
    init_from: str | Path | None = None,
    resume: bool = True,
    val_pairs: Sequence[pairs_mod.Pair] = (),
    log=print,
) -> dict:
    """Train the Thinking Model at one stage and save it to ``run_dir/final`` (resumable).

    In S4 the prompt's verdict during training is the reference answer (teacher forcing); at test
    time it is the Answer Model's. With `val_pairs` (labelled, their cues in `cues`) the val loss
    on their prompts (the same stage mix, no swaps) chooses the steps (`training.train`).
    """
    run_dir = Path(run_dir)
    final = run_dir / layout.FINAL_CHECKPOINT
    if resume and (final / RUN_INFO_FILE).exists():
        return json.loads((final / RUN_INFO_FILE).read_text())["train"]
    vocabulary = vocabulary or prompts_mod.load_vocabulary(train_pairs, settings.raim_dir or None)
    examples_pairs = list(train_pairs)
    cues = dict(cues or {})
    if settings.swap_augment:
        swapped = [swapped_pair(p) for p in train_pairs]
        for p in train_pairs:
            if p.id in cues:
                cues[p.id + SWAP_SUFFIX] = {k: swap_sides_text(str(v)) for k, v in cues[p.id].items()}
        examples_pairs += swapped
    answers = {p.id: {"answer": p.answer} for p in examples_pairs}
    prompts = mixed_prompts(examples_pairs, settings.stage_mix or (settings.stage,), cues, answers, vocabulary)
    model, processor = prepare_model(run_dir, settings, train_pairs, init_from, log)
    examples = examples_for(examples_pairs, prompts, processor, with_targets=True, max_pixels=settings.max_pixels,
                            max_length=context_length(model))
    val_examples = []
    if val_pairs:
        val_answers = {p.id: {"answer": p.answer} for p in val_pairs}
        val_prompts = mixed_prompts(list(val_pairs), settings.stage_mix or (settings.stage,), cues, val_answers,
                                    vocabulary)
        val_examples = examples_for(list(val_pairs), val_prompts, processor, with_targets=True,
                                    max_pixels=settings.max_pixels, max_length=context_length(model))
    result = train(model, examples, processor.tokenizer.pad_token_id, run_dir, settings.train, resume=resume,
                   val_examples=val_examples, log=log)
    if result["is_main_process"]:
        with staging_dir(final) as tmp:
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            storage.write_json(tmp / "vocabulary.json", {"headings": vocabulary.templates, "source": vocabulary.source})
            storage.write_json(tmp / RUN_INFO_FILE, {"settings": asdict(settings), "train": result,
                                                     "train_pairs": len(train_pairs)})
    return result


def mixed_prompts(pairs: Sequence[pairs_mod.Pair], stages: Sequence[str], cues: Mapping, answers: Mapping,
                  vocabulary: Vocabulary) -> dict[str, prompts_mod.Prompt]:
    """Each pair's training prompt, its stage cycling through `stages` in pair order (one stage: all at it).

    The swapped copy of a pair (listed after all originals) falls on another stage than its original
    whenever the number of pairs is not a multiple of the number of stages.
    """
    built = {stage: prompts_mod.build_prompts(pairs, stage, cues=cues, answers=answers, vocabulary=vocabulary)
             for stage in dict.fromkeys(stages)}
    return {p.id: built[stages[i % len(stages)]][p.id] for i, p in enumerate(pairs)}


def load_thinking_run(run_dir: str | Path, merge_adapter: bool = True):
    """(model, processor, settings, vocabulary) of a finished training run (``RUN/final``), for inference.

    Args:
        merge_adapter: fold the LoRA adapter into the base weights (same outputs, faster decoding).
    """
    final = Path(run_dir) / layout.FINAL_CHECKPOINT
    meta = final / RUN_INFO_FILE
    if not meta.exists():
        raise DataError(final, f"no trained Thinking Model here ({RUN_INFO_FILE} missing)",
                        "train first: idiff think train --data TRAIN.jsonl --out RUN_DIR")
    info = json.loads(meta.read_text())
    settings = RunSettings.from_dict(info["settings"])
    voc = json.loads((final / "vocabulary.json").read_text())
    vocabulary = Vocabulary(source=voc["source"], templates={k: tuple(v) for k, v in voc["headings"].items()})
    model, processor = load_model(str(final), merge_adapter=merge_adapter)
    return model, processor, settings, vocabulary


def train_ladder(
    root: str | Path,
    train_pairs: Sequence[pairs_mod.Pair],
    stages: Sequence[str],
    settings: RunSettings,
    *,
    cues: Mapping[str, Mapping[str, str]] | None = None,
    vocabulary: Vocabulary | None = None,
    init_from: str | Path | None = None,
    val_pairs: Sequence[pairs_mod.Pair] = (),
    log=print,
) -> dict[str, dict]:
    """Train the stages progressively: ``root/<stage>``, each initialised from the previous stage's weights.

    Args:
        init_from: the first stage's starting weights (e.g. the aligned model); None = the base.

    Returns:
        stage -> the `train` result of that stage (a finished stage is not retrained).
    """
    results = {}
    previous = init_from
    for stage in stages:
        stage_settings = RunSettings.from_dict({**asdict(settings), "stage": prompts_mod.check_stage(stage)})
        log(f"-- stage {stage} ({prompts_mod.STAGE_LABELS[stage]})")
        results[stage] = train_run(Path(root) / stage, train_pairs, stage_settings, cues=cues, vocabulary=vocabulary,
                                   init_from=previous, val_pairs=val_pairs, log=log)
        previous = Path(root) / stage / layout.FINAL_CHECKPOINT
    return results


JOINT_DIR = "joint"  # the joint ladder's one run, under the model root
ALIGN_DIR = "align"  # the projector alignment run, under the model root


def stage_run_dir(root: str | Path, stage: str, ladder: str) -> Path:
    """The run folder whose model writes `stage`'s rationales: ``root/<stage>``, or ``root/joint`` for all."""
    return Path(root) / (JOINT_DIR if ladder == "joint" else stage)


def base_run_dir(root: str | Path, stages: Sequence[str], ladder: str, aligned: bool) -> Path:
    """The run folder whose ``base/`` holds the profile's base model: the first run of the ladder."""
    if aligned:
        return Path(root) / ALIGN_DIR
    return stage_run_dir(root, stages[0], ladder)


def align_projector(
    root: str | Path,
    train_pairs: Sequence[pairs_mod.Pair],
    settings: RunSettings,
    *,
    pairs: int,
    epochs: int = 1,
    lr: float = 1e-3,
    vocabulary: Vocabulary | None = None,
    log=print,
) -> Path | None:
    """Align the projector first (LLaVA's stage 1): the base model with only its projector trained.

    The task is the S0 prompt and the reference rationale of the first `pairs` train pairs (this
    workbench has no captions); the vision encoder and the language model stay frozen.

    Returns:
        ``root/align/final`` (the aligned model, the next run's starting point), or None when
        `pairs` is 0.
    """
    if pairs <= 0:
        return None
    train = {**asdict(settings.train), "epochs": int(epochs), "lr": float(lr)}
    align = RunSettings.from_dict({**asdict(settings), "stage": "S0", "stage_mix": (), "projector_only": True,
                                   "lora": False, "swap_augment": False, "train": train})
    log(f"-- alignment: projector only, {min(pairs, len(train_pairs))} pairs x {epochs} epoch(s)")
    train_run(Path(root) / ALIGN_DIR, list(train_pairs)[:pairs], align, vocabulary=vocabulary, log=log)
    return Path(root) / ALIGN_DIR / layout.FINAL_CHECKPOINT


def train_joint(
    root: str | Path,
    train_pairs: Sequence[pairs_mod.Pair],
    stages: Sequence[str],
    settings: RunSettings,
    *,
    cues: Mapping[str, Mapping[str, str]] | None = None,
    vocabulary: Vocabulary | None = None,
    init_from: str | Path | None = None,
    val_pairs: Sequence[pairs_mod.Pair] = (),
    log=print,
) -> dict[str, dict]:
    """The joint ladder: one run, ``root/joint``, on all stages' prompts (`mixed_prompts`); every stage's
    rationales then come from this one model, so a row differs from another by its prompt alone.

    Returns:
        ``{"joint": train result}`` (a finished run is not retrained).
    """
    stages = tuple(prompts_mod.check_stage(s) for s in stages)
    joint = RunSettings.from_dict({**asdict(settings), "stage": stages[-1], "stage_mix": stages})
    log(f"-- joint ladder: one run on the prompts of {', '.join(stages)}")
    return {JOINT_DIR: train_run(Path(root) / JOINT_DIR, train_pairs, joint, cues=cues, vocabulary=vocabulary,
                                 init_from=init_from, val_pairs=val_pairs, log=log)}


def train_stages(root: str | Path, train_pairs: Sequence[pairs_mod.Pair], stages: Sequence[str], settings: RunSettings,
                 *, ladder: str, **kwargs) -> dict[str, dict]:
    """Train `stages` as `ladder` says: `train_joint` ("joint") or `train_ladder` ("progressive")."""
    return (train_joint if ladder == "joint" else train_ladder)(root, train_pairs, stages, settings, **kwargs)


def stage_models(root: str | Path, stages: Sequence[str], ladder: str):
    """``(stage, model, processor)`` for each stage, each run's model loaded once (the joint ladder: one load)."""
    loaded = None
    for stage in stages:
        run_dir = stage_run_dir(root, stage, ladder)
        if loaded is None or loaded[0] != run_dir:
            loaded = (run_dir, *load_thinking_run(run_dir)[:2])
        yield stage, loaded[1], loaded[2]


# The control run's folder under the ladder's model root.
S0_CONTROL_DIR = "S0_control"


def s0_control_system(model_tag: str, epochs: int) -> str:
    """The ladder system name of the S0 control (its files are ``<name>_S0.jsonl``)."""
    return f"{model_tag}-S0-{epochs}ep"


def train_s0_control(
    root: str | Path,
    train_pairs: Sequence[pairs_mod.Pair],
    settings: RunSettings,
    epochs: int,
    *,
    cues: Mapping[str, Mapping[str, str]] | None = None,
    vocabulary: Vocabulary | None = None,
    log=print,
) -> dict:
    """The control "S0, same epochs as S4": the S0 prompt trained from the same starting model for
    `epochs` epochs (what the last stage of `train_ladder` has had in all), in ``root/S0_control``.

    The progressive ladder confounds prompt information with training (S4 has trained through
    every stage); comparing S4 with this run separates the two.
    """
    train = {**asdict(settings.train), "epochs": int(epochs)}
    control = RunSettings.from_dict({**asdict(settings), "stage": "S0", "train": train})
    log(f"-- control: S0 for {epochs} epochs")
    return train_run(Path(root) / S0_CONTROL_DIR, train_pairs, control, cues=cues, vocabulary=vocabulary,
                     init_from=None, log=log)
