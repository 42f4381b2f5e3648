"""The demo benchmark: the committed data/demo set, its determinism, and the generator on a tiny build."""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import pytest
from PIL import Image

from idiff_lib import cli
from idiff_lib.demo_data import build
from idiff_lib.core import ontology, paths
from idiff_lib.demo_data import photos
from idiff_lib.data.pairs import read_pairs
from idiff_lib.data.views import find_separator, load_views

DEMO = paths.DEMO_DIR
needs_demo = pytest.mark.skipif(not (DEMO / "train_sft.jsonl").exists(), reason="data/demo is not built")
_WINNER_RE = r"Image {x}\S*(?: \((?:Left|Right)\))? (?:is better overall|is preferred|delivers the better)"


def _jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=build.JPEG_QUALITY, subsampling=2, optimize=True)
    return buf.getvalue()


def test_plan_is_balanced_three_quarters_person_and_uses_only_the_splits_photos():
    for split, n in (("train", 40), ("val", 12), ("test", 13)):
        plan = build.plan_split(split, n, seed=0)
        assert len(plan) == n and len({p["id"] for p in plan}) == n
        answers = [p["answer"] for p in plan]
        assert abs(answers.count("A") - answers.count("B")) <= 1
        persons = sum(p["id"].startswith("p_") for p in plan)
        assert persons == round(n * build.PERSON_SHARE)
        assert {p["photo"] for p in plan} <= {s.name for s in photos.catalogue(split)}
    assert build.plan_split("val", 12, 0) == build.plan_split("val", 12, 0)
    assert build.plan_split("val", 12, 0) != build.plan_split("val", 12, 1)


def test_make_sample_is_deterministic_and_consistent():
    plan = build.plan_split("val", 8, seed=3)
    for p in (plan[0], plan[-1]):
        first = build.make_sample(p, "val", 3)
        again = build.make_sample(p, "val", 3)
        assert np.array_equal(first.c0, again.c0) and np.array_equal(first.c1, again.c1)
        assert first.completion == again.completion
        assert first.meta["answer"] == p["answer"]
        assert first.c0.shape[1] % 2 == 0 and first.c1.shape[:2] == (build.DETAIL_SIDE, 2 * build.DETAIL_SIDE)
        assert find_separator(first.c0) is None and find_separator(first.c1) is None
        assert max(first.c0.shape[0], first.c0.shape[1] // 2) == build.GLOBAL_LONG


def test_comparisons_follow_the_defects():
    from idiff_lib.data import degrade

    img = np.zeros((64, 64, 3), np.uint8)
    ps = degrade.PairSample(img, img, [degrade.Defect("luma_noise", 0.9, "face")],
                            [degrade.Defect("defocus", 0.8, "global")], [], 0.0, 0.0, "A", 0.5, True, "person")
    comps = {(c.region, c.attribute): c for c in build.comparisons(ps, "person")}
    assert comps[("Face", "Noise")].verdict == "B" and comps[("Face", "Noise")].cause == "luma_noise"
    assert comps[("Global", "Sharpness")].verdict == "A" and comps[("Global", "Sharpness")].cause == "defocus"
    assert comps[("Face", "Sharpness")].verdict == "A"  # a global blur shows on the face too


def test_tiny_build_through_the_cli_is_complete_and_resumable(tmp_path):
    out = tmp_path / "demo"
    assert cli.main(["data", "build-demo", "--out", str(out), "--sizes", "4,2,2", "--seed", "5"]) == 0
    for name in ("train_sft", "val_sft", "test_sft", "train_grpo", "val_grpo", "test_grpo", "test_unlabeled"):
        assert (out / f"{name}.jsonl").exists()
    assert len(read_pairs(out / "train_sft.jsonl", require_images=True)) == 4
    unlabeled = read_pairs(out / "test_unlabeled.jsonl")
    assert not any(p.labelled for p in unlabeled)
    grpo = read_pairs(out / "val_grpo.jsonl")
    assert all(p.shape == "grpo" and p.answer for p in grpo)
    images = {f.name: f.read_bytes() for f in (out / "images").iterdir()}
    assert len(images) == 16
    assert "## Quality model" in (out / "README.md").read_text()
    # A second build reuses nothing stale and rewrites identical files.
    build.build_demo(out, seed=5, sizes={"train": 4, "val": 2, "test": 2}, progress=False, resume=False)
    assert {f.name: f.read_bytes() for f in (out / "images").iterdir()} == images
    # A smaller plan removes the images it no longer needs.
    build.build_demo(out, seed=5, sizes={"train": 2, "val": 2, "test": 2}, progress=False)
    assert len(list((out / "images").iterdir())) == 12


def test_bad_sizes_are_refused(tmp_path):
    assert cli.main(["data", "build-demo", "--out", str(tmp_path), "--sizes", "4,2"]) == 2


def test_laplacian_pick_prefers_the_sharper_side():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    flat = np.full_like(sharp, 128)
    assert build.laplacian_pick(sharp, flat) == "A" and build.laplacian_pick(flat, sharp) == "B"


# --------------------------------------------------------------------------------------------
# The committed set
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def committed() -> dict:
    if not (DEMO / "train_sft.jsonl").exists():
        pytest.skip("data/demo is not built")
    return {s: (read_pairs(DEMO / f"{s}_sft.jsonl", require_images=True), build.load_meta(DEMO, s))
            for s in build.SPLITS}


@needs_demo
def test_committed_counts_balance_and_photo_separation(committed):
    photo_split: dict[str, set] = {}
    for split, (pairs, metas) in committed.items():
        assert len(pairs) >= build.SPLIT_SIZES[split] and len(metas) == len(pairs)
        answers = [p.answer for p in pairs]
        assert abs(answers.count("A") - answers.count("B")) <= 1
        scene = sum(p.category == "scene" for p in pairs) / len(pairs)
        assert 0.2 <= scene <= 0.3
        assert sum(bool(m["tradeoff"]) for m in metas) > len(metas) / 4
        for m in metas:
            photo_split.setdefault(m["photo"], set()).add(split)
    assert all(len(s) == 1 for s in photo_split.values()), photo_split
    size = sum(f.stat().st_size for folder in (DEMO, photos.library_dir()) for f in folder.rglob("*") if f.is_file())
    assert size <= 45e6  # data/ in all: the demo set and the photo library it is made from


@needs_demo
def test_every_committed_file_reads_and_splits(committed):
    for name in ("train_grpo", "val_grpo", "test_grpo", "test_unlabeled"):
        assert read_pairs(DEMO / f"{name}.jsonl", require_images=True)
    for pairs, _ in committed.values():
        for p in pairs:
            v = load_views(p)
            assert v.global_left.shape == v.global_right.shape
            assert v.local_left.shape == (build.DETAIL_SIDE, build.DETAIL_SIDE, 3)


@needs_demo
def test_committed_rationales_parse_and_agree_with_the_answer(committed):
    for pairs, metas in committed.values():
        by_id = {m["id"]: m for m in metas}
        for p in pairs:
            assert not p.problems, (p.id, p.problems)
            assert p.answer == by_id[p.id]["answer"]
            lines = [ln for ln in p.thinking.splitlines() if ln.strip()]
            assert 4 <= len(lines) <= 7, (p.id, lines)
            assert lines[-1].startswith(ontology.SUMMARY_HEADING + ":")
            assert re.search(_WINNER_RE.format(x=p.answer), lines[-1]), lines[-1]
            regions = ontology.REFERENCE_PERSON_REGIONS if p.category == "person" else ontology.REFERENCE_SCENE_REGIONS
            for ln in lines[:-1]:
                region, attribute = ln.split(":", 1)[0].split(" ", 1)
                assert region in regions and attribute in ontology.REFERENCE_ATTRIBUTES, ln


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


@needs_demo
def test_a_few_committed_pairs_rebuild_to_the_same_pixels(committed):
    """The generator rebuilds committed pairs: the same JPEG bytes, or, where the installed JPEG
    encoder is another version than the one the set was written with (Pillow 13 writes other bytes
    for the same pixels), the same decoded pixels to one grey level on all but 0.1% of values."""
    for split in ("train", "test"):
        plan = build.plan_split(split, len(committed[split][0]), seed=0)
        metas = {m["id"]: m for m in committed[split][1]}
        for p in (plan[0], plan[len(plan) // 2], plan[-1]):
            if photos.load_photo(p["photo"]).sha256 != metas[p["id"]]["photo_sha256"]:
                pytest.skip(f"the installed copy of photo {p['photo']} differs from the one the set was built from")
            sample = build.make_sample(p, split, 0)
            if paths.raim_dir() is not None:  # the wording is mined from the public rationales
                committed_pair = next(c for c in committed[split][0] if c.id == p["id"])
                assert sample.completion == committed_pair.completion
            for tag, img in (("c0", sample.c0), ("c1", sample.c1)):
                committed_bytes = (DEMO / "images" / f"{p['id']}_merged_{tag}.jpg").read_bytes()
                rebuilt = _jpeg_bytes(img)
                if hashlib.sha256(rebuilt).hexdigest() == hashlib.sha256(committed_bytes).hexdigest():
                    continue
                diff = np.abs(_decoded(rebuilt) - _decoded(committed_bytes))
                assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (p["id"], tag, int(diff.max()), float((diff > 0).mean()))


@needs_demo
def test_datasheet_reports_the_checks():
    text = (DEMO / "README.md").read_text()
    for needle in ("## Counts", "## Quality model", "## Source photos", "licence", "Laplacian"):
        assert needle in text
    for spec in photos.CATALOGUE:
        assert spec.name in text


@needs_demo
def test_datasheet_regenerates_byte_identical():
    # The datasheet is the template idiff_lib/build/datasheet.md filled in from the build's records.
    assert build.datasheet_text(DEMO) == (DEMO / "README.md").read_text(encoding="utf-8")


def test_datasheet_fills_every_field_and_keeps_the_oracle_section(tmp_path):
    counts = {s: {"pairs": 2, "person": 1, "scene": 1, "A": 1, "B": 1, "tradeoff": 0, "photos": ["x"]}
              for s in ("train", "val", "test")}
    (tmp_path / "README.md").write_text("old\n<!-- oracle:begin -->\nkept section\n<!-- oracle:end -->\n")
    text = build.datasheet_text(tmp_path, counts, seed=7)
    assert "$" not in text and "Seed 7;" in text and "| val | 2 | 1 | 1 | 1 | 1 | 0 | - | x |" in text
    assert "<!-- oracle:begin -->\nkept section\n<!-- oracle:end -->\n" in text


def test_stream_yields_fresh_pairs_from_the_splits_own_photos():
    import itertools

    samples = list(itertools.islice(build.stream("val", seed=9), 3))
    assert [s.meta["answer"] for s in samples] == ["A", "B", "A"]
    assert {s.meta["photo"] for s in samples} <= {p.name for p in photos.catalogue("val")}
    assert len({s.id for s in samples}) == 3
