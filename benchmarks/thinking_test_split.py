"""A finished run's Thinking Model on the whole test split (or --limit pairs), per stage, with 95% intervals over photos.

Notebook 03 scores the last stage on `final_test_limit` test pairs (48 on the cpu profile) and the
other rungs on `test_limit` (16) so that the chain fits its time; this script scores the same
models, the same prompts and the same decoding on every test pair (or `--limit` evenly spaced ones),
for the last stage or every stage named in `--stages`, beside the two floors of Table B:

- per stage, the run's model for that stage (``<model>``; the joint ladder's one model for every
  stage), decoded as the run's ladder decodes (`constrained_decoding`, `copy_evidence` and the other
  decoding settings from its ``params.yaml``);
- per stage, ``template``: the template filled from the evidence (no language model), as notebook 03's row;
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
agreement with ``<answer>``. Writes ``benchmarks/results/thinking_test_split.json`` (or `--out`).

Usage: .venv/bin/python benchmarks/thinking_test_split.py --run runs/cpu [--limit 0] [--threads 2]
       .venv/bin/python benchmarks/thinking_test_split.py --run runs/cpu --stages S0,S1,S2,S3 --limit 48 \
           --out benchmarks/results/thinking_rungs.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
from pathlib import Path

import torch

from idiff_lib.chain import export
from idiff_lib.core import layout, paths, storage
from idiff_lib.data import pairs
from idiff_lib.data.meta import photo_clusters, split_comparisons
from idiff_lib.scoring import controls, scorers
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.prompting import template_baseline
from idiff_lib.thinking.decode.generation import ladder_stage, model_writer, verdict_sources, with_verdict_sources
from idiff_lib.thinking.train.run import RUN_INFO_FILE, load_thinking_run
from idiff_lib.thinking.prompting.side_inputs import s4_answers

SCORERS = ["accuracy", "bleu4", "rouge_l", "consistency"]
WORK_DIR = Path("benchmarks") / "thinking_test_split"  # inside the run folder


def _work_key(run: Path, model_dir: Path, test_file: Path) -> str:
    """A digest of what the rationales depend on: the model's training record, notebook 03's parameters, the test file."""
    digest = hashlib.sha256()
    for path in (model_dir / layout.FINAL_CHECKPOINT / RUN_INFO_FILE,
                 layout.step_dir(run, layout.THINKING_STEP) / layout.PARAMS_FILE, test_file):
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:12]


def _row(system: str, stage: str | None, metrics: dict, seconds: float | None = None) -> dict:
    """The figures of one system at one stage, each with its 95% interval where one is defined."""
    mv = metrics.get("meta_verdicts") or {}
    acc, rouge, bleu = metrics["accuracy"]["overall"], metrics["rouge_l"], metrics["bleu4"]
    row = {"system": system, "stage": stage, "n": metrics["n"],
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
    ap.add_argument("--stages", default="", help="comma-separated prompt stages to score (default: the last one trained)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "thinking_test_split.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run, data = Path(args.run), Path(args.data)
    t0 = time.perf_counter()
    settings = export.thinking_settings_of(run)
    _, last_stage = export.thinking_model_dir(run)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] or [last_stage]
    bad = [s for s in stages if s not in prompts.STAGES]
    if bad:
        ap.error(f"--stages: unknown stage(s) {', '.join(bad)}; use some of {', '.join(prompts.STAGES)}")
    model_dirs = {stage: export.thinking_model_dir(run, stage)[0] for stage in stages}
    test = pairs.spread_subset(pairs.read_pairs(data / "test_sft.jsonl"), args.limit)
    train = export.training_pairs(run)
    prior = pairs.majority_answer(train)  # as notebook 03
    top = max(stages, key=prompts.STAGES.index)  # one cue set serves every stage, as in notebook 03
    cues, cue_note = export.cues_for(test, top, train, progress=True, run_dir=run)
    preds_file = layout.step_dir(run, layout.ANSWER_STEP) / layout.TEST_PREDICTIONS_FILE
    answers, answer_source = s4_answers(test, preds_file, settings.answers_fallback, prior)
    sources = verdict_sources(test, preds_file, settings.answers_fallback)
    meta = split_comparisons(data, "test")
    clusters = photo_clusters(data, "test", [p.id for p in test])
    model_tag = settings.model_tag
    rows, loaded = [], {}
    for stage in stages:
        if model_dirs[stage] not in loaded:  # the joint ladder: one model for every stage, loaded once
            loaded = {model_dirs[stage]: load_thinking_run(model_dirs[stage])}
        model, processor, _, vocabulary = loaded[model_dirs[stage]]
        built = prompts.build_prompts(test, stage, cues=cues, answers=answers, vocabulary=vocabulary)
        work = run / WORK_DIR / _work_key(run, Path(model_dirs[stage]), data / "test_sft.jsonl")
        systems = {
            model_tag: with_verdict_sources(model_writer(
                model, processor, batch_size=settings.gen_batch_size, max_new_tokens=settings.max_new_tokens,
                max_pixels=settings.max_pixels, fallback_answer=prior,
                no_repeat_ngram_size=settings.no_repeat_ngram_size, constrained=settings.constrained_decoding,
                copy_evidence=settings.copy_evidence), sources),
            "template": with_verdict_sources(template_baseline.writer(vocabulary, stage, prior, cues), sources),
        }
        for system, writer in systems.items():
            path = work / f"{system}_{stage}.jsonl"
            t1 = time.perf_counter()
            ladder_stage(system, stage, test, built, path, writer, meta=meta, chunk=settings.gen_batch_size)
            seconds = time.perf_counter() - t1
            written = storage.read_jsonl_rows(path)
            result = scorers.score(written, test, scorers=SCORERS, bootstrap=args.bootstrap, clusters=clusters,
                                   meta=meta, pred_source=path)
            rows.append(_row(system, stage, result.metrics, seconds))
            print(rows[-1], flush=True)
    floor = scorers.score(controls.shuffled_reference_predictions(test, settings.seed), test, scorers=SCORERS,
                          bootstrap=args.bootstrap, clusters=clusters, meta=meta)  # as `system_scores.floor_row`
    rows.append(_row(controls.FLOOR_SYSTEM, None, floor.metrics))
    print(rows[-1], flush=True)
    result = {"run": str(run), "models": {s: str(d) for s, d in model_dirs.items()}, "stages": stages,
              "rationales": str(run / WORK_DIR), "pairs": len(test),
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
