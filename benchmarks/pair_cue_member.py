"""The Answer Model's feature member on the aligned pair cues: accuracy against synthetic training pairs.

Fits `FeatureMember(kind="hgb")` on the `pair_cues` of the train split plus the first N
of a synthetic pair stream rendered from the training photos (`synthetic.synthetic_cue_table`, cached
under ``.cache/pair_cue_bench``), for each N in ``--sizes``, and reports val and test accuracy
(95% bootstrap interval on test), the swap error, and the speed of the cues and of the stream.

The demo's val and test splits hold 100 pairs each, so their accuracies are only known to about
+-0.09. On the embedded benchmark, each member is therefore also scored on ``--heldout`` fresh
pairs drawn by the same generator from the val and test photos only (photos no training pair
uses; cached under ``.cache/pair_cue_heldout``): a tighter estimate of accuracy on unseen photos.
Writes ``benchmarks/results/pair_cue_member.json``.

Usage: ``python benchmarks/pair_cue_member.py [--data data/demo] [--sizes 0 1000 2000 4000 8000] [--heldout 1200]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from idiff_lib.answer.experiments import analysis
from idiff_lib.answer.train import synthetic
from idiff_lib.answer.train.feature_member import FeatureMember
from idiff_lib.answer.train.splits import load_splits
from idiff_lib.features import pair_cues
from idiff_lib.features.table import feature_table
from idiff_lib.core import paths
from idiff_lib.demo_data import photos
from idiff_lib.core import storage
from idiff_lib.data.views import load_views


HELDOUT_SEED = 99  # the synthetic training stream uses --seed (42); the committed demo pairs seed 0


def _heldout_table(splits: dict, data: Path, args: argparse.Namespace) -> pd.DataFrame | None:
    """`args.heldout` fresh pairs from the val and test photos (the embedded benchmark only), with their cues."""
    if not synthetic.SyntheticSource(splits["train"], data).names:
        print("held-out pairs: skipped (not the embedded benchmark, so no catalogue photos outside train)")
        return None
    names = [p.name for split in ("val", "test") for p in photos.catalogue(split)]
    source = synthetic.SyntheticSource(splits["train"], data, catalogue_names=names)
    return synthetic.synthetic_cue_table(source, args.heldout, paths.CACHE_DIR / "pair_cue_heldout",
                                       seed=HELDOUT_SEED, workers=args.workers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(paths.DEMO_DIR))
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 1000, 2000, 4000, 8000])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--heldout", type=int, default=1200,
                    help="fresh pairs from the val/test photos to score each member on (0 = none)")
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "pair_cue_member.json"))
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    data = Path(args.data)
    splits = load_splits(data)

    # cue speed on one core, from decoded views (the table's cache is bypassed)
    views = [load_views(p) for p in splits["test"].pairs[:50]]
    t0 = time.perf_counter()
    for v in views:
        pair_cues.pair_cues(v)
    cue_ms = 1000 * (time.perf_counter() - t0) / len(views)

    tables = {s: feature_table(sp.pairs, cache_dir=paths.CACHE_DIR / "features", progress=False)
              for s, sp in splits.items()}
    n_max = max(args.sizes)
    t0 = time.perf_counter()
    syn = synthetic.synthetic_cue_table(synthetic.SyntheticSource(splits["train"], data), n_max,
                                      paths.CACHE_DIR / "pair_cue_bench", seed=args.seed, workers=args.workers)
    stream_s = time.perf_counter() - t0
    held = _heldout_table(splits, data, args) if args.heldout else None
    rows = []
    for n in sorted(args.sizes):
        table = tables["train"]
        labels = np.asarray(splits["train"].labels, dtype=float)
        if n:
            part = syn.iloc[:n]
            table = pd.concat([table, part[list(table.columns)]])
            labels = np.concatenate([labels, part["label"].to_numpy(dtype=float)])
        t0 = time.perf_counter()
        member = FeatureMember(kind="hgb", seed=args.seed).fit(table, labels)
        fit_s = time.perf_counter() - t0
        p_val, p_test = member.predict_proba(tables["val"]), member.predict_proba(tables["test"])
        swap = member.predict_proba(-tables["test"].to_numpy())
        rows.append({"synthetic_pairs": n, "fit_seconds": round(fit_s, 2),
                     "val_accuracy": analysis.accuracy(p_val, splits["val"].labels),
                     "test": analysis.accuracy_table(p_test, splits["test"].labels, splits["test"].categories),
                     "swap_max_abs_error": float(np.max(np.abs(swap - (1 - p_test))))})
        if held is not None:
            cats = np.where(held["meta.person"].to_numpy() > 0.5, "person", "scene")
            rows[-1]["heldout"] = analysis.accuracy_table(member.predict_proba(held), held["label"].to_numpy(), cats)
        print(f"{n:6d} synthetic pairs: val {rows[-1]['val_accuracy']:.3f}  "
              f"test {rows[-1]['test']['overall']['acc']:.3f}"
              + (f"  held-out {rows[-1]['heldout']['overall']['acc']:.3f}" if held is not None else ""), flush=True)
    result = {"data": str(data), "cue_columns": len(pair_cues.columns()),
              "heldout": None if held is None else {"pairs": len(held), "photos": "the val and test photos",
                                                    "seed": HELDOUT_SEED},
              "cue_ms_per_pair_one_core": round(cue_ms, 1),
              "synthetic_stream": {"pairs": n_max, "seconds": round(stream_s, 1), "workers": args.workers,
                                   "note": "0 s when the chunks were already cached"},
              "load_average": os.getloadavg(), "rows": rows}
    storage.write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
