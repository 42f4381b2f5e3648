"""``idiff think {build-tiny, cues, train, generate, export-swift, check-grpo, mine-vocabulary}``: the Thinking Model's commands."""

from __future__ import annotations

import argparse
import json

import torch

from idiff_lib.chain.export import with_run_evidence
from idiff_lib.core import storage
from idiff_lib.core.determinism import DEFAULT_THREADS
from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.core.vocabulary import RAIM_VOCABULARY_FILE
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.data.raim_rationales import remine_raim_vocabulary
from idiff_lib.thinking.decode.generation import model_writer, verdict_sources, with_verdict_sources, write_rationales
from idiff_lib.thinking.model.checkpoints import PAPER_MODELS
from idiff_lib.thinking.model.lora import LoraSettings
from idiff_lib.thinking.model.tiny import TinySettings, build_tiny_model, rationale_corpus
from idiff_lib.thinking.prompting import prompts as prompts_mod  # alias: 'prompts' names built prompts in this module
from idiff_lib.thinking.prompting import template_baseline
from idiff_lib.thinking.prompting.side_inputs import calibrated_cues, read_answers, read_answers_source, read_id_table
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.train.grpo_rows import read_grpo_file
from idiff_lib.thinking.train.run import RunSettings, build_run_settings, load_thinking_run, train_run
from idiff_lib.thinking.train.swift_export import grpo_stage, swift_records, write_swift_grpo
from idiff_lib.thinking.train.training import TrainSettings

# What `idiff think train` runs with besides its flags: the RunSettings / TinySettings defaults it
# has always used (notebook 03's settings differ: swaps, a wider tiny model, longer generation).
_TRAIN_DEFAULTS = {
    "max_new_tokens": RunSettings.max_new_tokens,
    "gen_batch_size": RunSettings.gen_batch_size,
    "no_repeat_ngram_size": RunSettings.no_repeat_ngram_size,
    "swap_augment": RunSettings.swap_augment,
    "tiny_hidden": TinySettings.hidden_size,
    "tiny_layers": TinySettings.layers,
    "tiny_vocab": TinySettings.vocab_size,
    "seed": TrainSettings.seed,
}


def _cues_arg(path: str | None) -> dict:
    return read_id_table(path) if path else {}


def _defaults_for(model: str) -> dict:
    """The settings `idiff think train` uses for what its flags leave out: the tiny model's, or for a
    paper checkpoint (``qwen3-vl-8b``, ``Qwen/Qwen3-VL-8B-Instruct``, ...) the paper profile's
    (LoRA, lr 1e-4, its batch size, epochs, pixel budget and decoding)."""
    base = {"epochs_per_stage": TrainSettings.epochs, "batch_size": TrainSettings.batch_size,
            "grad_accum": TrainSettings.grad_accum, "lr": TrainSettings.lr, "lora": False,
            "lora_dropout": LoraSettings.dropout, "max_pixels": 0, **_TRAIN_DEFAULTS}
    if model in PAPER_MODELS or model in PAPER_MODELS.values():
        paper = ThinkingSettings.for_profile("paper").as_dict()  # the defaults with the paper overlay
        base.update({k: paper[k] for k in base if k in paper})
    return base


def train_settings_of(args: argparse.Namespace) -> RunSettings:
    """The run settings of ``idiff think train`` (through `build_run_settings`, as notebook 03)."""
    given = {"epochs_per_stage": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "lora": args.lora,
             "max_pixels": args.max_pixels}
    chosen = {**_defaults_for(args.model), **{k: v for k, v in given.items() if v is not None}}
    settings = ThinkingSettings(model_name=args.model, raim_dir=args.raim_dir or "", **chosen)
    settings.validate()
    return build_run_settings(settings, stage=prompts_mod.check_stage(args.stage),
                              mixed_precision=args.mixed_precision, max_steps=args.max_steps,
                              save_every=args.save_every, tiny_max_pixels=TinySettings.max_pixels)


def _cmd_build_tiny(args: argparse.Namespace) -> int:
    labelled = pairs_mod.read_pairs(args.data) if args.data else []
    corpus = rationale_corpus(labelled, args.raim_dir)
    out = build_tiny_model(args.out, corpus, TinySettings(vocab_size=args.vocab_size))
    print(f"tiny Qwen2-VL written to {out}")
    return 0


CUE_SOURCES = ("cv", "iqa")
CUES_HELP = ("JSONL rows {id, cv, iqa[, iqa_sources, evidence]} of feature cue texts (S2, S3) and aspect evidence (S3, "
             "S4), as `idiff think cues` writes them")


def cue_sources_arg(text: str) -> tuple[str, ...]:
    """The ``--sources`` of ``idiff think cues``: comma-separated names out of `CUE_SOURCES`.

    Raises:
        ParameterError: an empty list or an unknown name (with a suggestion).
    """
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in CUE_SOURCES]
    if not names or unknown:
        bad = unknown[0] if unknown else text
        raise ParameterError(f"idiff think cues: --sources {text!r}: {bad!r} is not a cue source."
                             f"{suggest(bad, CUE_SOURCES)} fix: give a comma-separated list out of "
                             f"{', '.join(CUE_SOURCES)}")
    return names


def _cmd_cues(args: argparse.Namespace) -> int:
    sources = cue_sources_arg(args.sources)
    pairs = pairs_mod.read_pairs(args.data, require_images=True)
    calibration = pairs_mod.read_pairs(args.calibrate, require_images=True) if args.calibrate else []
    cues, note = calibrated_cues(pairs, calibration, sources=sources, require_learned=args.strict_iqa)
    if args.evidence_run:
        cues, note = with_run_evidence(cues, note, pairs, args.evidence_run)
    storage.write_jsonl(args.out, [{"id": pid, **row} for pid, row in cues.items()])
    print(f"{len(cues)} cue rows -> {args.out}")
    print(note)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    train_pairs = pairs_mod.read_pairs(args.data, limit=args.limit)
    result = train_run(args.out, train_pairs, train_settings_of(args), cues=_cues_arg(args.cues),
                       init_from=args.init_from, resume=not args.no_resume)
    if result.get("is_main_process", True):
        print(json.dumps({k: v for k, v in result.items() if k != "loss_history"}))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    pairs = pairs_mod.read_pairs(args.data, limit=args.limit)
    answers = read_answers(args.answers) if args.answers else {}
    if args.writer == "template":
        vocabulary = prompts_mod.load_vocabulary()
        stage = args.stage or "S4"
        prompts = prompts_mod.build_prompts(pairs, stage, cues=_cues_arg(args.cues), answers=answers,
                                            vocabulary=vocabulary)
        writer = template_baseline.writer(vocabulary, stage, cues=_cues_arg(args.cues))
    else:
        if not args.run:
            raise ParameterError("idiff think generate: --run RUN_DIR is required with --writer model. fix: pass the "
                                 "folder written by `idiff think train`, or use --writer template")
        model, processor, settings, vocabulary = load_thinking_run(args.run)
        stage = args.stage or settings.stage
        prompts = prompts_mod.build_prompts(pairs, stage, cues=_cues_arg(args.cues), answers=answers,
                                            vocabulary=vocabulary)
        writer = model_writer(model, processor, batch_size=settings.gen_batch_size,
                              max_new_tokens=settings.max_new_tokens, max_pixels=settings.max_pixels,
                              no_repeat_ngram_size=settings.no_repeat_ngram_size)
    # a row answered with its prompt's verdict records that verdict's source (S4 needs one from --answers)
    writer = with_verdict_sources(writer, verdict_sources(pairs, args.answers, fallback="prior"))
    stats = write_rationales(pairs, prompts, args.out, writer)
    print(json.dumps({"out": str(args.out), "stage": stage, **stats}))
    return 0


def _cmd_export_swift(args: argparse.Namespace) -> int:
    pairs = pairs_mod.read_pairs(args.data, require_images=True, limit=args.limit)
    vocabulary = prompts_mod.load_vocabulary(pairs)
    if args.shape == "grpo":
        # Never the reference answers: the accuracy reward checks them (see `grpo_stage`).
        stage, note = grpo_stage(args.stage, bool(args.answers), bool(args.cues))
        answers = read_answers_source(args.answers) if args.answers else {}
    else:
        stage, note = args.stage or "S4", ""
        answers = read_answers(args.answers) if args.answers else {p.id: {"answer": p.answer} for p in pairs}
    prompts = prompts_mod.build_prompts(pairs, stage, cues=_cues_arg(args.cues), answers=answers,
                                        vocabulary=vocabulary)
    rows = swift_records(pairs, prompts, args.shape)
    if args.shape == "grpo":
        written = write_swift_grpo(args.out, rows, source=args.data, model=args.model)
        print(f"{len(rows)} GRPO rows for ms-swift ({note}) -> {written['dataset']}; reward plugin "
              f"{written['plugin'].name}, command {written['script'].name}")
        return 0
    storage.write_jsonl(args.out, rows)
    print(f"{len(pairs)} {args.shape.upper()} rows for ms-swift -> {args.out}")
    return 0


def _cmd_check_grpo(args: argparse.Namespace) -> int:
    rows = read_grpo_file(args.data)
    print(f"{args.data}: {len(rows)} GRPO rows, every solution holds an <answer>")
    return 0


def _cmd_mine_vocabulary(args: argparse.Namespace) -> int:
    out = remine_raim_vocabulary(args.raim_dir, args.out)
    print(f"RAIM vocabulary counts mined from {args.raim_dir} -> {out}")
    return 0


def _add_build_tiny(sub) -> None:
    p = sub.add_parser("build-tiny", help="build the tiny Qwen2-VL-architecture model and its tokenizer")
    p.add_argument("--data", help="a labelled JSONL whose rationales join the tokenizer corpus")
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--vocab-size", type=int, default=TinySettings.vocab_size)
    p.add_argument("--raim-dir", help="a RAIM-PIQA folder whose public rationales join the tokenizer corpus")
    p.set_defaults(func=_cmd_build_tiny)


def _add_cues(sub) -> None:
    p = sub.add_parser("cues", help="write the feature cue file (rows {id, cv, iqa, iqa_sources[, evidence]}) that "
                                    "--cues takes")
    p.add_argument("--data", required=True, help="the pairs JSONL whose cues are written")
    p.add_argument("--calibrate", help="the labelled train JSONL whose pairs calibrate the cue thresholds (as notebook "
                                       "03 does); default: the --data file's own pairs")
    p.add_argument("--out", required=True, help="the cue JSONL to write (atomically)")
    p.add_argument("--sources", default=",".join(CUE_SOURCES),
                   help="comma-separated cue sources: cv (hand-crafted, S2) and iqa (IQA models, S3); "
                        "default: %(default)s")
    p.add_argument("--evidence-run", default="",
                   help="a chain run folder (or its 02_train_answer_model folder) whose aspect heads write each pair's "
                        "S3/S4 evidence block, with that run's notebook-03 evidence settings; default: none (S3/S4 "
                        "prompts then say the evidence is unavailable)")
    p.add_argument("--strict-iqa", action="store_true",
                   help="stop when a learned IQA metric (LIQE, Q-Align, ...) has no weights here (the paper profile's "
                        "rule); default: leave it out with a warning, and the cue rows say which metrics ran")
    p.set_defaults(func=_cmd_cues)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train the Thinking Model at one stage (runs under `accelerate launch` too)")
    p.add_argument("--data", required=True, help="the labelled training JSONL (SFT or GRPO shape)")
    p.add_argument("--out", required=True, help="the run folder (checkpoints, final/)")
    p.add_argument("--model", default="tiny", help="'tiny', a Hub name, an alias (qwen3-vl-8b, qwen2.5-vl-7b) or a folder")
    p.add_argument("--stage", default="S4", choices=prompts_mod.STAGES)
    p.add_argument("--cues", help=CUES_HELP)
    p.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None,
                   help="train LoRA adapters (r=16, all linear layers); default: on for a paper model "
                        "(qwen3-vl-8b, ...), off for the tiny one")
    p.add_argument("--init-from", help="start from an earlier run's final/ folder (progressive stages)")
    paper = "the paper profile's for a paper model (qwen3-vl-8b, ...), else the tiny model's"
    p.add_argument("--epochs", type=int, help=f"epochs; default: {paper}")
    p.add_argument("--batch-size", type=int, help=f"batch size; default: {paper}")
    p.add_argument("--lr", type=float, help=f"learning rate; default: {paper} (1e-4 / 2e-3)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--save-every", type=int, default=TrainSettings.save_every)
    p.add_argument("--max-pixels", type=int, help=f"per-image pixel budget; default: {paper}")
    p.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    p.add_argument("--limit", type=int, help="train on the first N pairs")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--raim-dir", help="a RAIM-PIQA folder whose public rationales join the tokenizer corpus and "
                                      "the template counts (default: the committed counts only)")
    p.set_defaults(func=_cmd_train)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write rationales (resumable: ids already in --out are skipped)")
    p.add_argument("--run", help="a training run folder (holds final/)")
    p.add_argument("--data", required=True, help="the pairs JSONL")
    p.add_argument("--answers", help="Answer Model predictions JSONL (id, answer[, p_left]); needed for S4")
    p.add_argument("--cues", help=CUES_HELP)
    p.add_argument("--out", required=True, help="the rationales JSONL to write")
    p.add_argument("--stage", choices=prompts_mod.STAGES, help="default: the run's training stage")
    p.add_argument("--writer", default="model", choices=("model", "template"))
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.set_defaults(func=_cmd_generate)


def _add_export_swift(sub) -> None:
    p = sub.add_parser("export-swift", help="write the SFT/GRPO JSONL that ms-swift takes")
    p.add_argument("--data", required=True, help="a labelled pairs JSONL")
    p.add_argument("--out", required=True)
    p.add_argument("--shape", default="sft", choices=("sft", "grpo"))
    p.add_argument("--stage", choices=prompts_mod.STAGES,
                   help="default: S4 for sft; for grpo S4 with --answers, else S3 (no verdict in the prompt)")
    p.add_argument("--cues", help=CUES_HELP)
    p.add_argument("--answers", help="the Answer Model's predictions (file, or for grpo a run folder of preds_*.jsonl) "
                                     "for S4 prompts (sft default: the reference answers; grpo: never)")
    p.add_argument("--model", default="Qwen/Qwen3-VL-8B-Instruct", help="grpo: the model the swift script trains")
    p.add_argument("--limit", type=int)
    p.set_defaults(func=_cmd_export_swift)


def _add_check_grpo(sub) -> None:
    p = sub.add_parser("check-grpo", help="check a GRPO JSONL before training: every solution holds an <answer>")
    p.add_argument("--data", required=True, help="the GRPO JSONL (rows with 'solution')")
    p.set_defaults(func=_cmd_check_grpo)


def _add_mine_vocabulary(sub) -> None:
    p = sub.add_parser("mine-vocabulary", help="maintainers: re-mine the committed RAIM vocabulary counts")
    p.add_argument("--raim-dir", required=True, help="the folder holding the public train_sft_1536.jsonl")
    p.add_argument("--out", default=str(RAIM_VOCABULARY_FILE), help="the counts file to write")
    p.set_defaults(func=_cmd_mine_vocabulary)


def add_cli(subparsers) -> None:
    """``idiff think {build-tiny, cues, train, generate, export-swift, check-grpo, mine-vocabulary}``."""
    think = subparsers.add_parser("think", help="the Thinking Model: rationales (train, generate, export)")
    sub = think.add_subparsers(dest="think_command", required=True)
    _add_build_tiny(sub)
    _add_cues(sub)
    _add_train(sub)
    _add_generate(sub)
    _add_export_swift(sub)
    _add_check_grpo(sub)
    _add_mine_vocabulary(sub)
