"""Answer-model speed on this machine: inference pairs/s and training pairs/s per member and
for the whole ensemble. Writes ``benchmarks/results/answer_speed.json``.

Weights do not change the speed, so members are built with random weights at a profile's input
settings (``AnswerSettings.for_profile(--profile)``, default cpu); ``--backbones`` and
``--img-sizes`` time other members (e.g. the ImageNet EfficientNet-Lite members of issue 16) at
each crop size, with the profile's optimiser and batch unless ``--batch`` is given. With
``--data`` a JSONL file, the profile's ensemble is also timed end to end (decoding, view
splitting, routing, all members, the feature member's pair cues computed afresh) through the same
code as ``idiff answer predict``.

Usage: .venv/bin/python benchmarks/answer_speed.py [--data data/demo/test_sft.jsonl] [--pairs 32]
       .venv/bin/python benchmarks/answer_speed.py --backbones efficientnet_lite0,efficientnet_lite2 \
           --img-sizes 160,224 --batch 32 --out benchmarks/results/answer_speed_lite.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from idiff_lib.answer import ensemble
from idiff_lib.answer.network import PairwiseModel
from idiff_lib.answer.settings import AnswerSettings
from idiff_lib.core import paths
from idiff_lib.core import storage
from idiff_lib.data.pairs import read_pairs


def _feature_member() -> ensemble.FeatureMemberAdapter:
    """The feature member as the ensemble runs it (pair cues measured per pair, no cache), fitted on random rows."""
    import functools

    import pandas as pd

    from idiff_lib.answer.feature_member import FeatureMember
    from idiff_lib.features.table import feature_table
    from idiff_lib.features import pair_cues

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(300, len(pair_cues.columns()))), columns=pair_cues.columns())
    member = FeatureMember(kind="hgb").fit(table, rng.integers(0, 2, 300))
    return ensemble.FeatureMemberAdapter(member, functools.partial(feature_table, cache_dir=None, progress=False))


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _time_member(cfg, pairs: int, batch: int, repeats: int) -> tuple[float, float]:
    """Seconds per inference batch of `pairs` and per AdamW training step of `batch` (random weights)."""
    rng = np.random.default_rng(0)
    model = PairwiseModel(cfg)
    x = torch.from_numpy(rng.random((pairs, 4, 3, cfg.img_size, cfg.img_size), dtype=np.float32))
    y = torch.from_numpy((rng.random(pairs) > 0.5).astype(np.float32))
    model.eval()
    with torch.no_grad():
        t_inf = _time(lambda: model(x), repeats)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[:batch]), y[:batch])
        opt.zero_grad()
        loss.backward()
        opt.step()

    return t_inf, _time(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a JSONL file to time the ensemble end to end on")
    parser.add_argument("--pairs", type=int, default=32, help="pairs per timed batch / end-to-end run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", default="cpu", help="the AnswerSettings profile whose members are timed")
    parser.add_argument("--backbones", default="", help="comma-separated backbones instead of the profile's")
    parser.add_argument("--img-sizes", default="", help="comma-separated crop sides to time each member at")
    parser.add_argument("--batch", type=int, default=0, help="training batch (0: the profile's batch_size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "answer_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = AnswerSettings.for_profile(args.profile, pretrained=False)  # weights do not change the speed
    backbones = [b for b in args.backbones.split(",") if b] or settings.backbones
    sizes = [int(x) for x in args.img_sizes.split(",") if x] or [settings.img_size]
    batch = min(args.pairs, args.batch or settings.batch_size)  # the training batch actually timed
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                                 "torch": torch.__version__, "load_average_at_start": list(os.getloadavg())},
                     "settings": {"profile": args.profile, "img_sizes": sizes, "inference_batch": args.pairs,
                                  "train_batch": batch}, "members": {}}
    total_infer = 0.0
    for name in backbones:
        for size in sizes:
            cfg = AnswerSettings.for_profile(args.profile, pretrained=False, img_size=size,
                                             resize=max(size, settings.resize)).member(name)
            t_inf, t_train = _time_member(cfg, args.pairs, batch, args.repeats)
            total_infer += t_inf if size == sizes[0] else 0.0
            key = name if len(sizes) == 1 else f"{name}@{size}"
            results["members"][key] = {"img_size": size,
                                       "inference_pairs_per_s": round(args.pairs / t_inf, 2),
                                       "train_pairs_per_s": round(batch / t_train, 2),
                                       "train_images_per_s": round(4 * batch / t_train, 2)}
            print(key, results["members"][key], flush=True)
    # Each pair goes to one sub-model (generalist or its category's specialist) per backbone
    # (at the first crop size).
    results["ensemble_model_only_pairs_per_s"] = round(args.pairs / total_infer, 2)
    if args.data:
        pairs = read_pairs(args.data, limit=args.pairs)
        members = [ensemble.NetworkMember(n, {"": PairwiseModel(settings.member(n)).eval()}) for n in backbones]
        if settings.feature_member:
            members.append(_feature_member())
        ens = ensemble.Ensemble(members, ensemble.make_ensembler("mean"))
        t0 = time.perf_counter()
        ensemble.predict_rows(ens, pairs)
        dt = time.perf_counter() - t0
        results["ensemble_end_to_end"] = {"data": str(args.data), "pairs": len(pairs), "seconds": round(dt, 2),
                                          "pairs_per_s": round(len(pairs) / dt, 2)}
    results["paper_reference"] = "0.21 s per pair (4.76 pairs/s) for the paper's ensemble on an NVIDIA H20"
    storage.write_json(Path(args.out), results)
    print(results)


if __name__ == "__main__":
    main()
