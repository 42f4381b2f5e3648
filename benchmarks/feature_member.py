"""Accuracy of the feature-based Answer member on data/demo: fit on train, select on val, report test.

Builds the hand-crafted feature tables of the three splits (cached under ``.cache/features``),
fits each `feature_member.DEFAULT_GRID` setting on train, keeps the best by validation accuracy, and
reports its test accuracy with a 95% bootstrap interval (overall, person, scene), its swap
consistency, the top permutation importances on test, and for reference the best single
difference column (chosen on val, sign only). With ``--iqa`` the offline pyiqa metrics are added
(PIQE takes ~10 ms per view on 2 cores). Writes ``benchmarks/results/feature_member.json``.

Usage: ``python benchmarks/feature_member.py [--data data/demo] [--iqa] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from idiff_lib.answer.experiments import analysis
from idiff_lib.answer.train.feature_member import FeatureMember, as_labels
from idiff_lib.features import cue_text
from idiff_lib.features import table
from idiff_lib.features import iqa
from idiff_lib.core import paths
from idiff_lib.core import storage
from idiff_lib.data.pairs import read_pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(paths.DEMO_DIR))
    ap.add_argument("--iqa", action="store_true", help="add the offline pyiqa metrics (iqa.OFFLINE_METRICS: piqe)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "feature_member.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    data = Path(args.data)
    sources = ("cv", "iqa") if args.iqa else ("cv",)
    start = time.perf_counter()
    tables, labels, cats = {}, {}, {}
    for split in ("train", "val", "test"):
        pairs = read_pairs(data / f"{split}_sft.jsonl")
        tables[split] = table.build_feature_table(pairs, features=sources, iqa_metrics=iqa.OFFLINE_METRICS,
                                                     cache_dir=paths.CACHE_DIR / "features")
        labels[split] = as_labels(p.answer for p in pairs)
        cats[split] = [p.category or "scene" for p in pairs]
    build_s = time.perf_counter() - start
    member, grid = FeatureMember.select(tables["train"], labels["train"], tables["val"], labels["val"])
    p_test = member.predict_proba(tables["test"])
    diffs = table.member_columns(tables["test"])
    swap = member.predict_proba(-diffs)
    val_single = {c: float(np.mean((np.sign(tables["val"][c].fillna(0)) > 0) == (labels["val"] > 0.5)))
                  for c in member.columns_}
    best_col = max(val_single, key=lambda c: abs(val_single[c] - 0.5))
    sign = 1 if val_single[best_col] >= 0.5 else -1
    single_test = float(np.mean(((sign * tables["test"][best_col].fillna(0)) > 0) == (labels["test"] > 0.5)))
    importances = member.permutation_importances(tables["test"], labels["test"], n_repeats=5)
    th = cue_text.calibrate_thresholds(tables["train"])
    cue_counts = [len(cue_text.render_features(tables["test"].iloc[i], "cv", th)) for i in range(len(tables["test"]))]
    result = {
        "data": str(data), "sources": list(sources), "feature_columns": len(member.columns_),
        "table_build_seconds": build_s, "threads": args.threads, "load_average": os.getloadavg(),
        "selection_grid": grid.to_dict(orient="records"),
        "chosen": {"kind": member.kind, "C": member.C},
        "test": analysis.accuracy_table(p_test, labels["test"], cats["test"]),
        "val_accuracy_of_chosen": float(grid["val_accuracy"].max()),
        "swap_max_abs_error": float(np.max(np.abs(swap - (1 - p_test)))),
        "best_single_column": {"column": best_col, "val_accuracy": max(val_single[best_col], 1 - val_single[best_col]),
                               "test_accuracy": single_test},
        "top_importances": importances.head(10).to_dict(orient="records"),
        "bad_samples": {s: t.attrs.get("problems", {}) for s, t in tables.items()},
        "cue_lines_per_test_pair": {"mean": float(np.mean(cue_counts)), "zero": int(sum(c == 0 for c in cue_counts))},
        "example_cues": {tables["test"].index[i]: cue_text.render_features(tables["test"].iloc[i], "cv", th)
                         for i in range(3)},
    }
    storage.write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("chosen", "test", "val_accuracy_of_chosen", "swap_max_abs_error",
                                             "best_single_column", "table_build_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
