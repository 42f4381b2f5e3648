"""A finished run's final Thinking Model on the whole test split (or --limit pairs), with 95% intervals over photos.

Notebook 03 scores the last stage on `final_test_limit` test pairs (48 on the cpu profile) so that
the chain fits its time; this script scores the same model, the same prompts and the same decoding
on every test pair, beside the two floors of Table B:

- the run's last-stage model (``<model>``), decoded as the run's ladder decodes
  (`constrained_decoding`, `copy_evidence` and the other decoding settings from its ``params.yaml``);
- ``template``: the template filled from the evidence (no language model), as notebook 03's row;
- the shuffled-reference floor (each reference scored against another pair's).

The prompts are built as notebook 03 builds them: the cue thresholds the run saved, the evidence
blocks from its aspect heads with its evidence settings (`chain.export.cues_for`), the S4 verdicts
from its ``02_train_answer_model/preds_test.jsonl`` (the run's `answers_fallback` for a pair it did
not predict). The rationales are written resumably under ``RUN/benchmarks/thinking_test_split/KEY/``,
KEY a digest of the model's training record, notebook 03's parameters and the test file: a rerun
reuses them, and a retrained model or other settings decode afresh into another folder.

Measured per row with `scoring.scorers.score` (clusters = the pairs' photos): verdict accuracy
against the benchmark's ground truth and its coverage (pooled over lines and comparisons), BLEU-4
(corpus; the interval is the sentence-BLEU mean's), ROUGE-L, answer accuracy and the Overall line's
agreement with ``<answer>``. Writes ``benchmarks/results/thinking_test_split.json``.

Usage: .venv/bin/python benchmarks/thinking_test_split.py --run runs/cpu [--limit 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
from pathlib import Path

import torch

from idiff_lib.chain import export as export_mod
from idiff_lib.core import layout, paths, storage
from idiff_lib.data import pairs as pairs_mod
from idiff_lib.data.meta import photo_clusters, split_comparisons
from idiff_lib.scoring import controls, scorers
from idiff_lib.thinking import prompts as prompts_mod
from idiff_lib.thinking import template_baseline
from idiff_lib.thinking.generation import ladder_stage, model_writer, verdict_sources, with_verdict_sources
from idiff_lib.thinking.run import RUN_INFO_FILE, load_thinking_run
from idiff_lib.thinking.side_inputs import s4_answers

SCORERS = ["accuracy", "bleu4", "rouge_l", "consistency"]
WORK_DIR = Path("benchmarks") / "thinking_test_split"  # inside the run folder


def _work_key(run: Path, model_dir: Path, test_file: Path) -> str:
    """A digest of what the rationales depend on: the model's training record, notebook 03's parameters, the test file."""
    digest = hashlib.sha256()
    for path in (model_dir / layout.FINAL_CHECKPOINT / RUN_INFO_FILE,
                 layout.step_dir(run, layout.THINKING_STEP) / layout.PARAMS_FILE, test_file):
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:12]


def _row(system: str, metrics: dict, seconds: float | None = None) -> dict:
    """The figures of one system, each with its 95% interval where one is defined."""
    mv = metrics.get("meta_verdicts") or {}
    acc, rouge, bleu = metrics["accuracy"]["overall"], metrics["rouge_l"], metrics["bleu4"]
    row = {"system": system, "n": metrics["n"],
           "verdict_accuracy": [mv.get("verdict_accuracy"), mv.get("verdict_accuracy_ci_low"),
                                mv.get("verdict_accuracy_ci_high")],
           "meta_coverage": [mv.get("meta_coverage"), mv.get("meta_coverage_ci_low"), mv.get("meta_coverage_ci_high")],
           "lines_judged": mv.get("n_lines_judged"), "comparisons": mv.get("n_comparisons"),
           "bleu4": bleu["corpus"], "sentence_bleu4": [bleu["sentence_mean"], bleu["sentence_ci_low"],
                                                       bleu["sentence_ci_high"]],
           "rouge_l": [rouge["f"], rouge["ci_low"], rouge["ci_high"]],
           "accuracy": [acc["value"], acc["ci_low"], acc["ci_high"]],
           "consistency": (metrics.get("consistency") or {}).get("rate")}
    if seconds is not None:
        row["seconds"] = round(seconds, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a chain run folder that finished notebooks 02 and 03")
    ap.add_argument("--data", default=str(paths.DEMO_DIR), help="the data folder (its test_sft.jsonl and meta/)")
    ap.add_argument("--limit", type=int, default=0, help="evenly spaced test pairs (0 = the whole split)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "thinking_test_split.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run, data = Path(args.run), Path(args.data)
    t0 = time.perf_counter()
    settings = export_mod.thinking_settings_of(run)
    model_dir, stage = export_mod.thinking_model_dir(run)
    test = pairs_mod.spread_subset(pairs_mod.read_pairs(data / "test_sft.jsonl"), args.limit)
    train = export_mod.training_pairs(run)
    prior = pairs_mod.majority_answer(train)  # as notebook 03
    cues, cue_note = export_mod.cues_for(test, stage, train, progress=True, run_dir=run)
    preds_file = layout.step_dir(run, layout.ANSWER_STEP) / layout.TEST_PREDICTIONS_FILE
    answers, answer_source = s4_answers(test, preds_file, settings.answers_fallback, prior)
    sources = verdict_sources(test, preds_file, settings.answers_fallback)
    model, processor, _, vocabulary = load_thinking_run(model_dir)
    built = prompts_mod.build_prompts(test, stage, cues=cues, answers=answers, vocabulary=vocabulary)
    meta = split_comparisons(data, "test")
    clusters = photo_clusters(data, "test", [p.id for p in test])
    work = run / WORK_DIR / _work_key(run, Path(model_dir), data / "test_sft.jsonl")
    model_tag = settings.model_tag
    systems = {
        model_tag: with_verdict_sources(model_writer(
            model, processor, batch_size=settings.gen_batch_size, max_new_tokens=settings.max_new_tokens,
            max_pixels=settings.max_pixels, fallback_answer=prior, no_repeat_ngram_size=settings.no_repeat_ngram_size,
            constrained=settings.constrained_decoding, copy_evidence=settings.copy_evidence), sources),
        "template": with_verdict_sources(template_baseline.writer(vocabulary, stage, prior, cues), sources),
    }
    rows = []
    for system, writer in systems.items():
        path = work / f"{system}_{stage}.jsonl"
        t1 = time.perf_counter()
        ladder_stage(system, stage, test, built, path, writer, meta=meta, chunk=settings.gen_batch_size)
        seconds = time.perf_counter() - t1
        written = storage.read_jsonl_rows(path)
        result = scorers.score(written, test, scorers=SCORERS, bootstrap=args.bootstrap, clusters=clusters, meta=meta,
                               pred_source=path)
        rows.append(_row(system, result.metrics, seconds))
        print(rows[-1], flush=True)
    floor = scorers.score(controls.shuffled_reference_predictions(test, settings.seed), test, scorers=SCORERS,
                          bootstrap=args.bootstrap, clusters=clusters, meta=meta)  # as `score_figures.floor_row`
    rows.append(_row(controls.FLOOR_SYSTEM, floor.metrics))
    print(rows[-1], flush=True)
    result = {"run": str(run), "model": str(model_dir), "stage": stage, "rationales": str(work), "pairs": len(test),
              "photos": len(set(clusters.get(p.id, p.id) for p in test)), "cues": cue_note,
              "s4_verdicts": answer_source,
              "decoding": {"constrained_decoding": settings.constrained_decoding, "copy_evidence": settings.copy_evidence,
                           "gen_batch_size": settings.gen_batch_size, "max_new_tokens": settings.max_new_tokens,
                           "no_repeat_ngram_size": settings.no_repeat_ngram_size},
              "intervals": "95% cluster-bootstrap over photos; [value, low, high]", "rows": rows,
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "threads": args.threads, "torch": torch.__version__},
              "seconds": round(time.perf_counter() - t0, 1)}
    storage.write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
