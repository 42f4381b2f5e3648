"""Outside checks of the demo set's labels: FR-oracle agreement and the Laplacian baseline, as JSON.

For every pair the decoded global (c0) and detail (c1) views of A and B are compared with the
same views of the pristine source (rebuilt from ``meta/``) by pyiqa's full-reference metrics
(MS-SSIM, FSIM, VIF: no weights, so they run offline). The oracle picks the side with the
higher score; agreement is the share of pairs where the pick equals the label. The single-cue
baseline picks the side with the larger variance of the Laplacian ("sharper"); the set is too
easy if it comes near 90%.

Usage:
    python benchmarks/demo_oracle.py                       # all splits, all metrics, both views
    python benchmarks/demo_oracle.py --splits val,test --metrics ms_ssim --update-datasheet

Writes benchmarks/results/demo_oracle.json (and the datasheet section with --update-datasheet).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from idiff_lib.demo_data import build
from idiff_lib.core import paths
from idiff_lib.core import storage
from idiff_lib.data.datasets import load_split
from idiff_lib.data.views import load_views

METRICS = ("ms_ssim", "fsim", "vif")


def _tensor(imgs: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0


def evaluate(data_dir: Path, splits: list[str], metrics: list[str], views: list[str], limit: int | None,
             on_split=None) -> dict:
    """Agreement rows per check and view; `on_split(result)` is called after each split (partial results)."""
    import pyiqa

    models = {m: pyiqa.create_metric(m, device="cpu") for m in metrics}
    hits: dict[tuple[str, str, str], list[int]] = {}
    n_total = 0
    done: list[str] = []
    for split in splits:
        metas = {m["id"]: m for m in build.load_meta(data_dir, split)}
        pairs = load_split(data_dir, split, require_images=True, limit=limit)
        for pair in tqdm(pairs, desc=f"oracle {split}"):
            meta = metas[pair.id]
            v = load_views(pair)
            ref_global, ref_detail = build.views_of(build.pristine_work(meta), meta)
            sides = {"global": (v.global_left, v.global_right, ref_global),
                     "detail": (v.local_left, v.local_right, ref_detail)}
            for view in views:
                left, right, ref = sides[view]
                hits.setdefault(("laplacian", view, split), []).append(
                    int(build.laplacian_pick(left, right) == pair.answer))
                dist, refs = _tensor([left, right]), _tensor([ref, ref])
                for name, model in models.items():
                    with torch.no_grad():
                        score = model(dist, refs).flatten().tolist()
                    better_a = score[0] < score[1] if model.lower_better else score[0] > score[1]
                    hits.setdefault((name, view, split), []).append(int(("A" if better_a else "B") == pair.answer))
            n_total += 1
        done.append(split)
        result = _summarise(hits, done, metrics, views, n_total)
        if on_split is not None:
            on_split(result)
    return result


def _summarise(hits: dict, splits: list[str], metrics: list[str], views: list[str], n: int) -> dict:
    rows = []
    for check in ["laplacian", *metrics]:
        for view in views:
            row = {"check": check, "view": view}
            every: list[int] = []
            for split in splits:
                h = hits.get((check, view, split), [])
                row[split] = float(np.mean(h)) if h else None
                every += h
            row["all"] = float(np.mean(every)) if every else None
            rows.append(row)
    return {"splits": list(splits), "rows": rows, "n": n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(paths.DEMO_DIR), help="a built demo folder")
    parser.add_argument("--splits", default="test,val,train", help="in this order (held-out splits first)")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"pyiqa FR metrics among {', '.join(METRICS)}")
    parser.add_argument("--views", default="global,detail")
    parser.add_argument("--limit", type=int, default=None, help="at most this many pairs per split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "demo_oracle.json"))
    parser.add_argument("--update-datasheet", action="store_true", help="write the numbers into the data set's README")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()

    def save(result: dict) -> None:  # after every split, so an interrupted run keeps what it measured
        result.update(seconds=round(time.time() - start, 1), cores=os.cpu_count(), data=args.data,
                      command="python benchmarks/demo_oracle.py " + " ".join(sys.argv[1:]))
        storage.write_json(args.out, result)
        if args.update_datasheet:
            build.write_datasheet(args.data, oracle=result)

    result = evaluate(Path(args.data), args.splits.split(","), [m for m in args.metrics.split(",") if m],
                      args.views.split(","), args.limit, on_split=save)
    for row in result["rows"]:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
