"""Feature-table speed: hand-crafted set, each offline pyiqa metric, and a cached rerun, on 2 CPU cores.

Targets (issue 5): the hand-crafted set (all four views, plus face/rest regions of person pairs)
at >= 4 pairs/s, and a cached rerun >= 50x faster than the first run. Timings include reading and
splitting the merged JPEGs and hashing them, as in a real run. Pairs come from data/demo (its
train split) when present, else from scikit-image's sample photos written at the demo's sizes
(320x256 global halves, 208x208 detail halves) into a temporary folder. With ``--large`` a second
hand-crafted case times 1536x1024 global halves (above the 1024 px working size, so the downscale
is part of the time). The learned pyiqa metrics are listed as available or not (their weights are
not downloaded). The load average is recorded, since the 2 cores are shared.
Writes ``benchmarks/results/feature_speed.json``.

Usage: ``python benchmarks/feature_speed.py [--pairs 40] [--iqa-pairs 6] [--threads 2] [--large]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from skimage import data
from skimage.transform import resize

from idiff_lib.features import cv
from idiff_lib.features import iqa
from idiff_lib.features.table import build_feature_table
from idiff_lib.core import paths
from idiff_lib.core import storage
from idiff_lib.data.pairs import read_pairs


def synthetic_pairs(folder: Path, n: int, size: tuple[int, int] = (256, 320), local: int = 208) -> list:
    """n pairs (3/4 person) from scikit-image photos: A clean, B with Gaussian noise, as merged JPEGs."""
    photos = {"p": data.astronaut(), "s": data.coffee()}
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        kind = "s" if i % 4 == 0 else "p"
        a = (resize(photos[kind], size, anti_aliasing=True) * 255).astype(np.uint8)
        b = np.clip(a + rng.normal(0, 4 + i % 7, a.shape), 0, 255).astype(np.uint8)
        y, x = (size[0] - local) // 2, (size[1] - local) // 2
        refs = []
        for tag, (left, right) in (("c0", (a, b)), ("c1", (a[y:y + local, x:x + local], b[y:y + local, x:x + local]))):
            ref = f"images/{kind}_{i:04d}_merged_{tag}.jpg"
            Image.fromarray(np.concatenate([left, right], axis=1)).save(folder / ref, quality=92)
            refs.append(ref)
        lines.append({"images": refs})
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return list(read_pairs(folder / "pairs.jsonl"))


def source_pairs(n: int, tmp: Path) -> tuple[list, str]:
    demo = paths.DEMO_DIR / "train_sft.jsonl"
    if demo.exists():
        return list(read_pairs(demo, limit=n)), str(demo)
    return synthetic_pairs(tmp / "synthetic", n), "synthetic (scikit-image photos at demo sizes)"


def time_table(pairs: list, **kwargs) -> float:
    start = time.perf_counter()
    build_feature_table(pairs, progress=False, **kwargs)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40, help="pairs for the hand-crafted timing")
    ap.add_argument("--iqa-pairs", type=int, default=6, help="pairs for each pyiqa metric (PIQE is slow)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--large", action="store_true", help="also time 1536x1024 global views")
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "feature_speed.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    result: dict = {"threads": args.threads, "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": os.getloadavg(), "work_side": cv.WORK_SIDE,
                    "iqa_side": iqa.IQA_SIDE, "targets": {"cv_pairs_per_s": 4.0, "cached_speedup": 50.0}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pairs, origin = source_pairs(args.pairs, tmp)
        result["pairs_source"], result["pairs"] = origin, len(pairs)
        cache = tmp / "cache"
        time_table(pairs[:2], cv=("cv",), cache_dir=None)  # warm-up: imports, Haar cascade
        cold = time_table(pairs, cv=("cv",), cache_dir=cache)
        warm = time_table(pairs, cv=("cv",), cache_dir=cache)
        result["cv"] = {"seconds": cold, "pairs_per_s": len(pairs) / cold,
                        "cached_seconds": warm, "cached_pairs_per_s": len(pairs) / warm, "cached_speedup": cold / warm}
        if args.large:
            big = synthetic_pairs(tmp / "large", max(8, args.pairs // 4), size=(1024, 1536), local=512)
            secs = time_table(big, cv=("cv",), cache_dir=None)
            result["cv_large_1536x1024"] = {"pairs": len(big), "seconds": secs, "pairs_per_s": len(big) / secs}
        result["iqa"] = {}
        sub = pairs[:args.iqa_pairs]
        for metric in iqa.OFFLINE_METRICS:
            time_table(sub[:1], cv=("iqa",), iqa_metrics=(metric,), cache_dir=None)  # build the metric
            secs = time_table(sub, cv=("iqa",), iqa_metrics=(metric,), cache_dir=None)
            result["iqa"][metric] = {"pairs": len(sub), "seconds": secs, "pairs_per_s": len(sub) / secs}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            available = iqa.available_metrics(iqa.LEARNED_METRICS)
        result["learned_available"] = available
        result["learned_left_out"] = [str(w.message) for w in caught]
    result["load_average_after"] = os.getloadavg()
    result["meets_targets"] = {"cv_pairs_per_s": result["cv"]["pairs_per_s"] >= 4.0,
                               "cached_speedup": result["cv"]["cached_speedup"] >= 50.0}
    storage.write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "learned_left_out"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
