"""Notebook 03's GRPO step: the prompts, one resumable TRL run per starting point, the thinker's own accuracy.

Two starting points, as the RAIM baseline and iDiff suggest: **GRPO from base** (the profile's base
model, the baseline's way) and **S4 + GRPO** (the S4 run's weights: supervised tuning, then RL). The
RL loop is TRL's (`idiff_lib.thinking.train.grpo.grpo_trainer`).

Prompts carry text only. The S3 prompt (templates and feature cues) already writes the images'
evidence out as cue text, and generating 4 completions per prompt with images on 2 CPU cores does not
fit the step's budget. TRL 1.16 can feed images through the tiny Qwen2-VL processor (it calls
``processor.apply_chat_template(tokenize=True)``), but `SmallVlmProcessor` renders text only, so the
cpu profile's small VLM could not take them either. The ms-swift export
(``idiff think export-swift --shape grpo``) keeps the images for GPU runs.

No prompt carries the reference answer. An answer-aware (S4) GRPO prompt would need the Answer
Model's verdicts on the *train* split (``preds_train.jsonl``); notebook 02 predicts val and test
only, so both starting points use S3 prompts unless such a file exists (`grpo_prompt_stage`).

A run folder ``grpo/<key>/`` holds TRL's ``checkpoint-N`` folders (a killed run resumes from the last
one; none is ever deleted), ``log_history.json`` (the reward curves), TensorBoard events under
``runs/``, and ``final/`` in the layout of `idiff_lib.thinking.train.run` (``thinking.json`` is the done
marker, written atomically with the weights: a finished run is not retrained).
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import transformers

from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError
from idiff_lib.core.vocabulary import Vocabulary
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.scoring.stats import cluster_bootstrap_mean
from idiff_lib.thinking.model.checkpoints import load_model, staging_dir
from idiff_lib.thinking.model.lora import apply_lora
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.prompting.side_inputs import read_answers
from idiff_lib.thinking.train.grpo import grpo_trainer
from idiff_lib.thinking.train.grpo_settings import GrpoSettings
from idiff_lib.thinking.train.run import RUN_INFO_FILE, RunSettings, prepare_model

# Ladder system names of the two starting points (files ``ladder/<system>_<stage>.jsonl``, rows of Table B).
GRPO_SYSTEMS = {"base": "GRPO from base", "s4": "S4 + GRPO"}
GRPO_DIR = "grpo"  # under the step folder: grpo/base, grpo/s4
LOG_HISTORY_FILE = "log_history.json"
# The Answer Model's train-split predictions an answer-aware GRPO prompt would need.
TRAIN_PREDICTIONS_FILE = "preds_train.jsonl"


def grpo_prompt_stage(answer_dir: str | Path) -> tuple[str, str]:
    """The prompt stage of the GRPO runs and a note saying why.

    S4 (with the Answer Model's verdicts) when ``answer_dir`` holds train-split predictions, else S3:
    the train split's reference answers are the accuracy reward's solutions, so they never enter a prompt.
    """
    preds = Path(answer_dir) / TRAIN_PREDICTIONS_FILE
    if preds.exists():
        return "S4", f"S4 prompts with the Answer Model's verdicts from {preds.name}"
    return "S3", (f"S3 prompts (no verdict) for both starting points: the Answer Model predicted no train pairs "
                  f"({TRAIN_PREDICTIONS_FILE} missing in {Path(answer_dir).name}), and the reference answers are "
                  "the solutions")


def grpo_rows(pairs: Sequence[pairs_mod.Pair], built: Mapping[str, prompts.Prompt]) -> list[dict]:
    """GRPO rows ``{"id", "prompt", "solution"}``: a conversational text prompt (the ``<image>``
    placeholders removed, see the module note) and the reference completion as the solution.

    Raises:
        DataError: an unlabeled pair (no solution to reward against).
    """
    rows = []
    for pair in pairs:
        if pair.answer is None:
            raise pair.error("cannot train GRPO on an unlabeled pair", "use a labelled train split")
        prompt = built[pair.id]
        user = prompt.user.replace("<image>", "").strip()
        rows.append({"id": pair.id, "prompt": [{"role": "system", "content": prompt.system},
                                               {"role": "user", "content": user}],
                     "solution": pairs_mod.format_completion(pair.thinking, pair.answer)})
    return rows


def grpo_train_rows(train_pairs: Sequence[pairs_mod.Pair], answer_dir: str | Path, *,
                    cues: Mapping[str, Mapping[str, str]] | None = None,
                    vocabulary: Vocabulary | None = None) -> tuple[list[dict], str, str]:
    """The GRPO rows of the train split, their prompt stage and a note (`grpo_prompt_stage`).

    At S4 the verdicts are the Answer Model's train predictions; a pair it did not predict is left
    out, never given its label.

    Returns:
        (rows, stage, note).
    """
    stage, note = grpo_prompt_stage(answer_dir)
    answers = {}
    if stage == "S4":
        predicted = read_answers(Path(answer_dir) / TRAIN_PREDICTIONS_FILE)
        answers = {pid: {"answer": row["answer"], "p_answer": None} for pid, row in predicted.items()}
        train_pairs = [p for p in train_pairs if p.id in answers]
    built = prompts.build_prompts(train_pairs, stage, cues=dict(cues or {}), answers=answers,
                                      vocabulary=vocabulary or prompts.FALLBACK_VOCABULARY)
    return grpo_rows(train_pairs, built), stage, note


def last_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest ``checkpoint-N`` folder in `out_dir` (by N), or None."""
    found = [(int(p.name.split("-")[1]), p) for p in Path(out_dir).glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[1].isdigit()]
    return max(found)[1] if found else None


def read_log_history(run_dir: str | Path) -> list[dict]:
    """A GRPO run's ``log_history.json`` (TRL's ``trainer.state.log_history``).

    Raises:
        DataError: the run has not written one (not trained yet).
    """
    path = Path(run_dir) / LOG_HISTORY_FILE
    if not path.exists():
        raise DataError(path, "no GRPO log history here", "run the GRPO step first (notebook 03 with grpo=True)")
    return json.loads(path.read_text())


def _starting_model(base_dir: Path, settings: RunSettings, corpus_pairs, init_from, log):
    """(model, processor, merge_on_save) of a GRPO run's start.

    A start that is a LoRA run (the cpu profile's S4) is merged first, and GRPO trains fresh
    adapters on it (or all its weights): TRL's KL reference for an adapter model is the model with
    its adapters switched off, which would be the base, not the S4 policy GRPO starts from. Such a
    run saves its final weights merged (``merge_on_save``).
    """
    if init_from is None or not (Path(init_from) / "adapter_config.json").exists():
        model, processor = prepare_model(base_dir, settings, corpus_pairs, init_from=init_from, log=log)
        return model, processor, False
    model, processor = load_model(str(init_from), merge_adapter=True)
    if settings.lora:
        model = apply_lora(model, settings.lora_settings, log=log)
    else:
        model.requires_grad_(True)
    return model, processor, settings.lora


def _load_full_checkpoint(model, checkpoint: Path):
    """`model`'s class loaded from a Trainer checkpoint of all its weights.

    ``Trainer.train(resume_from_checkpoint=...)`` reads the weights file as a plain state dict,
    without the key renames ``from_pretrained`` applies (transformers 5 renames Qwen2-VL's
    ``model.*``/``visual.*`` keys): every key is reported missing and the run would go on from its
    starting weights. ``from_pretrained`` reads them right.
    """
    first = next(model.parameters())
    return type(model).from_pretrained(checkpoint, dtype=first.dtype).to(first.device)


def train_grpo_run(
    run_dir: str | Path,
    rows: Sequence[Mapping],
    run_settings: RunSettings,
    grpo_settings: GrpoSettings,
    *,
    base_dir: str | Path,
    vocabulary: Vocabulary,
    init_from: str | Path | None = None,
    corpus_pairs: Sequence[pairs_mod.Pair] = (),
    log=print,
    **config_overrides,
) -> dict:
    """Train one GRPO run into `run_dir` (resumable) and save it to ``run_dir/final`` for `load_thinking_run`.

    Args:
        rows: `grpo_rows` (checked for missing answers and label leaks by `grpo_trainer`).
        run_settings: the ladder's settings (model, generation); saved with the final weights.
        base_dir: the folder `prepare_model` builds or finds the profile's base model in (``model/S0``).
        init_from: a trained run's ``final`` folder (S4 + GRPO); None = the base model.
        corpus_pairs: the tiny model's tokenizer corpus, when its base is not built yet.
        config_overrides: further ``GRPOConfig`` fields (``report_to=[]`` in tests).

    Returns:
        {"steps", "seconds", "resumed_from", "prompts"}; a finished run returns its saved result untrained.
    """
    run_dir = Path(run_dir)
    final = run_dir / layout.FINAL_CHECKPOINT
    if (final / RUN_INFO_FILE).exists():
        return json.loads((final / RUN_INFO_FILE).read_text())["train"]
    with _quiet():
        return _train(run_dir, rows, run_settings, grpo_settings, Path(base_dir), vocabulary, init_from,
                      corpus_pairs, log, config_overrides)


@contextlib.contextmanager
def _quiet():
    """No weight-loading bars and no deprecation warnings raised inside TRL/transformers (not ours to fix)."""
    bars = transformers.logging.is_progress_bar_enabled()
    transformers.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if bars:
            transformers.logging.enable_progress_bar()


def _train(run_dir: Path, rows, run_settings: RunSettings, grpo_settings: GrpoSettings, base_dir: Path,
           vocabulary: Vocabulary, init_from, corpus_pairs, log, config_overrides: dict) -> dict:
    """`train_grpo_run`'s work for a run that is not finished (see there)."""
    final = run_dir / layout.FINAL_CHECKPOINT
    settings = RunSettings.from_dict({**asdict(run_settings), "lora": grpo_settings.lora})
    settings.lora_settings.r, settings.lora_settings.alpha = grpo_settings.lora_r, grpo_settings.lora_alpha
    model, processor, merge_on_save = _starting_model(base_dir, settings, corpus_pairs, init_from, log)
    resume = last_checkpoint(run_dir)
    full_weights = resume is not None and (resume / "config.json").exists()
    if full_weights:
        model = _load_full_checkpoint(model, resume)
    # TRL tokenises the text prompts with the tokenizer's chat template (see the module note on images).
    tokenizer = getattr(processor, "tokenizer", processor)
    trainer = grpo_trainer(model, tokenizer, rows, grpo_settings, run_dir, **config_overrides)
    if full_weights:  # loaded above; the Trainer still restores the optimiser, scheduler, RNG and step
        trainer._load_from_checkpoint = lambda *args, **kwargs: None
    log(f"GRPO -> {run_dir.name}: {min(len(rows), grpo_settings.prompts or len(rows))} prompts"
        + (f", resuming from {resume.name}" if resume else ""))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    result = {"steps": trainer.state.global_step, "seconds": round(time.perf_counter() - start, 1),
              "resumed_from": resume.name if resume else None, "prompts": len(trainer.train_dataset)}
    storage.write_json(run_dir / LOG_HISTORY_FILE, trainer.state.log_history)
    with staging_dir(final) as tmp:
        trained = trainer.model
        if merge_on_save:  # the start's weights live only in this model: save them with the new adapter folded in
            trained = trained.merge_and_unload()
        trained.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        storage.write_json(tmp / "vocabulary.json", {"headings": vocabulary.templates, "source": vocabulary.source})
        storage.write_json(tmp / RUN_INFO_FILE, {"settings": asdict(settings), "train": result,
                                                 "grpo": asdict(grpo_settings), "init_from": str(init_from or "base")})
    return result


def own_accuracy(files: Mapping[str, str | Path], pairs: Sequence[pairs_mod.Pair], clusters: Mapping[str, str],
                 answer_preds: str | Path | None = None, seed: int = 0) -> pd.DataFrame:
    """Answer accuracy of each system's written rationales, and of the Answer Model, with 95% intervals.

    Args:
        files: system -> a ladder file (``{"id", "completion"}`` rows; the completion's own ``<answer>``).
        pairs: the labelled test pairs.
        clusters: pair id -> photo (`idiff_lib.data.meta.photo_clusters`), resampled whole.
        answer_preds: the Answer Model's ``preds_test.jsonl`` (a row "Answer Model" when it exists).

    Returns:
        One row per system: system, accuracy, ci_low, ci_high, n (the pairs both have).
    """
    labels = {p.id: p.answer for p in pairs if p.answer is not None}
    sources = {name: {r["id"]: pairs_mod.parse_completion(r["completion"]).answer
                      for r in storage.read_jsonl_rows(path)} for name, path in files.items()}
    if answer_preds is not None and Path(answer_preds).exists():
        sources["Answer Model"] = {pid: row["answer"] for pid, row in read_answers(answer_preds).items()}
    rows = []
    for name, answers in sources.items():
        ids = [i for i in labels if i in answers]
        ci = cluster_bootstrap_mean([float(answers[i] == labels[i]) for i in ids], [clusters.get(i, i) for i in ids],
                                    seed=seed)
        rows.append({"system": name, "accuracy": ci["value"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                     "n": ci["n"]})
    return pd.DataFrame(rows)
