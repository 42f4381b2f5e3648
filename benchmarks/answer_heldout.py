"""The Answer Model on held-out pairs: photos the project never used, degraded by other code than the benchmark's.

The embedded benchmark's pairs come from one generator (`idiff_lib.data.degrade`); a model
tuned on them can learn that generator. This script builds pairs in the RAIM layout from other
photos (default: the real photographs shipped inside the installed ``pyiqa`` wheel, which no part
of the project uses) with degradations written here independently, in OpenCV and NumPy: Gaussian
luma noise, chroma noise, Gaussian blur, JPEG, unsharp-mask oversharpening and bilateral
smearing. Every pair is a **dominance pair**: both sides carry the same defect kind, one more
strongly (severities at least ``--gap`` apart), and optionally one shared defect at equal strength;
the better side is the one with less of the defect, whatever any penalty weights say.

The saved Answer run (`idiff answer predict`'s loader) scores every pair; the JSON holds the
ensemble's and each member's accuracy, per defect kind, with 95% bootstrap intervals over pairs
and over photos (few photos: read the photo interval as the honest one).

Usage: .venv/bin/python benchmarks/answer_heldout.py --run runs/cpu [--photos DIR] [--pairs-per-photo 40]
           [--out benchmarks/results/answer_heldout.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from idiff_lib.answer.experiments.analysis import bootstrap_ci
from idiff_lib.answer.experiments.ensemble import predict_rows
from idiff_lib.answer.experiments.run_store import load_answer_run
from idiff_lib.core import paths, storage
from idiff_lib.data.pairs import format_completion, make_pair, write_pairs

KINDS = ("luma_noise", "chroma_noise", "blur", "jpeg", "oversharpen", "smear")
WORK_LONG = 400  # the work image's long side (the benchmark's renditions are about this size)
GLOBAL_LONG = 320  # the global view's long side
LOCAL_SIDE = 192  # the detail crop's side, at the work image's pixels


def default_photos() -> Path:
    """The real photographs in the installed pyiqa wheel (``tests/test_efficiency_img_dir``)."""
    import importlib.metadata as md  # alias: 'metadata' names a value here

    for f in md.distribution("pyiqa").files or []:
        if "test_efficiency_img_dir" in str(f) and str(f).lower().endswith((".jpg", ".png")):
            return Path(f.locate()).parent
    raise SystemExit("no photos found in the pyiqa wheel; pass --photos DIR")


def degrade(img: np.ndarray, kind: str, s: float, rng: np.random.Generator) -> np.ndarray:
    """One defect at severity `s` in [0, 1] (independent of the benchmark's generator)."""
    x = img.astype(np.float32)
    if kind == "luma_noise":
        x = x + rng.normal(0, 3 + 22 * s, x.shape[:2])[..., None]
    elif kind == "chroma_noise":
        n = rng.normal(0, 3 + 20 * s, x.shape[:2] + (2,))
        ycc = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float32)
        ycc[..., 1:] += cv2.GaussianBlur(n, (0, 0), 1.0)
        x = cv2.cvtColor(np.clip(ycc, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB).astype(np.float32)
    elif kind == "blur":
        x = cv2.GaussianBlur(x, (0, 0), 0.4 + 2.2 * s)
    elif kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", np.clip(x, 0, 255).astype(np.uint8)[..., ::-1],
                               [cv2.IMWRITE_JPEG_QUALITY, int(round(60 - 55 * s))])
        x = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)
    elif kind == "oversharpen":
        x = x + (0.6 + 3.0 * s) * (x - cv2.GaussianBlur(x, (0, 0), 1.5))
    elif kind == "smear":
        u8 = np.clip(x, 0, 255).astype(np.uint8)
        for _ in range(1 + int(3 * s)):
            u8 = cv2.bilateralFilter(u8, 7, 20 + 60 * s, 5)
        x = u8.astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_pairs(photos: list[Path], per_photo: int, gap: float, out: Path, seed: int) -> tuple[list, list[dict]]:
    """Dominance pairs written as merged c0/c1 JPEGs (q95) and a labelled JSONL; their metadata."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    pairs, meta = [], []
    for photo in photos:
        img = np.asarray(Image.open(photo).convert("RGB"))
        for k in range(per_photo):
            h, w = img.shape[:2]
            side = int(min(h, w) * rng.uniform(0.5, 0.9))
            cw = min(w, int(side * 1.25))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - cw + 1))
            crop = img[y:y + side, x:x + cw]
            scale = WORK_LONG / max(crop.shape[:2])
            work = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)), interpolation=cv2.INTER_AREA)
            kind = KINDS[int(rng.integers(len(KINDS)))]
            lo = float(rng.uniform(0.05, 1 - gap))
            hi = float(rng.uniform(lo + gap, 1.0))
            a_better = bool(rng.random() < 0.5)
            a, b = degrade(work, kind, lo if a_better else hi, rng), degrade(work, kind, hi if a_better else lo, rng)
            shared = None
            if rng.random() < 0.5:
                shared = KINDS[int(rng.integers(len(KINDS)))]
                s = float(rng.uniform(0.1, 0.5))
                if shared != kind:
                    a, b = degrade(a, shared, s, np.random.default_rng(k)), degrade(b, shared, s, np.random.default_rng(k))
            gh = round(work.shape[0] * GLOBAL_LONG / max(work.shape[:2]))
            gw = round(work.shape[1] * GLOBAL_LONG / max(work.shape[:2]))
            ly, lx = int(rng.integers(0, work.shape[0] - LOCAL_SIDE + 1)), int(rng.integers(0, work.shape[1] - LOCAL_SIDE + 1))
            c0 = np.concatenate([cv2.resize(a, (gw, gh), interpolation=cv2.INTER_AREA),
                                 cv2.resize(b, (gw, gh), interpolation=cv2.INTER_AREA)], 1)
            c1 = np.concatenate([a[ly:ly + LOCAL_SIDE, lx:lx + LOCAL_SIDE], b[ly:ly + LOCAL_SIDE, lx:lx + LOCAL_SIDE]], 1)
            pid = f"h_{photo.stem[:12]}_{k:03d}"
            refs = [f"images/{pid}_merged_c0.jpg", f"images/{pid}_merged_c1.jpg"]
            Image.fromarray(c0).save(out / refs[0], quality=95)
            Image.fromarray(c1).save(out / refs[1], quality=95)
            answer = "A" if a_better else "B"
            pairs.append(make_pair(refs, format_completion(f"Global Overall: Image {answer} is better.", answer),
                                   base_dir=out))
            meta.append({"id": pairs[-1].id, "photo": photo.name, "kind": kind, "lo": lo, "hi": hi, "shared": shared})
    write_pairs(pairs, out / "heldout_sft.jsonl")
    return pairs, meta


def _acc(correct: np.ndarray, photos: np.ndarray) -> dict:
    lo, hi = bootstrap_ci(correct)
    plo, phi = bootstrap_ci(correct, clusters=photos)
    return {"acc": round(float(correct.mean()), 4), "n": int(len(correct)), "ci95_pairs": [round(lo, 4), round(hi, 4)],
            "ci95_photos": [round(plo, 4), round(phi, 4)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a chain run folder or its 02_train_answer_model folder")
    ap.add_argument("--photos", default=None, help="a folder of photos never used by the project (default: pyiqa's)")
    ap.add_argument("--pairs-per-photo", type=int, default=40)
    ap.add_argument("--gap", type=float, default=0.3, help="smallest severity gap between the two sides")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "answer_heldout.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(args.photos) if args.photos else default_photos()
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pairs, meta = make_pairs(photos, args.pairs_per_photo, args.gap, Path(tmp), args.seed)
        ens = load_answer_run(args.run)
        rows = predict_rows(ens, pairs)
    labels = np.array([p.answer == "A" for p in pairs])
    ph = np.array([m["photo"] for m in meta], dtype=object)
    kinds = np.array([m["kind"] for m in meta])
    result = {"run": str(args.run), "photos": [p.name for p in photos], "pairs": len(pairs), "gap": args.gap,
              "degradations": list(KINDS), "seconds": round(time.perf_counter() - t0, 1)}
    final = np.array([r["p_left"] > 0.5 for r in rows]) == labels
    result["ensemble"] = _acc(final, ph)
    result["members"] = {n: _acc(np.array([r["members"][n] > 0.5 for r in rows]) == labels, ph) for n in ens.names}
    result["ensemble_by_kind"] = {k: _acc(final[kinds == k], ph[kinds == k]) for k in KINDS if (kinds == k).any()}
    storage.write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("pairs", "ensemble", "members")}, indent=1))


if __name__ == "__main__":
    main()
