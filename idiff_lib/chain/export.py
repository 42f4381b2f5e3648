"""Predictions export: a trained run's answers and rationales as a RAIM JSONL submission.

``idiff export --run RUN_DIR --data PAIRS.jsonl --out submission.jsonl`` writes one line per input
pair, in input order, in the SFT shape of the public RAIM-PIQA files: the input record with an
assistant turn holding the full completion ``<thinking>…</thinking>\\n<answer>X</answer>``.

- The verdict comes from the run's Answer Model (``RUN_DIR/02_train_answer_model``, the ensemble
  that notebook 02 saved), exactly as ``idiff answer predict`` gives it.
- The rationale comes from the run's Thinking Model (``RUN_DIR/03_tune_thinking_model/model/<stage>``,
  the last stage trained by default). In the answer-aware stage S4 the model is given the Answer
  Model's verdict and writes only the supporting rationale, as in iDiff.
- ``--writer template`` uses the template writer instead of the trained model (no Thinking run needed).

Work is resumable: the answers and the rationales go to side files next to ``--out``
(``<out>.answers.jsonl``, ``<out>.rationales.jsonl``); a rerun reuses them and only the missing
pairs are computed. The side files belong to one export: ``<out>.export.json`` records the run
(its ensemble and step markers), the input file's content hash and the settings; an export to the
same ``--out`` with another run, other data or other settings removes the old side files (they are
only a cache of this run's outputs) and starts afresh. The submission itself is written atomically
at the end. ``--out`` is checked before any work: not a folder, not the input, in a writable folder.

Nothing of the input's answers reaches the submission or its side files. Each pair is read, then
made blind (`blind_pair`: no completion, no answer) before any writer sees it, and each submitted
record is built from an allow-list (`SUBMISSION_FIELDS`, and the system and user messages' role and
content): no assistant turn in any letter case, no ``solution``, no other key of the input. The
answers side file holds the Answer Model's rows without the gold ``label``; the accuracy against
labelled input is given only in the summary the command prints.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import yaml

from idiff_lib.answer.experiments import ensemble, run_store
from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.features import cue_text
from idiff_lib.thinking.decode.generation import model_writer, verdict_sources, with_verdict_sources, write_rationales
from idiff_lib.thinking.prompting import prompts as prompts_mod  # alias: 'prompts' names built prompts in this module
from idiff_lib.thinking.prompting import template_baseline
from idiff_lib.thinking.prompting.side_inputs import CUE_THRESHOLDS_FILE, aspect_evidence, calibrated_cues, s4_answers
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.train.run import JOINT_DIR, RUN_INFO_FILE, load_thinking_run

# The file in model/<stage>/final that marks a finished Thinking Model stage.
_STAGE_SPEC = "thinking.json"
# The input record's top-level keys a submission carries (besides the messages): nothing else passes.
SUBMISSION_FIELDS = ("id", "images", "layout")
# Bumped when the side files' content changes, so those of an older export are recomputed.
SIDE_FILE_FORMAT = 2


def side_file(out: str | Path, kind: str) -> Path:
    """The resumable side file ``<out stem>.<kind>.jsonl`` next to the submission."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{kind}.jsonl")


def export_manifest(out: str | Path) -> Path:
    """``<out stem>.export.json``: what the side files were computed from (run, data hash, settings)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.export.json")


def _file_digest(path: Path) -> str | None:
    return storage.file_sha256(path) if path.is_file() else None


def _stage_spec_digest(run_dir: Path, stage: str) -> str | None:
    folder = stage_run_folder(run_dir, stage)
    return None if folder is None else _file_digest(folder / layout.FINAL_CHECKPOINT / _STAGE_SPEC)


def export_key(run_dir: Path, data: str | Path, settings: dict[str, Any]) -> dict[str, Any]:
    """What the side files depend on: the run (its models' specs and step markers), the input's content, the settings."""
    answer, thinking = layout.step_dir(run_dir, layout.ANSWER_STEP), layout.step_dir(run_dir, layout.THINKING_STEP)
    stage = settings.get("stage")
    return {
        "format": SIDE_FILE_FORMAT,
        "run": str(run_dir.resolve()),
        "ensemble": _file_digest(answer / layout.ENSEMBLE_FILE),
        "answer_step": _file_digest(answer / layout.STEP_MARKER),
        "thinking_model": _stage_spec_digest(run_dir, stage) if settings.get("writer") == "model" and stage else None,
        "thinking_step": _file_digest(thinking / layout.STEP_MARKER) if settings.get("writer") == "model" else None,
        "data": storage.file_sha256(data),
        "settings": settings,
    }


def _start_side_files(out: Path, key: dict[str, Any]) -> str | None:
    """Keep the side files of this very export; remove those of another (stale) one. Returns a note or None."""
    manifest = export_manifest(out)
    sides = [side_file(out, kind) for kind in ("answers", "rationales")]
    try:
        old = json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        old = None
    if old == key:
        return None
    stale = [p for p in sides if p.exists()]
    for path in stale:
        path.unlink()
    storage.write_json(manifest, key)
    if stale:
        return (f"side files of an earlier export with another run, data or settings removed "
                f"({', '.join(p.name for p in stale)}); computing afresh")
    return None


def stage_run_folder(run_dir: str | Path, stage: str) -> Path | None:
    """The training run folder whose final model writes `stage` in a chain run, or None when none does.

    The progressive ladder leaves ``model/<stage>/final``; the joint ladder one model,
    ``model/joint/final``, trained on every stage of its ``stage_mix`` (`thinking.run.JOINT_DIR`).
    """
    if (layout.stage_model_dir(run_dir, stage) / _STAGE_SPEC).exists():
        return layout.stage_model_dir(run_dir, stage).parent
    joint = layout.step_dir(run_dir, layout.THINKING_STEP) / layout.THINKING_MODEL_DIR / JOINT_DIR
    info_file = joint / layout.FINAL_CHECKPOINT / RUN_INFO_FILE
    if info_file.is_file():
        try:
            settings = json.loads(info_file.read_text(encoding="utf-8")).get("settings", {})
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(info_file, f"is not valid JSON ({err})", "rerun notebook 03 (idiff run --from 03)") from None
        if stage in (settings.get("stage_mix") or [settings.get("stage")]):
            return joint
    return None


def thinking_model_dir(run_dir: str | Path, stage: str | None = None) -> tuple[Path, str]:
    """The run folder of the Thinking Model for `stage` (default: the last stage trained) and that stage.

    Either ladder's model is found (`stage_run_folder`).
    """
    base = layout.step_dir(run_dir, layout.THINKING_STEP) / layout.THINKING_MODEL_DIR
    if stage:
        folder = stage_run_folder(run_dir, stage)
        if folder is None:
            raise DataError(base / stage, f"no Thinking Model trained for stage {stage}",
                            f"run notebook 03 with {stage} in its stages, or pick one of "
                            f"{', '.join(available_stages(run_dir)) or 'none trained yet'}")
        return folder, stage
    stages = available_stages(run_dir)
    if not stages:
        raise DataError(base, "no trained Thinking Model in this run",
                        "run the chain through notebook 03 (idiff run --profile cpu --out RUN_DIR), "
                        "or export with --writer template")
    return stage_run_folder(run_dir, stages[-1]), stages[-1]


def available_stages(run_dir: str | Path) -> list[str]:
    """The prompt stages some final Thinking Model of the run writes (either ladder), in ladder order."""
    return [s for s in prompts_mod.STAGES if stage_run_folder(run_dir, s) is not None]


def predict_answers(run_dir: str | Path, pairs: Sequence[pairs_mod.Pair], path: Path,
                    batch_size: int = 16, device: str | None = None) -> dict[str, dict[str, Any]]:
    """The Answer Model's row per pair id, reusing the rows already in `path` (resumable)."""
    done = {r["id"]: r for r in storage.read_resumable_jsonl(path)}
    todo = [p for p in pairs if p.id not in done]
    if todo:
        ens = run_store.load_answer_run(layout.step_dir(run_dir, layout.ANSWER_STEP), device=device)
        for start in range(0, len(todo), 64):  # saved a chunk at a time, so an interruption loses little
            for row in ensemble.predict_rows(ens, todo[start:start + 64], batch_size=batch_size):
                row = {k: v for k, v in row.items() if k != "label"}  # no gold beside a submission
                storage.append_jsonl(path, row)
                done[row["id"]] = row
    return done


def training_pairs(run_dir: str | Path) -> list[pairs_mod.Pair]:
    """The train split the run's Thinking Model was tuned on (from notebook 03's params.yaml), or []."""
    params = layout.step_dir(run_dir, layout.THINKING_STEP) / layout.PARAMS_FILE
    if not params.exists():
        return []

    data_dir = Path((yaml.safe_load(params.read_text(encoding="utf-8")) or {}).get("data_dir", ""))
    train = data_dir / "train_sft.jsonl"
    return list(pairs_mod.read_pairs(train)) if train.exists() else []


def cues_for(pairs: Sequence[pairs_mod.Pair], stage: str, calibration: Sequence[pairs_mod.Pair] | None = None,
             progress: bool = True, run_dir: str | Path | None = None) -> tuple[dict, str]:
    """Feature cue texts for the stages whose prompts carry them (S2 and later), and the aspect evidence (S3 and later).

    The cue thresholds are the ones `run_dir`'s notebook 03 calibrated on its train split and saved
    (``CUE_THRESHOLDS_FILE``), so only `pairs`' features are computed. A run without them (an older
    one) has them calibrated on `calibration` (default: the run's train split, `training_pairs`), or
    on `pairs` themselves when that is empty (and the note says so). The evidence comes from `run_dir`'s aspect heads with notebook
    03's evidence settings of that run (``params.yaml``; the defaults when absent); without heads
    each block says ``unavailable``.
    """
    if prompts_mod.STAGES.index(stage) < prompts_mod.STAGES.index("S2"):
        return {}, f"stage {stage} uses no feature cues"
    saved = layout.step_dir(run_dir, layout.THINKING_STEP) / CUE_THRESHOLDS_FILE if run_dir is not None else None
    if saved is not None and saved.is_file():
        cues, note = calibrated_cues(pairs, progress=progress, thresholds=cue_text.load_thresholds(saved))
    else:
        if calibration is None:
            calibration = training_pairs(run_dir) if run_dir is not None else []
        cues, note = calibrated_cues(pairs, calibration, progress=progress)
    if prompts_mod.STAGES.index(stage) >= prompts_mod.STAGES.index("S3") and run_dir is not None:
        cues, note = with_run_evidence(cues, note, pairs, run_dir)
    return cues, note


def with_run_evidence(cues: dict, note: str, pairs: Sequence[pairs_mod.Pair], run: str | Path) -> tuple[dict, str]:
    """`cues` with each pair's S3/S4 evidence block (key ``evidence``) from a run's aspect heads, and the note.

    `run` is a chain run folder or its Answer step folder; the block settings are that run's
    notebook-03 ones (`thinking_settings_of`). Without heads each block says ``unavailable``.
    """
    run = Path(run)
    answer_dir = run if (run / layout.ENSEMBLE_FILE).exists() else layout.step_dir(run, layout.ANSWER_STEP)
    settings = thinking_settings_of(run if answer_dir != run else run.parent)
    blocks, ev_note = aspect_evidence(pairs, answer_dir, lines=settings.evidence_lines,
                                      presence_weight=settings.evidence_weight,
                                      min_presence=settings.evidence_min_presence)
    return {p.id: {**cues.get(p.id, {}), "evidence": blocks[p.id]} for p in pairs}, f"{note}; {ev_note}"


def thinking_settings_of(run_dir: str | Path):
    """Notebook 03's settings in `run_dir` (its ``params.yaml``), or the defaults when it has none."""
    params_file = layout.step_dir(run_dir, layout.THINKING_STEP) / layout.PARAMS_FILE
    if not params_file.is_file():
        return ThinkingSettings()

    try:
        params = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DataError(params_file, f"is not valid YAML ({err})", "rerun notebook 03 (idiff run --from 03)") from None
    if not isinstance(params, dict):
        raise DataError(params_file, "does not hold a mapping of parameters", "rerun notebook 03 (idiff run --from 03)")
    known = {f.name for f in dataclasses.fields(ThinkingSettings)}
    return ThinkingSettings.from_params({k: v for k, v in params.items() if k in known}, where=str(params_file))


def blind_pair(pair: pairs_mod.Pair) -> pairs_mod.Pair:
    """`pair` without its answer: no completion, thinking or verdict, and a record of `SUBMISSION_FIELDS` and prompts only."""
    record = {k: pair.record[k] for k in SUBMISSION_FIELDS if k in pair.record}
    record["images"] = list(pair.image_refs)
    record["messages"] = pairs_mod.prompt_messages(pair.record)
    return dataclasses.replace(pair, shape="test", completion=None, thinking="", answer=None, problems=(),
                               record=record)


def submission_record(pair: pairs_mod.Pair, completion: str) -> dict[str, Any]:
    """The SFT record of `pair` with `completion` as its assistant turn, from the allow-list only."""
    blind = blind_pair(pair)
    record = dict(blind.record)
    record["messages"] = [*record["messages"], {"role": "assistant", "content": completion}]
    return record


def _submission(pairs: Sequence[pairs_mod.Pair], answers: dict[str, dict[str, Any]],
                rationales: dict[str, dict[str, Any]], gold: dict[str, str | None]) -> tuple[list[dict[str, Any]], int, int]:
    """The SFT records carrying the model's rationale and verdict, and (agreeing, labelled) counts against `gold`."""
    records, agree, labelled = [], 0, 0
    for pair in pairs:
        completion = rationales[pair.id]["completion"]
        parsed = pairs_mod.parse_completion(completion)
        verdict = answers[pair.id]["answer"]
        if parsed.answer != verdict:  # stages without the verdict in the prompt: the Answer Model decides
            completion = pairs_mod.format_completion(parsed.thinking, verdict)
        if gold.get(pair.id) is not None:
            labelled += 1
            agree += verdict == gold[pair.id]
        records.append(submission_record(pair, completion))
    return records, agree, labelled


def export(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    stage: str | None = None,
    writer: str = "model",
    data_root: str | Path | None = None,
    batch_size: int = 16,
    device: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the submission JSONL for every pair of `data`; returns a summary (counts, accuracy when labelled)."""
    run_dir, out = Path(run_dir), Path(out)
    if writer not in ("model", "template"):
        raise ParameterError(f"--writer must be 'model' or 'template', got {writer!r}")
    for path in (out, *(side_file(out, kind) for kind in ("answers", "rationales")), export_manifest(out)):
        storage.check_output_file(path, "--out", inputs=(data,))
    spec = layout.step_dir(run_dir, layout.ANSWER_STEP) / layout.ENSEMBLE_FILE
    if not spec.exists():
        raise DataError(spec, "no trained Answer Model in this run",
                        "run the chain through notebook 02 first: idiff run --profile cpu --out RUN_DIR")
    read = pairs_mod.read_pairs(data, data_root=data_root, require_images=True, limit=limit)
    gold = {p.id: p.answer for p in read}  # for the printed accuracy only
    pairs = [blind_pair(p) for p in read]  # no writer, prompt or side file sees an answer
    model_dir, stage = thinking_model_dir(run_dir, stage) if writer == "model" else (None, stage or "S4")
    out.parent.mkdir(parents=True, exist_ok=True)
    key = export_key(run_dir, data, {"writer": writer, "stage": stage,
                                     "data_root": str(data_root) if data_root else None})
    note = _start_side_files(out, key)
    answers = predict_answers(run_dir, pairs, side_file(out, "answers"), batch_size, device)

    if model_dir is not None:
        model, processor, settings, vocabulary = load_thinking_run(model_dir)
        run_settings = thinking_settings_of(run_dir)
        cues, cue_note = cues_for(pairs, stage, progress=progress, run_dir=run_dir)
        write = model_writer(model, processor, batch_size=settings.gen_batch_size,
                             max_new_tokens=settings.max_new_tokens, max_pixels=settings.max_pixels,
                             no_repeat_ngram_size=settings.no_repeat_ngram_size,
                             constrained=run_settings.constrained_decoding, copy_evidence=run_settings.copy_evidence)
    else:
        vocabulary = prompts_mod.load_vocabulary()
        cues, cue_note = cues_for(pairs, stage, progress=progress, run_dir=run_dir)
        write = template_baseline.writer(vocabulary, stage, cues=cues)
    # the same verdict prompts as notebook 03; every pair has a prediction, and no pair an answer to fall back on
    verdicts, _ = s4_answers(pairs, side_file(out, "answers"), fallback="prior")
    prompts = prompts_mod.build_prompts(pairs, stage, cues=cues, answers=verdicts, vocabulary=vocabulary)
    rationales_path = side_file(out, "rationales")
    # each row records where its prompt's verdict came from, by the rule s4_answers followed
    write = with_verdict_sources(write, verdict_sources(pairs, side_file(out, "answers"), fallback="prior"))
    write_rationales(pairs, prompts, rationales_path, write, progress=progress)
    rationales = {r["id"]: r for r in storage.read_jsonl_rows(rationales_path)}

    records, agree, labelled = _submission(pairs, answers, rationales, gold)
    storage.write_jsonl(out, records)
    summary = {"out": str(out), "pairs": len(records), "stage": stage, "writer": writer, "cues": cue_note,
               "answers": str(side_file(out, "answers")), "rationales": str(rationales_path)}
    if note:
        summary["note"] = note
    if labelled:
        summary["accuracy"] = round(agree / labelled, 4)
        summary["labelled"] = labelled
    return summary

