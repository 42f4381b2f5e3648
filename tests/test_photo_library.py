"""The photo library's rules: manifest validation, the source -> JPEG rule, the split assignment,
adding candidates, and build-demo stopping before it writes when a photo is missing or changed."""

from __future__ import annotations

import io
import json
import random
import shutil

import numpy as np
import pytest
from PIL import Image

from idiff_lib.demo_data import build, collect, library, photos
from idiff_lib.core.errors import DataError, ParameterError


def _row(name: str, category: str = "scene", group: str | None = None, people=(), **kw) -> dict:
    row = {"name": name, "file": f"{name}.jpg", "category": category, "group": group or name,
           "people": list(people), "origin": "pypi", "package": "pkg", "version": "1.0", "path": f"d/{name}.png",
           "crop": None, "licence": "CC0", "licence_ok": True, "credit": "someone", "source_sha256": "0" * 64,
           "sha256": "0" * 64, "width": 100, "height": 80,
           "faces": [[10, 10, 20, 20]] if category == "person" else [], "faces_checked": True, "subject": "",
           "split": "train"}
    return row | kw


def _write(folder, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / library.MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("change, match", [
    ({"licence": ""}, "no licence"),
    ({"licence": "  "}, "no licence"),
    ({"licence_ok": False}, "licence_ok false"),
    ({"split": "dev"}, "split 'dev'"),
    ({"category": "animal"}, "category 'animal'"),
    ({"faces": [[90, 10, 20, 20]]}, "inside the 100x80 JPEG"),
])
def test_manifest_refuses_bad_rows_naming_the_line(tmp_path, change, match):
    _write(tmp_path, [_row("ok"), _row("bad", **change)])
    with pytest.raises(DataError, match=match) as err:
        library.read_manifest(tmp_path)
    assert err.value.line == 2 and "'bad'" in str(err.value)


def test_manifest_refuses_a_person_without_faces_and_a_repeated_name(tmp_path):
    _write(tmp_path, [_row("p", "person", people=["x"], faces=[])])
    with pytest.raises(DataError, match="face boxes and people"):
        library.read_manifest(tmp_path)
    _write(tmp_path, [_row("a"), _row("a")])
    with pytest.raises(DataError, match="also on line 1"):
        library.read_manifest(tmp_path)


def _image(seed: int = 0, size=(1300, 700)) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 50, size[0] // 50, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize(size, Image.BILINEAR).save(buf, format="PNG")
    return buf.getvalue()


def test_processing_rule_is_deterministic_and_downscales_to_1024():
    src = _image()
    out = library.process_photo(src)
    assert out == library.process_photo(src)
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "JPEG" and im.size == (1024, round(700 * 1024 / 1300))
    with Image.open(io.BytesIO(library.process_photo(src, [100, 50, 400, 300]))) as im:
        assert im.size == (400, 300)  # small enough: cropped, not resized
    assert library.process_photo(src, [100, 50, 400, 300]) != library.process_photo(src, [101, 50, 400, 300])


def test_processing_rule_applies_the_exif_orientation():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (300, 200), (200, 10, 10)).save(buf, format="JPEG", exif=exif)
    with Image.open(io.BytesIO(library.process_photo(buf.getvalue()))) as im:
        assert im.size == (200, 300)


def _many_rows() -> list[dict]:
    rows = []
    for i in range(12):  # 12 people; one group photo shows persons 0 and 1 (two crops)
        rows.append(_row(f"portrait{i}", "person", people=[f"person{i}"]))
    rows += [_row("group_a", "person", group="crowd", people=["person0", "person1"]),
             _row("group_b", "person", group="crowd", people=["person1"]),
             _row("portrait0_again", "person", people=["person0"])]
    rows += [_row(f"scene{i}", group=f"g{i // 2}") for i in range(10)]
    return rows


def test_split_assignment_keeps_groups_and_people_together_at_60_20_20():
    rows = _many_rows()
    splits = library.assign_splits(rows)
    assert set(splits) == {r["name"] for r in rows}
    for key in ("group", "people"):
        where: dict[str, set[str]] = {}
        for r in rows:
            for v in ([r["group"]] if key == "group" else r["people"]):
                where.setdefault(v, set()).add(splits[r["name"]])
        assert all(len(s) == 1 for s in where.values()), key
    assert splits["group_a"] == splits["portrait0"] == splits["portrait1"] == splits["portrait0_again"]
    for category in ("person", "scene"):
        names = [r["name"] for r in rows if r["category"] == category]
        share = {s: sum(splits[n] == s for n in names) / len(names) for s in library.SPLIT_SHARES}
        assert abs(share["train"] - 0.6) <= 0.2 and share["val"] > 0 and share["test"] > 0, (category, share)


def test_split_assignment_ignores_row_order_and_needs_three_portrait_groups():
    rows = _many_rows()
    first = library.assign_splits(rows)
    for seed in range(3):
        random.Random(seed).shuffle(rows)
        assert library.assign_splits(rows) == first
    with pytest.raises(DataError, match="portrait"):
        library.assign_splits([_row("p0", "person", people=["a"]), _row("p1", "person", people=["b"]), _row("s0")])


def _library_from_candidates(tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    cands = []
    for i, (name, cat) in enumerate([("face0", "person"), ("face1", "person"), ("face2", "person"),
                                     ("view0", "scene"), ("view1", "scene")]):
        jpeg = library.process_photo(_image(i, (600, 500)))
        (stage / f"{name}.jpg").write_bytes(jpeg)
        cands.append(_row(name, cat, people=[name] if cat == "person" else [], width=600, height=500,
                          sha256=library.sha256_bytes(jpeg), source_sha256=f"{i:064d}"))
    cands.append(_row("unclear", licence_ok=False))
    storage_rows = "".join(json.dumps({k: v for k, v in r.items() if k != "split"}) + "\n" for r in cands)
    (stage / "candidates.jsonl").write_text(storage_rows)
    lib = tmp_path / "photos"
    lib.mkdir()
    report = collect.add_candidates(lib, stage / "candidates.jsonl")
    return lib, stage, report


def test_add_candidates_skips_unclear_licences_and_duplicates_and_assigns_splits(tmp_path):
    lib, stage, report = _library_from_candidates(tmp_path)
    rows = library.read_manifest(lib)
    assert sorted(r["name"] for r in rows) == ["face0", "face1", "face2", "view0", "view1"]
    assert any(line.startswith("unclear: skipped") for line in report)
    assert not library.check_files(rows, lib)
    again = collect.add_candidates(lib, stage / "candidates.jsonl")
    assert all("which is kept" in line for line in again if not line.startswith("unclear"))
    assert library.read_manifest(lib) == rows


def _point_photos_at(monkeypatch, folder):
    monkeypatch.setattr(photos, "library_dir", lambda: folder)
    photos._specs.cache_clear()
    photos.load_photo.cache_clear()


@pytest.mark.parametrize("damage, match", [("missing", "is missing"), ("changed", "differs from the manifest")])
def test_build_demo_names_a_missing_or_changed_photo_and_writes_nothing(tmp_path, monkeypatch, damage, match):
    folder = tmp_path / "photos"
    shutil.copytree(photos.library_dir(), folder)
    victims = [p for p in photos.catalogue("test")][:2]
    for spec in victims:
        if damage == "missing":
            (folder / spec.file).unlink()
        else:
            (folder / spec.file).write_bytes(b"changed")
    _point_photos_at(monkeypatch, folder)
    out = tmp_path / "demo"
    try:
        with pytest.raises(DataError, match=match) as err:
            build.build_demo(out, sizes={"train": 2, "val": 2, "test": 2}, progress=False)
        assert all(spec.name in str(err.value) for spec in victims)
        assert not out.exists()
    finally:
        photos.load_photo.cache_clear()  # monkeypatch restores library_dir; _specs is keyed by folder


def test_manifest_refuses_a_row_without_the_crop_field(tmp_path):
    row = _row("nocrop")
    del row["crop"]
    _write(tmp_path, [row])
    with pytest.raises(DataError, match="missing field"):
        library.read_manifest(tmp_path)


def test_collect_compares_with_the_package_in_the_cache_and_writes_atomically(tmp_path):
    # The package is already unpacked in the cache, so nothing is downloaded.
    lib, _, _ = _library_from_candidates(tmp_path)
    cache = tmp_path / "cache"
    rows = library.read_manifest(lib)
    for i, row in enumerate(rows):
        src = cache / "pypi" / "pkg-1.0" / row["path"]
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(_image(i, (600, 500)) if row["name"] != "view1" else _image(99, (600, 500)))
    for row in rows:  # the candidates' source hashes were made up: take the real ones, keep the JPEGs
        row["source_sha256"] = library.sha256_bytes((cache / "pypi" / "pkg-1.0" / row["path"]).read_bytes())
    library.write_manifest(lib, rows)
    report = collect.collect(lib, cache)
    assert sum("match" in line and "DIFFERENT" not in line for line in report) == 4
    assert [line.split(":")[0] for line in report if "DIFFERENT" in line] == ["view1"]
    assert library.read_manifest(lib) == rows  # without --write nothing changes
    collect.collect(lib, cache, write=True)
    assert not library.check_files(library.read_manifest(lib), lib)
    assert all("DIFFERENT" not in line for line in collect.collect(lib, cache))
    with pytest.raises(ParameterError, match="view2"):
        collect.collect(lib, cache, only={"view2"})


def test_cli_collect_photos_add(tmp_path, capsys):
    from idiff_lib import cli

    lib, stage, _ = _library_from_candidates(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    assert cli.main(["data", "collect-photos", "--library", str(other), "--add", str(stage / "candidates.jsonl")]) == 0
    assert "face0: added" in capsys.readouterr().out
    assert library.read_manifest(other) == library.read_manifest(lib)


def _rcc(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A version-1 Qt resource bundle with one folder ``a`` holding `files` (name -> (bytes, zlib?))."""
    import struct
    import zlib

    names, name_off = b"", {}
    for n in ["a", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    data, nodes = b"", [struct.pack(">IHII", 0, 2, 1, 1), struct.pack(">IHII", name_off["a"], 2, len(files), 2)]
    for n, (raw, packed) in files.items():
        blob = struct.pack(">I", len(raw)) + zlib.compress(raw) if packed else raw
        nodes.append(struct.pack(">IHHHI", name_off[n], 1 if packed else 0, 0, 0, len(data)))
        data += struct.pack(">I", len(blob)) + blob
    tree = b"".join(nodes)
    head = 20
    return b"qres" + struct.pack(">IIII", 1, head, head + len(tree), head + len(tree) + len(data)) + tree + data + names


def test_rcc_member_reads_stored_and_zlib_files(tmp_path):
    bundle = tmp_path / "b.rcc"
    bundle.write_bytes(_rcc({"x.bin": (b"stored bytes", False), "y.bin": (b"packed " * 50, True)}))
    assert collect.rcc_member(bundle, "/a/x.bin") == b"stored bytes"
    assert collect.rcc_member(bundle, "/a/y.bin") == b"packed " * 50
    with pytest.raises(DataError, match="not in this resource bundle"):
        collect.rcc_member(bundle, "/a/z.bin")
