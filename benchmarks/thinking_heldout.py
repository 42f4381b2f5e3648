"""The Thinking Model on held-out pairs from photos the project never used: format, answer and Overall-line agreement.

The pairs are `answer_heldout.py`'s dominance pairs (default: the real photographs inside the
installed ``pyiqa`` wheel, degraded by OpenCV code independent of the benchmark's generator). A
finished cpu run supplies everything else, as `idiff export` would use it: the Answer Model's
verdicts (step 02), the aspect evidence from its heads, the feature cues (thresholds calibrated on
the run's train pairs), and the run's final Thinking Model (either ladder). The last stage's
prompts are decoded twice, free and structure-constrained (`generation.AgreementConstraint`, with the
evidence copied through when the run's `copy_evidence` is on).

Measured per decoding, with 95% bootstrap intervals over photos: the challenge's format check on
the raw output (``raw_format_pass``), whether the written ``<answer>`` is the Answer Model's
(``answer_agreement``), and whether the Overall line states the ``<answer>`` (``overall_agreement``,
among the rationales whose Overall line names a side; ``overall_stated`` is that share). The
held-out pairs have no reference rationales, so BLEU and ROUGE are not defined here; the Answer
Model's accuracy on them is `answer_heldout.py`'s.

Usage: .venv/bin/python benchmarks/thinking_heldout.py --run runs/cpu [--pairs-per-photo 6]
           [--out benchmarks/results/thinking_heldout.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from idiff_lib.answer.experiments.analysis import bootstrap_ci
from idiff_lib.chain import export
from idiff_lib.core import paths, storage
from idiff_lib.core.ontology import SUMMARY_HEADING
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists here
from idiff_lib.scoring.verdicts import read_verdict
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.decode.evaluation import format_ok
from idiff_lib.thinking.decode.generation import model_writer
from idiff_lib.thinking.train.run import load_thinking_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_heldout import default_photos, make_pairs  # the same held-out pairs


def overall_verdict(completion: str) -> str | None:
    """The side the ``Global Overall`` line of a completion favours (None when it names none)."""
    lines = [ln for ln in pairs_mod.parse_completion(completion).lines if ln.startswith(f"{SUMMARY_HEADING}:")]
    verdict = read_verdict(lines[-1].split(":", 1)[1])[0] if lines else None
    return verdict if verdict in pairs_mod.ANSWERS else None


def _share(flags: list[bool], photos: list[str]) -> dict:
    if not flags:
        return {"value": None, "n": 0}
    arr = np.array(flags, dtype=float)
    lo, hi = bootstrap_ci(arr, clusters=np.array(photos, dtype=object))
    return {"value": round(float(arr.mean()), 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": len(flags)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a chain run folder that finished notebooks 02 and 03")
    ap.add_argument("--photos", default=None, help="a folder of photos never used by the project (default: pyiqa's)")
    ap.add_argument("--pairs-per-photo", type=int, default=6)
    ap.add_argument("--gap", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "thinking_heldout.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    folder = Path(args.photos) if args.photos else default_photos()
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    t0 = time.perf_counter()
    model_dir, stage = export.thinking_model_dir(run)
    settings = export.thinking_settings_of(run)
    result = {"run": str(run), "model": str(model_dir), "stage": stage, "photos": [p.name for p in photos]}
    with tempfile.TemporaryDirectory() as tmp:
        pairs, meta = make_pairs(photos, args.pairs_per_photo, args.gap, Path(tmp), args.seed)
        answers = export.predict_answers(run, pairs, Path(tmp) / "answers.jsonl")
        cues, note = export.cues_for(pairs, stage, export.training_pairs(run), progress=False, run_dir=run)
        verdicts = {p.id: {"answer": answers[p.id]["answer"]} for p in pairs}
        model, processor, run_settings, vocabulary = load_thinking_run(model_dir)
        built = prompts.build_prompts(pairs, stage, cues=cues, answers=verdicts, vocabulary=vocabulary)
        result.update({"pairs": len(pairs), "cues": note})
        photo_of = {m["id"]: m["photo"] for m in meta}
        for decoding in ("free", "constrained"):
            write = model_writer(model, processor, batch_size=settings.gen_batch_size,
                                 max_new_tokens=settings.max_new_tokens, max_pixels=run_settings.max_pixels,
                                 no_repeat_ngram_size=settings.no_repeat_ngram_size,
                                 constrained=decoding == "constrained",
                                 copy_evidence=decoding == "constrained" and settings.copy_evidence)
            t1 = time.perf_counter()
            written = write(pairs, built)
            raw_ok, agree, stated, overall, ph, ph_stated = [], [], [], [], [], []
            for pair, (completion, info) in zip(pairs, written):
                parsed = pairs_mod.parse_completion(completion)
                side = overall_verdict(completion)
                raw_ok.append(bool(info.get("raw_format_ok")) and format_ok(completion))
                agree.append(parsed.answer == answers[pair.id]["answer"])
                stated.append(side is not None)
                ph.append(photo_of[pair.id])
                if side is not None:
                    overall.append(side == parsed.answer)
                    ph_stated.append(photo_of[pair.id])
            result[decoding] = {"raw_format_pass": _share(raw_ok, ph), "answer_agreement": _share(agree, ph),
                                "overall_stated": _share(stated, ph), "overall_agreement": _share(overall, ph_stated),
                                "seconds": round(time.perf_counter() - t1, 1),
                                "example": written[0][0]}
            print(decoding, json.dumps({k: v for k, v in result[decoding].items() if k != "example"}), flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    storage.write_json(args.out, result)


if __name__ == "__main__":
    main()
