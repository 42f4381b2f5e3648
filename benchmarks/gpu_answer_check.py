"""GPU check of the paper profile's answer model: a short training burst and an inference burst per
backbone (random init: the speed does not depend on the weights), with bf16 autocast and
channels_last, and the whole ensemble's pairs/s beside the paper's 4.76 pairs/s (0.21 s per pair,
NVIDIA H20). With ``--data`` a JSONL file, the five-member ensemble is also timed end to end (JPEG
decoding, view splitting, routing, all members) through the same code as ``idiff answer predict``.
Writes ``benchmarks/results/gpu_answer_check.json``.

Prepared for a session with a GPU; on CPU it runs only as a smoke test with tiny sizes
(``--device cpu --img-size 64 --steps 1 --batch 2``).

Usage: python benchmarks/gpu_answer_check.py [--steps 20] [--batch 32] [--infer-pairs 256] [--data data/demo/test_sft.jsonl]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from idiff_lib.answer.experiments import ensemble, ensemblers
from idiff_lib.answer.model.backbone_names import resolve_backbone
from idiff_lib.answer.model.network import PairwiseModel
from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.answer.train.training import autocast_for
from idiff_lib.core import paths
from idiff_lib.core import storage
from idiff_lib.data.pairs import read_pairs

PAPER_PAIRS_PER_S = 1 / 0.21


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _end_to_end(cfgs, device: torch.device, args: argparse.Namespace) -> dict:
    """All members (random init) as one mean ensemble over real pairs, decoding and splitting included."""
    pairs = read_pairs(args.data, limit=args.e2e_pairs)
    models = []
    for cfg in cfgs:
        model = PairwiseModel(cfg).to(device).eval()
        models.append(model.to(memory_format=torch.channels_last) if device.type == "cuda" else model)
    ens = ensemble.Ensemble([ensemble.NetworkMember(c.name, {"": m}) for c, m in zip(cfgs, models)],
                            ensemblers.make_ensembler("mean"))
    ensemble.predict_rows(ens, pairs[:2], batch_size=args.infer_batch)  # warm-up; a new view cache below
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t0 = time.perf_counter()
    rows = ensemble.predict_rows(ens, pairs, batch_size=args.infer_batch)
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"data": str(args.data), "pairs": len(rows), "seconds": round(seconds, 2),
            "pairs_per_s": round(len(rows) / seconds, 2), "seconds_per_pair": round(seconds / len(rows), 4),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=20, help="training steps per backbone (after 3 warm-up steps)")
    parser.add_argument("--batch", type=int, default=32, help="pairs per training batch (the paper's 32)")
    parser.add_argument("--infer-pairs", type=int, default=256)
    parser.add_argument("--infer-batch", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--data", default=None, help="a JSONL file to time the ensemble end to end on")
    parser.add_argument("--e2e-pairs", type=int, default=100, help="pairs of --data timed end to end")
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "gpu_answer_check.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or smoke-test with --device cpu --img-size 64 --steps 1 --batch 2")
    results: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                     "torch": torch.__version__, "img_size": args.img_size, "batch": args.batch, "members": {}}
    settings = AnswerSettings.for_profile("paper", pretrained=False, img_size=args.img_size, resize=max(args.img_size, 256))
    cfgs = [settings.member(b) for b in settings.backbones]
    total_infer_s = 0.0
    for cfg in cfgs:
        model = PairwiseModel(cfg).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
            torch.cuda.reset_peak_memory_stats()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
        x = torch.rand(args.batch, 4, 3, args.img_size, args.img_size, device=device)
        y = (torch.rand(args.batch, device=device) > 0.5).float()
        model.train()
        for i in range(args.steps + 3):
            if i == 3:
                _sync(device)
                t0 = time.perf_counter()
            with autocast_for(device):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        train_s = (time.perf_counter() - t0) / max(1, args.steps)
        train_mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        model.eval()
        xi = torch.rand(args.infer_batch, 4, 3, args.img_size, args.img_size, device=device)
        n_batches = max(1, args.infer_pairs // args.infer_batch)
        with torch.no_grad():
            with autocast_for(device):
                model(xi)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(n_batches):
                with autocast_for(device):
                    model(xi)
            _sync(device)
        infer_s = (time.perf_counter() - t0) / (n_batches * args.infer_batch)
        total_infer_s += infer_s
        results["members"][cfg.name] = {
            "timm_name": resolve_backbone(cfg.backbone),
            "train_pairs_per_s": round(args.batch / train_s, 1),
            "train_images_per_s": round(4 * args.batch / train_s, 1),
            "inference_pairs_per_s": round(1 / infer_s, 1),
            "peak_memory_gib_train": None if train_mem is None else round(train_mem, 2),
        }
        print(cfg.name, results["members"][cfg.name], flush=True)
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    results["ensemble_pairs_per_s"] = round(1 / total_infer_s, 1)
    if args.data:
        results["ensemble_end_to_end"] = _end_to_end(cfgs, device, args)
        print("end to end", results["ensemble_end_to_end"], flush=True)
    results["paper_ensemble_pairs_per_s"] = round(PAPER_PAIRS_PER_S, 2)
    storage.write_json(Path(args.out), results)
    print(results)
    return results


if __name__ == "__main__":
    main()
