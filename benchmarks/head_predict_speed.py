"""`idiff answer predict` speed of a cache-first Answer run: pairs/s cold and warm. Writes JSON.

- **cold**: an empty feature cache (a temporary folder): every view of every pair goes through
  every frozen backbone, as for pairs never seen;
- **warm**: the same pairs again in a new process-like state (a fresh in-memory cache, the
  backbones loaded anew) with the disk cache filled by the cold pass: decoding, cache lookups and
  the heads;
- **warm model**: the same call once more with the backbones and the in-memory cache kept (a
  long-running predictor).

Each figure includes decoding the JPEGs, splitting the views, routing, every member and the
ensembler (the feature member's pair cues computed afresh each time: it has no view cache). The
load average is recorded at the start and the end: the machine may be shared.

Usage: .venv/bin/python benchmarks/head_predict_speed.py --run runs/cpu --data data/demo/test_sft.jsonl \
           [--pairs 64] [--threads 2] [--out benchmarks/results/head_predict_speed.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from idiff_lib.answer.experiments.ensemble import predict_rows
from idiff_lib.answer.experiments.run_store import load_answer_run
from idiff_lib.core import paths, storage
from idiff_lib.data.pairs import read_pairs


def _timed(ens, pairs, cache: dict) -> tuple[float, list]:
    t0 = time.perf_counter()
    rows = predict_rows(ens, pairs, cache=cache)
    return time.perf_counter() - t0, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a chain run folder or its 02_train_answer_model folder")
    parser.add_argument("--data", required=True, help="a JSONL file of pairs (its first --pairs are timed)")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "head_predict_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = list(read_pairs(args.data))[:args.pairs]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache_dir:
        paths.CACHE_DIR = Path(cache_dir)  # every feature cache below starts empty
        ens = load_answer_run(args.run)
        cold, rows = _timed(ens, pairs, {})
        ens = load_answer_run(args.run)
        warm, rows_warm = _timed(ens, pairs, {})
        cache: dict = {}
        _timed(ens, pairs, cache)
        hot, rows_hot = _timed(ens, pairs, cache)
    same = all(a["p_left"] == b["p_left"] == c["p_left"] for a, b, c in zip(rows, rows_warm, rows_hot))
    result = {
        "run": str(args.run), "data": str(args.data), "pairs": len(pairs), "threads": args.threads,
        "members": ens.names, "cold_pairs_per_s": round(len(pairs) / cold, 2),
        "warm_pairs_per_s": round(len(pairs) / warm, 2), "warm_model_pairs_per_s": round(len(pairs) / hot, 2),
        "same_predictions_cold_warm": same, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average": {"start": load_start, "end": os.getloadavg()},
    }
    storage.write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
