"""The embedded demo benchmark: RAIM-layout pairs made from real photos, with known answers and reasons.

`build_demo` writes a RAIM-PIQA-format folder (``data/demo`` by default):

- ``{train,val,test}_sft.jsonl``, ``{train,val,test}_grpo.jsonl``, ``test_unlabeled.jsonl``;
- ``images/<id>_merged_c0.jpg`` (global A|B at the midline, no separator) and
  ``images/<id>_merged_c1.jpg`` (the same detail crop of A and B, at a higher scale);
- ``meta/{split}.jsonl``: per pair the source photo, crop, defects of A and B with kind,
  severity and region, the quality-model penalties, the margin and the comparisons behind
  the rationale;
- ``README.md``: the datasheet (`write_datasheet`).

Each pair is a crop of one library photo (`idiff_lib.demo_data.photos`) degraded twice by
`idiff_lib.degrade.sample_pair`; the winner is the side with the lower quality-model penalty,
and pairs closer than `MARGIN` are redrawn. Its reference rationale is written by
`idiff_lib.write_rationale` from the per-region/attribute penalty differences. Every
pair is drawn from its own seed (``[seed, split, index]``), so one pair can be rebuilt alone and
an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from idiff_lib.core import paths, storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.core.imaging import laplacian_variance, to_grey
from idiff_lib.core.progress import progress_bar
from idiff_lib.core.vocabulary import Comparison, write_rationale
from idiff_lib.data import degrade, views
from idiff_lib.data.datasets import SPLITS, load_split
from idiff_lib.data.pairs import make_pair
from idiff_lib.demo_data import datasheet, photos

SPLIT_SIZES = {"train": 300, "val": 100, "test": 200}  # test >= 200: a 95% interval of about +-0.07
PERSON_SHARE = 0.75  # as in the public RAIM-PIQA set (75 person / 25 scene)
MARGIN = 0.08  # smallest quality-model penalty gap emitted
WORK_LONG = 768  # degradations are applied at this long side at most (the "full-resolution" rendition)
GLOBAL_LONG = 320  # long side of each half of c0
DETAIL_SIDE = 208  # side of each half of c1
JPEG_QUALITY = 80  # of the written c0/c1 files (4:2:0 chroma): keeps data/ (photos + demo) under 45 MB
_SPLIT_INDEX = {s: i for i, s in enumerate(SPLITS)}
# Rationale region names for the degradation regions.
_PERSON_REGION = {"global": "Global", "face": "Face", "skin": "Skin", "hair": "Hair", "clothing": "Clothing",
                  "background": "Global"}
_SCENE_REGION = {"global": "Global", "background": "Background", "edges": "Edges"}


@dataclass
class Sample:
    """One generated pair: merged images, its metadata row and its reference completion."""

    id: str
    c0: np.ndarray
    c1: np.ndarray
    meta: dict
    completion: str


def plan_split(split: str, n: int, seed: int) -> list[dict]:
    """The pairs of one split: id, photo, face and wanted answer, balanced A/B and ~3/4 person.

    Pairs go round robin over the split's photos (by name) and, for a portrait, over its faces.
    """
    if split not in SPLIT_SIZES:
        raise ParameterError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, _SPLIT_INDEX[split], 999])
    n_person = int(round(n * PERSON_SHARE))
    answers = np.array(["A", "B"] * (n // 2 + 1))[:n]  # balanced over the split (off by one when n is odd)
    rng.shuffle(answers)
    rows = []
    for category, count, prefix in (("person", n_person, "p"), ("scene", n - n_person, "s")):
        specs = photos.catalogue(split, category)
        if not specs and count:
            raise DataError(paths.PHOTOS_DIR, f"the photo library has no {category} photo for split {split}",
                            "add one with `idiff data collect-photos --add`")
        for i in range(count):
            spec = specs[i % len(specs)]
            row = {"id": f"{prefix}_{split}_{i:03d}", "photo": spec.name,
                   "answer": str(answers[len(rows)]), "index": len(rows)}
            if spec.faces:
                row["face"] = i // len(specs) % len(spec.faces)
            rows.append(row)
    return rows


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (width, height): area filter to shrink, bicubic to enlarge."""
    if (img.shape[1], img.shape[0]) == size:
        return img.copy()
    shrink = size[0] < img.shape[1]
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _crop_box(photo: photos.Photo, rng: np.random.Generator,
              face: int | None = None) -> tuple[tuple[int, int, int, int], int | None]:
    """A crop (x, y, w, h) of the photo and the index of the face it frames (None for scenes).

    Portraits get several framings: a face is chosen (`face`, or at random), the crop is 2 to 5 face widths wide
    (head shot to half figure), in a 4:5, 3:4, 1:1 or 5:4 aspect, with the face off centre.
    """
    H, W = photo.rgb.shape[:2]
    aspect = float(rng.choice([1.25, 1.333, 1.0, 0.8]))  # height / width
    if photo.category == "person":
        fi = int(rng.integers(len(photo.faces)))
        fi = fi if face is None else face % len(photo.faces)
        fx, fy, fw, fh = photo.faces[fi]
        w = min(W, fw * rng.uniform(2.0, 5.0))
        h = min(H, w * aspect)
        w = min(w, h / aspect) if h < w * aspect else w
        w, h = int(max(w, min(W, 1.4 * fw))), int(max(h, min(H, 1.6 * fh)))
        cx, cy = fx + fw / 2, fy + fh / 2
        x = int(np.clip(cx - w * rng.uniform(0.35, 0.65), 0, W - w))
        y = int(np.clip(cy - h * rng.uniform(0.25, 0.5), 0, H - h))
        return (x, y, w, h), fi
    area = rng.uniform(0.45, 1.0) * W * H
    w = int(min(W, np.sqrt(area / aspect)))
    h = int(min(H, w * aspect))
    return (int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1)), w, h), None


def _work_faces(photo: photos.Photo, box, scale: float, flip: bool, width: int) -> list[tuple[int, int, int, int]]:
    x0, y0, w, h = box
    out = []
    for fx, fy, fw, fh in photo.faces:
        cx, cy = fx + fw / 2, fy + fh / 2
        if not (x0 <= cx < x0 + w and y0 <= cy < y0 + h):
            continue
        nx, ny = (fx - x0) * scale, (fy - y0) * scale
        nw, nh = fw * scale, fh * scale
        if flip:
            nx = width - nx - nw
        out.append((int(round(nx)), int(round(ny)), int(round(nw)), int(round(nh))))
    return out


def pristine_work(meta: dict) -> np.ndarray:
    """The clean working image of a pair (crop, scale and flip of its source photo), from its metadata."""
    photo = photos.load_photo(meta["photo"])
    x, y, w, h = meta["crop"]
    work = _resize(photo.rgb[y:y + h, x:x + w], tuple(meta["work_size"]))
    return np.ascontiguousarray(work[:, ::-1]) if meta["flip"] else work


def views_of(work: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(global view, detail view) of one rendition at the pair's sizes, as written into c0 / c1."""
    x, y, s = meta["detail_box"]
    return (_resize(work, tuple(meta["global_size"])),
            _resize(work[y:y + s, x:x + s], (DETAIL_SIDE, DETAIL_SIDE)))


def _detail_box(ps: degrade.PairSample, masks: dict[str, np.ndarray], faces, category: str,
                work: np.ndarray, rng: np.random.Generator) -> tuple[tuple[int, int, int], str]:
    """The square (x, y, side) detail window and the region it shows.

    Portraits show the face in 60% of pairs (as expert crops mostly do); otherwise, and in
    scenes, the window goes to the region whose defects weigh most (where the renditions
    differ), at a point drawn in proportion to the local detail (gradient energy), so it
    rarely lands on a flat wall.
    """
    H, W = masks["global"].shape
    regional = [d for d in ps.defects_a + ps.defects_b if d.region != "global"]
    if faces and rng.random() < 0.6:
        focus = "face"
    elif regional:
        focus = max(regional, key=lambda d: degrade.defect_penalty(d, category)).region
    else:
        focus = "face" if faces else "detail"
    short = min(H, W)
    if focus == "face" and faces:
        fx, fy, fw, fh = faces[0]
        side = int(np.clip(fw * rng.uniform(0.7, 1.4), 96, 0.6 * short))  # a magnified look at the face
        cx, cy = fx + fw / 2, fy + fh * 0.55
    else:
        grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
        energy = cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (0, 0), 4)
        weight = (masks.get(focus, masks["global"]) > 0.5) * (energy + 1e-3)
        if weight.sum() <= 0:  # the region vanished in this crop: anywhere will do
            weight = energy + 1e-3
        weight = weight.ravel() / weight.sum()
        k = int(rng.choice(weight.size, p=weight))
        cy, cx = divmod(k, W)
        side = int(np.clip(short * rng.uniform(0.3, 0.5), 96, short))
    x = int(np.clip(cx - side / 2, 0, W - side))
    y = int(np.clip(cy - side / 2, 0, H - side))
    return (x, y, side), focus


def comparisons(ps: degrade.PairSample, category: str, subject: str = "",
                tol: float = 0.03) -> list[Comparison]:
    """Per region/attribute comparisons of a pair from its defects, for the rationale.

    The cost of each (region, attribute) on each side comes from `degrade.attribute_scores`;
    the side with the lower cost wins that line when the gap exceeds `tol`. In portraits a
    global defect also shows on the face, so it is booked under Face too (at 0.6 strength).
    """
    region_map = dict(_PERSON_REGION if category == "person" else _SCENE_REGION)
    if category == "scene":
        region_map["detail"] = subject or "Global"

    def costs(defects: list[degrade.Defect]) -> tuple[dict, dict]:
        total: dict[tuple[str, str], float] = {}
        cause: dict[tuple[str, str], tuple[float, str]] = {}
        for d in defects:
            for (region, attribute), value in degrade.attribute_scores([d], category).items():
                keys = [(region_map[region], attribute)]
                if category == "person" and region == "global":
                    keys.append(("Face", attribute))  # a global defect shows on the face too
                for j, key in enumerate(keys):
                    v = value * (0.6 if j else 1.0)
                    total[key] = total.get(key, 0.0) + v
                    if v > cause.get(key, (0.0, ""))[0]:
                        cause[key] = (v, d.kind)
        return total, cause

    ca, cause_a = costs(ps.defects_a)
    cb, cause_b = costs(ps.defects_b)
    out = []
    for key in sorted(set(ca) | set(cb)):
        diff = cb.get(key, 0.0) - ca.get(key, 0.0)
        if abs(diff) <= tol:
            out.append(Comparison(key[0], key[1], "similar", abs(diff)))
            continue
        verdict = "A" if diff > 0 else "B"
        loser_cause = (cause_b if verdict == "A" else cause_a).get(key, (0.0, None))[1]
        out.append(Comparison(key[0], key[1], verdict, round(abs(diff), 4), loser_cause))
    return out


def _splits_at_midline(merged: np.ndarray) -> bool:
    """True when `views.split_merged` cuts this image at its midline, as the layout intends (a flat
    band near the middle would be taken for a separator)."""
    return views.find_separator(merged) is None


def make_sample(plan: dict, split: str, seed: int, max_tries: int = 50) -> Sample:
    """Generate one planned pair (deterministic in seed, split and the plan's index).

    A draw whose merged image has a flat band near the middle (which the views code would take
    for a separator) is redrawn, up to `max_tries` times (small faces on a dark stage need ~25).
    """
    rng = np.random.default_rng([seed, _SPLIT_INDEX[split], plan["index"]])
    for _ in range(max_tries):
        sample = _draw_sample(plan, split, rng)
        if _splits_at_midline(sample.c0) and _splits_at_midline(sample.c1):
            return sample
    raise RuntimeError(f"{plan['id']}: every draw had a flat band at the midline of c0 or c1")


def _draw_sample(plan: dict, split: str, rng: np.random.Generator) -> Sample:
    photo = photos.load_photo(plan["photo"])
    box, _ = _crop_box(photo, rng, plan.get("face"))
    x, y, w, h = box
    scale = min(1.0, WORK_LONG / max(w, h)) * rng.uniform(0.8, 1.0)
    scale = max(scale, min(1.0, 320 / min(w, h)))
    work_size = (max(2, int(round(w * scale))), max(2, int(round(h * scale))))
    flip = bool(rng.random() < 0.5)
    meta = {"id": plan["id"], "split": split, "photo": photo.name, "photo_sha256": photo.sha256,
            "category": photo.category, "crop": [x, y, w, h], "flip": flip, "work_size": list(work_size)}
    work = pristine_work(meta)
    faces = _work_faces(photo, box, work_size[0] / w, flip, work_size[0]) if photo.category == "person" else []
    category = photo.category
    masks = degrade.region_masks(work, faces, category)
    ps = degrade.sample_pair(work, rng, faces=faces, category=category, masks=masks,
                             margin=MARGIN, want_answer=plan["answer"])
    detail, focus = _detail_box(ps, masks, faces, category, work, rng)
    g = GLOBAL_LONG / max(work_size)
    meta.update(global_size=[int(round(work_size[0] * g)), int(round(work_size[1] * g))],
                detail_box=list(detail), detail_focus=focus, faces=[list(f) for f in faces])
    ga, da = views_of(ps.a, meta)
    gb, db = views_of(ps.b, meta)
    comps = comparisons(ps, category, photo.spec.subject)
    completion = write_rationale(category, comps, ps.answer, rng)
    meta.update(ps.to_meta())
    meta["comparisons"] = [c.__dict__ for c in comps]
    return Sample(plan["id"], np.concatenate([ga, gb], 1), np.concatenate([da, db], 1), meta, completion)


def stream(split: str = "train", seed: int = 0, start: int = 0) -> Iterator[Sample]:
    """An endless stream of fresh pairs from one split's photos, for on-the-fly training.

    Pairs are drawn from ``[seed, split, index]`` with index counting up from `start`; use a
    seed other than the committed set's (0) to get pairs the committed files do not hold.
    Answers alternate A/B; categories follow `PERSON_SHARE`. Only the split's own photos are
    used, so a stream over "train" never leaks val/test photos.
    """
    people = [p.name for p in photos.catalogue(split, "person")]
    scenes = [p.name for p in photos.catalogue(split, "scene")]
    index = start
    while True:
        rng = np.random.default_rng([seed, _SPLIT_INDEX[split], index, 1])
        person = bool(rng.random() < PERSON_SHARE) and bool(people)
        names = people if person or not scenes else scenes
        plan = {"id": f"{'p' if person else 's'}_{split}_stream_{index:06d}",
                "photo": names[int(rng.integers(len(names)))], "answer": "AB"[index % 2], "index": index}
        yield make_sample(plan, split, seed)
        index += 1


def _save_jpeg(img: np.ndarray, path: Path) -> None:
    with storage.atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=True)


def _image_refs(pid: str) -> list[str]:
    return [f"images/{pid}_merged_c0.jpg", f"images/{pid}_merged_c1.jpg"]


def build_demo(out: str | Path | None = None, seed: int = 0, sizes: dict[str, int] | None = None,
               progress: bool = True, resume: bool = True) -> dict:
    """Build the demo set into `out` (default ``paths.DEMO_DIR``); returns the counts.

    An interrupted build resumes: finished pairs are kept in ``meta/.{split}.partial.jsonl``
    and skipped (they are deterministic), unless `resume` is False. Images of pairs no longer
    in the plan are removed at the end, so the folder matches the plan exactly.
    """
    out = Path(out) if out else paths.DEMO_DIR
    sizes = sizes or SPLIT_SIZES
    start = time.time()
    photos.verify_library()  # every photo present and unchanged, before anything is written
    all_ids: set[str] = set()
    counts: dict = {}
    for split in SPLITS:
        plan = plan_split(split, sizes[split], seed)
        partial = out / "meta" / f".{split}.partial.jsonl"
        done: dict[str, dict] = {}
        if resume and partial.exists():
            for row in storage.read_resumable_jsonl(partial):
                if row.get("seed") == seed and all((out / r).exists() for r in _image_refs(row["meta"]["id"])):
                    done[row["meta"]["id"]] = row
        elif partial.exists():
            partial.unlink()
        rows = []
        for p in progress_bar(plan, desc=f"demo {split}", disable=not progress):
            all_ids.add(p["id"])
            if p["id"] in done and done[p["id"]].get("plan") == p:  # same plan: same answer, photo and seed
                rows.append(done[p["id"]])
                continue
            s = make_sample(p, split, seed)
            c0_ref, c1_ref = _image_refs(s.id)
            _save_jpeg(s.c0, out / c0_ref)
            _save_jpeg(s.c1, out / c1_ref)
            row = {"seed": seed, "plan": p, "meta": s.meta, "completion": s.completion}
            storage.append_jsonl(partial, row)
            rows.append(row)
        _write_split(out, split, rows)
        partial.unlink(missing_ok=True)
        counts[split] = {**_count(rows), **laplacian_baseline(out, split)}
    for f in (out / "images").glob("*_merged_c*.jpg"):
        if f.name.rsplit("_merged_", 1)[0] not in all_ids:
            f.unlink()
    counts["seconds"] = round(time.time() - start, 1)
    storage.write_json(out / "meta" / "build.json", {"seed": seed, "counts": counts})
    write_datasheet(out, counts, seed)
    return counts


def _write_split(out: Path, split: str, rows: list[dict]) -> None:
    pairs = [make_pair(_image_refs(r["meta"]["id"]), r["completion"], shape="sft") for r in rows]
    storage.write_jsonl(out / f"{split}_sft.jsonl", [p.to_record("sft") for p in pairs])
    storage.write_jsonl(out / f"{split}_grpo.jsonl", [p.to_record("grpo") for p in pairs])
    if split == "test":
        unlabeled = [make_pair(_image_refs(r["meta"]["id"])) for r in rows]
        storage.write_jsonl(out / "test_unlabeled.jsonl", [p.to_record("test") for p in unlabeled])
    storage.write_jsonl(out / "meta" / f"{split}.jsonl", [r["meta"] for r in rows])


def _count(rows: Iterable[dict]) -> dict:
    rows = list(rows)
    metas = [r["meta"] for r in rows]
    return {
        "pairs": len(rows),
        "person": sum(m["category"] == "person" for m in metas),
        "scene": sum(m["category"] == "scene" for m in metas),
        "A": sum(m["answer"] == "A" for m in metas), "B": sum(m["answer"] == "B" for m in metas),
        "tradeoff": sum(bool(m["tradeoff"]) for m in metas),
        "photos": sorted({m["photo"] for m in metas}),
    }


def load_meta(data_dir: str | Path, split: str) -> list[dict]:
    """The metadata rows of one split of a built demo folder."""
    path = Path(data_dir) / "meta" / f"{split}.jsonl"
    if not path.exists():
        raise DataError(path, "demo metadata not found", "rebuild with `idiff data build-demo`")
    return storage.read_jsonl_rows(path)


def baseline_sharpness(rgb: np.ndarray) -> float:
    """The single-cue baseline the demo set must not be solvable by: the Laplacian variance of the
    grey image (the classic "sharper" cue, Pech-Pacheco et al., ICPR 2000), 4-neighbour kernel."""
    return laplacian_variance(to_grey(rgb), ksize=1)


def laplacian_pick(left: np.ndarray, right: np.ndarray) -> str:
    """ "A" when the left image has the larger Laplacian variance, else "B"."""
    return "A" if baseline_sharpness(left) > baseline_sharpness(right) else "B"


def laplacian_baseline(data_dir: str | Path, split: str) -> dict[str, float]:
    """Accuracy of the "sharper by Laplacian variance" pick on one split's written files, on the
    global (c0) and detail (c1) views."""
    hits = {"laplacian_global": [], "laplacian_detail": []}
    for pair in load_split(data_dir, split, require_images=True):
        v = views.load_views(pair)
        hits["laplacian_global"].append(laplacian_pick(v.global_left, v.global_right) == pair.answer)
        hits["laplacian_detail"].append(laplacian_pick(v.local_left, v.local_right) == pair.answer)
    return {k: round(float(np.mean(h)), 4) for k, h in hits.items()}


def write_datasheet(out: str | Path, counts: dict | None = None, seed: int = 0, oracle: dict | None = None) -> Path:
    """Write ``README.md`` (the datasheet, `idiff_lib.demo_data.datasheet`). `oracle` (from
    ``benchmarks/demo_oracle.py``) fills the agreement section; without it an existing section is kept."""
    return storage.write_text(Path(out) / "README.md", datasheet_text(out, counts, seed, oracle))


def datasheet_text(out: str | Path, counts: dict | None = None, seed: int = 0, oracle: dict | None = None) -> str:
    """The datasheet of the demo folder `out`, as `write_datasheet` writes it (counts default to
    ``meta/build.json``, or are recounted from ``meta/``)."""
    out = Path(out)
    readme = out / "README.md"
    old = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if counts is None:
        build = out / "meta" / "build.json"
        if build.exists():
            info = json.loads(build.read_text(encoding="utf-8"))
            counts, seed = info["counts"], info["seed"]
        else:
            counts = {s: _count({"meta": m} for m in load_meta(out, s)) for s in SPLITS}
    section = datasheet.oracle_markdown(oracle) if oracle is not None else datasheet.kept_oracle_section(old)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name != "README.md")
    per_photo: dict[str, int] = {}
    for s in SPLITS:
        if (out / "meta" / f"{s}.jsonl").exists():
            for m in load_meta(out, s):
                per_photo[m["photo"]] = per_photo.get(m["photo"], 0) + 1
    sizes = {"global_long": GLOBAL_LONG, "detail_side": DETAIL_SIDE, "work_long": WORK_LONG,
             "jpeg_quality": JPEG_QUALITY, "margin": MARGIN}
    return datasheet.render_datasheet(counts, SPLITS, seed, size, per_photo, section, sizes)
