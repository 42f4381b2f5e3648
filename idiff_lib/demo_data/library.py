"""The photo library (``data/photos``): downscaled JPEGs and the manifest that says where each came from.

Each row of ``manifest.jsonl`` records one photo: its file, category, the group of photos it must
share a split with (crops of one original, photos of one person), the people it shows, the package
and path it was extracted from, its crop, licence, hashes, face boxes and split. `read_manifest`
refuses a row without a licence or with ``licence_ok`` false; `check_files` finds every missing or
changed JPEG before anything is built. `process_photo` is the one rule from a source file to its
JPEG, and `assign_splits` the one rule from groups and people to train/val/test.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from PIL import Image, ImageOps

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError
from idiff_lib.core.ontology import CATEGORIES

MANIFEST = "manifest.jsonl"
LONG_SIDE = 1024  # the library's JPEGs are at most this long: enough for 768 px work crops
LIBRARY_JPEG_QUALITY = 90  # high quality: the demo's own degradations must dominate the source's
SPLIT_SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}
SUBJECTS = ("", "Building", "Vegetation")
ORIGINS = ("pypi", "debian")
FIELD_ORDER = ("name", "file", "category", "group", "people", "origin", "package", "version", "path", "crop",
               "licence", "licence_ok", "credit", "source_sha256", "sha256", "width", "height", "faces",
               "faces_checked", "subject")
REQUIRED = {"name": str, "file": str, "category": str, "group": str, "people": list, "origin": str,
            "package": str, "version": str, "path": str, "licence": str, "licence_ok": bool, "credit": str,
            "source_sha256": str, "sha256": str, "width": int, "height": int, "faces": list,
            "faces_checked": bool, "subject": str}


def process_photo(source: str | Path | bytes, crop: Iterable[int] | None = None) -> bytes:
    """The library JPEG of a source image: EXIF orientation applied, RGB, optional crop (x, y, w, h) in
    the original's pixels, long side shrunk to `LONG_SIDE` (Lanczos), JPEG quality 90, optimised."""
    src = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(src) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    if crop is not None:
        x, y, w, h = (int(v) for v in crop)
        img = img.crop((x, y, x + w, y + h))
    long = max(img.size)
    if long > LONG_SIDE:
        s = LONG_SIDE / long
        img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=LIBRARY_JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_row(row: Mapping, where: str | Path, line: int | None = None, need_split: bool = True) -> dict:
    """One manifest row, checked; a DataError naming the file and line otherwise."""
    def bad(problem: str, fix: str) -> DataError:
        return DataError(where, f"photo {row.get('name', '?')!r}: {problem}", fix, line=line)

    if not isinstance(row, Mapping):
        raise DataError(where, "a manifest row must be a JSON object", "write one object per line", line=line)
    missing = [k for k in (*REQUIRED, "crop") if k not in row]
    if missing:
        raise bad(f"missing field(s) {', '.join(missing)}", "add them (see idiff_lib.demo_data.library.REQUIRED)")
    for key, kind in REQUIRED.items():
        if not isinstance(row[key], kind) or (kind is int and isinstance(row[key], bool)):
            raise bad(f"field {key!r} must be a {kind.__name__}, got {row[key]!r}", f"correct {key!r}")
    if not row["licence"].strip():
        raise bad("no licence", "state the photo's licence, or remove the row: only redistributable photos are kept")
    if not row["licence_ok"]:
        raise bad(f"licence {row['licence']!r} is marked as not allowing redistribution (licence_ok false)",
                  "remove the row; the library keeps only photos whose licence allows redistribution")
    for key, allowed in (("category", CATEGORIES), ("origin", ORIGINS), ("subject", SUBJECTS)):
        if row[key] not in allowed:
            raise bad(f"{key} {row[key]!r} is not one of {allowed}", f"set {key} to one of {allowed}")
    if need_split and row.get("split") not in SPLIT_SHARES:
        raise bad(f"split {row.get('split')!r} is not train, val or test",
                  "assign splits with `idiff data collect-photos --add` (library.assign_splits)")
    if row["crop"] is not None and (not isinstance(row["crop"], list) or len(row["crop"]) != 4):
        raise bad(f"crop must be null or [x, y, w, h], got {row['crop']!r}", "correct the crop")
    for box in row["faces"]:
        if (not isinstance(box, list) or len(box) != 4 or box[2] <= 0 or box[3] <= 0 or box[0] < 0 or box[1] < 0
                or box[0] + box[2] > row["width"] or box[1] + box[3] > row["height"]):
            raise bad(f"face box {box!r} is not [x, y, w, h] inside the {row['width']}x{row['height']} JPEG",
                      "give the face boxes in the written JPEG's pixels")
    if row["category"] == "person" and not (row["faces"] and row["people"]):
        raise bad("a person photo needs its face boxes and people", "add faces and people")
    return dict(row)


def read_manifest(folder: str | Path, need_split: bool = True) -> list[dict]:
    """The rows of ``<folder>/manifest.jsonl``, each checked by `validate_row`; names are unique."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise DataError(path, "the photo library's manifest is missing",
                        "restore data/photos from git, or set IDIFF_PHOTOS_DIR to a library folder")
    rows, seen = [], {}
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(path, f"not valid JSON ({err.msg})", "fix the line", line=line) from None
        row = validate_row(obj, path, line, need_split)
        if row["name"] in seen:
            raise DataError(path, f"photo name {row['name']!r} is also on line {seen[row['name']]}",
                            "give every photo its own name", line=line)
        seen[row["name"]] = line
        rows.append(row)
    return rows


def check_files(rows: Iterable[Mapping], folder: str | Path) -> list[str]:
    """One line per photo whose JPEG is missing or differs from the manifest's SHA-256 (empty: all fine)."""
    problems = []
    for row in rows:
        path = Path(folder) / row["file"]
        if not path.is_file():
            problems.append(f"{row['name']}: {path} is missing")
        elif storage.file_sha256(path) != row["sha256"]:
            problems.append(f"{row['name']}: {path} differs from the manifest (SHA-256 {row['sha256'][:12]}...)")
    return problems


def verified_rows(folder: str | Path) -> list[dict]:
    """The manifest's rows when every photo file is there and unchanged; else one DataError naming each bad one."""
    rows = read_manifest(folder)
    problems = check_files(rows, folder)
    if problems:
        raise DataError(Path(folder) / MANIFEST, f"{len(problems)} photo(s) missing or changed: " + "; ".join(problems),
                        "restore data/photos from git, or re-extract with `idiff data collect-photos --write`")
    return rows


def write_manifest(folder: str | Path, rows: Iterable[Mapping]) -> Path:
    """Write the manifest atomically, rows sorted by name, keys in a fixed order."""
    order = [*FIELD_ORDER, "split"]
    out = [{k: row[k] for k in order if k in row} | {k: v for k, v in row.items() if k not in order}
           for row in sorted(rows, key=lambda r: r["name"])]
    return storage.write_jsonl(Path(folder) / MANIFEST, out)


def _components(rows: list[Mapping]) -> list[list[Mapping]]:
    """Rows joined when they share a group or a person (union-find), so each component goes to one split."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row in rows:
        keys = [f"group:{row['group']}"] + [f"person:{p}" for p in row["people"]]
        for k in keys[1:]:
            parent[find(k)] = find(keys[0])
    comps: dict[str, list[Mapping]] = {}
    for row in rows:
        comps.setdefault(find(f"group:{row['group']}"), []).append(row)
    return list(comps.values())


def _tally(rows: Iterable[Mapping]) -> dict[str, int]:
    """What a split must get its share of: photos of each category, and distinct people."""
    rows = list(rows)
    return {**{c: sum(r["category"] == c for r in rows) for c in CATEGORIES},
            "people": len({p for r in rows for p in r["people"]})}


def assign_splits(rows: Iterable[Mapping], shares: Mapping[str, float] = SPLIT_SHARES) -> dict[str, str]:
    """name -> split: whole groups (and everyone who shares a person with them) go to one split.

    Components (`_components`) are placed largest first, ties broken by a hash of their names (so
    the result does not depend on row order), each into the split that is furthest below its
    share (``shares``) of the photos of each category and of the distinct people, relative to
    target. With three or more portrait components every split gets a portrait; a DataError
    says so otherwise.
    """
    rows = list(rows)
    comps = _components(rows)
    comps.sort(key=lambda c: (-len(c), sha256_bytes("\n".join(sorted(r["name"] for r in c)).encode())))
    total = _tally(rows)
    target = {(s, k): share * total[k] for s, share in shares.items() for k in total}
    have = {key: 0 for key in target}
    out: dict[str, str] = {}
    for comp in comps:
        n = _tally(comp)

        def gap(split: str) -> float:
            return sum(n[k] * (target[split, k] - have[split, k]) / max(target[split, k], 1e-9) for k in n if n[k])

        split = max(shares, key=gap)  # ties go to the first split in `shares` order
        for k in n:
            have[split, k] += n[k]
        out.update({r["name"]: split for r in comp})
    lacking = [s for s in shares if total["person"] and not have[s, "person"]]
    if lacking:
        raise DataError(None, f"too few separate portrait groups to give every split a portrait "
                              f"(none in {', '.join(lacking)})", "add portraits of more people")
    return out
