"""Bad data given to the readers: pairs JSONL files, their image paths and the images themselves.

The CLI-level tests run ``idiff`` as a user would (a subprocess) and check the exit code, that the
message names the file / line / parameter, that no traceback reaches stderr and that no existing
file changed. The rest check the library functions the commands share.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import sft_line, write_merged_pair
from idiff_lib.data import views
from idiff_lib.data.pairs import format_completion, parse_completion, read_pairs
from idiff_lib.scoring import rewards

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def _idiff(*args, cwd=None, env=None):
    """Run ``idiff ARGS`` in a subprocess (the environment, PYTHONPATH included, passes through)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "idiff_lib.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=600)


def _snapshot(*folders):
    return {p: p.read_bytes() for f in folders for p in sorted(Path(f).rglob("*")) if p.is_file()}


def _refused(res, *needles, code=2):
    assert res.returncode == code, res.stderr + res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert str(needle) in res.stderr + res.stdout, (needle, res.stderr, res.stdout)


def _folder(root: Path, photos, n: int = 2) -> Path:
    """root/pairs.jsonl with `n` good labelled merged pairs; returns the JSONL path."""
    names = ("astronaut", "coffee", "chelsea")
    lines = [sft_line(write_merged_pair(root, f"p_{i:03d}", photos[names[i % 3]], photos[names[(i + 1) % 3]]),
                      "AB"[i % 2]) for i in range(n)]
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header says width x height (the pixels are never decoded by the size check)."""
    Image.new("RGB", (4, 4), (90, 90, 90)).save(path)
    raw = bytearray(path.read_bytes())
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    return path


# 1. High-bit-depth images ------------------------------------------------------------------------

def test_16bit_grey_png_is_scaled_not_white(tmp_path):
    grey16 = (np.linspace(0, 65535, 64 * 96).reshape(64, 96)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "I;16"
    rgb = views.load_rgb(tmp_path / "g.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 96, 3)
    expected = np.round(grey16 / 257).astype(np.uint8)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert rgb.min() == 0 and rgb.max() == 255 and 120 < rgb.mean() < 135  # a ramp, not all white


def test_16bit_rgb_png_from_opencv_is_scaled(tmp_path):
    rng = np.random.default_rng(0)
    rgb16 = rng.integers(0, 65536, (32, 48, 3), dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "c.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    rgb = views.load_rgb(tmp_path / "c.png")
    assert np.abs(rgb.astype(int) - rgb16.astype(int) / 257).max() <= 1.0


def test_float_image_is_refused_with_the_file(tmp_path):
    Image.fromarray(np.ones((8, 8), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(views.DataError, match=r"f.tiff.*'F'"):
        views.load_rgb(tmp_path / "f.tiff")


def test_data_check_reads_a_16bit_pair(tmp_path):
    a = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    (tmp_path / "images").mkdir()
    Image.fromarray(np.concatenate([a, a[::-1]], axis=1)).save(tmp_path / "images/p_000_merged_c0.png")
    Image.fromarray(np.concatenate([a[:32, :32], a[:32, :32]], axis=1)).save(tmp_path / "images/p_000_merged_c1.png")
    (tmp_path / "t.jsonl").write_text(json.dumps(sft_line(["images/p_000_merged_c0.png",
                                                           "images/p_000_merged_c1.png"], "A")) + "\n")
    res = _idiff("data", "check", tmp_path / "t.jsonl")
    assert res.returncode == 0 and "1 good pair(s), 0 bad" in res.stdout, res.stderr + res.stdout
    (pair,) = read_pairs(tmp_path / "t.jsonl")
    assert views.load_views(pair).global_left.mean() < 200  # before: every pixel 255


# 2-7. Bad data at the command line ----------------------------------------------------------------

def _huge_image(root: Path, width: int, height: int) -> tuple[Path, list[str]]:
    jsonl = _folder(root, {"astronaut": np.zeros((64, 64, 3), np.uint8) + 40,
                           "coffee": np.zeros((64, 64, 3), np.uint8) + 200,
                           "chelsea": np.zeros((64, 64, 3), np.uint8) + 120}, n=2)
    big = _png_claiming(root / "images" / "p_001_merged_c0.png", width, height)
    lines = jsonl.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["images"][0] = "images/p_001_merged_c0.png"
    lines[1] = json.dumps(rec)
    jsonl.write_text("\n".join(lines) + "\n")
    return jsonl, [big.name, "line 2"]


@pytest.mark.parametrize("width, height, env, needle", [
    (20000, 10000, {}, "too large"),                                # over Pillow's bomb guard (179 MP)
    (12000, 10000, {}, "over the limit of 100,000,000"),            # over MAX_IMAGE_PIXELS
    (64, 64, {"IDIFF_MAX_IMAGE_PIXELS": "1000"}, "over the limit of 1,000"),  # a lowered limit
])
def test_image_over_the_size_limit_is_a_data_error(tmp_path, width, height, env, needle):
    jsonl, names = _huge_image(tmp_path, width, height)
    before = _snapshot(tmp_path)
    res = _idiff("data", "check", jsonl, env=env)
    _refused(res, needle, *names, "IDIFF_MAX_IMAGE_PIXELS")
    res = _idiff("data", "check", jsonl, "--skip-bad", env=env)
    _refused(res, needle, *names, code=1)
    assert _snapshot(tmp_path) == before


def test_size_limit_in_process(tmp_path, monkeypatch):
    _png_claiming(tmp_path / "x.png", 300, 300)
    monkeypatch.setattr(views, "MAX_IMAGE_PIXELS", 300 * 300 - 1)
    with pytest.raises(views.DataError, match=r"x.png is 300 x 300 = 90,000 pixels, over the limit of 89,999"):
        views.load_rgb(tmp_path / "x.png")


def _bad_data_cases(root: Path, photos) -> dict[str, tuple[list, list[str]]]:
    """name -> (idiff arguments, what the message must name); the files are written under `root`."""
    jsonl = _folder(root, photos, n=2)
    good = [json.loads(line) for line in jsonl.read_text().splitlines()]
    cases: dict[str, tuple[list, list[str]]] = {}

    def write(name: str, records: list[dict]) -> Path:
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path

    two = dict(good[1], messages=good[1]["messages"][:2] + [
        {"role": "assistant", "content": format_completion("Global Overall: B is better.", "B") + "<answer>A</answer>"}])
    f = write("two_answers", [good[0], two])
    cases["two answers in a reference: data check"] = (["data", "check", f], [f, "line 2", "2 <answer> tags"])
    cases["two answers in a reference: score"] = (["score", "--pred", jsonl, "--ref", f, "--out", root / "sc",
                                                   "--no-semantic"], [f, "line 2", "2 <answer> tags"])
    absolute = dict(good[1], images=[str((root / good[1]["images"][0]).resolve()), good[1]["images"][1]])
    f = write("absolute", [good[0], absolute])
    cases["absolute image path"] = (["data", "check", f], [f, "line 2", "absolute path", "--allow-outside-root"])
    climbing = dict(good[1], images=["images/../../" + root.name + "/" + good[1]["images"][0], good[1]["images"][1]])
    f = write("climbing", [good[0], climbing])
    cases["image path climbing out with .."] = (["data", "check", f], [f, "line 2", "'..'", "--allow-outside-root"])
    empty = root / "empty.jsonl"
    empty.write_text("\n")
    cases["empty file: data check"] = (["data", "check", empty], [empty, "empty"])
    cases["empty file: score --ref"] = (["score", "--pred", jsonl, "--ref", empty, "--out", root / "sc",
                                         "--no-semantic"],
                                        [empty, "empty"])
    out = root / "existing_predictions.jsonl"
    out.write_text('{"id": "keep me"}\n')
    cases["empty file: answer predict"] = (["answer", "predict", "--run", root / "no_run", "--data", empty,
                                            "--out", out], [empty, "empty"])
    spec = root / "run" / "02_train_answer_model" / "ensemble.json"  # export checks that it exists first
    spec.parent.mkdir(parents=True)
    spec.write_text("{}")
    cases["empty file: export"] = (["export", "--run", root / "run", "--data", empty, "--out", out, "--writer",
                                    "template"], [empty, "empty"])
    f = write("layout", [good[0], dict(good[1], layout="side-by-side")])
    cases["unknown layout"] = (["data", "check", f], [f, "line 2", "'side-by-side'", "'merged', 'separate'"])
    for i, name in enumerate(("A", "B")):
        img = photos["astronaut"] if name == "A" else photos["coffee"][:, :96]
        Image.fromarray(img).save(root / "images" / f"shot_{name}.png")
    f = write("aspect", [good[0], dict(good[1], images=["images/shot_A.png", "images/shot_B.png"])])
    cases["separate pair of two aspect ratios"] = (["data", "check", f], [f, "line 2", "128 x 128", "96 x 128"])
    missing = dict(good[1], images=[good[1]["images"][0], "images/p_001_missing_c1.jpg"])
    bad_json = root / "every_bad.jsonl"
    bad_json.write_text(json.dumps(good[0]) + "\n{not json\n" + json.dumps(missing) + "\n")
    cases["data check reports every bad sample"] = (["data", "check", bad_json],
                                                    [bad_json, "line 2", "malformed JSON", "line 3", "image not found",
                                                     "2 bad sample(s)"])
    return cases


CASES = ["two answers in a reference: data check", "two answers in a reference: score", "absolute image path",
         "image path climbing out with ..", "empty file: data check", "empty file: score --ref",
         "empty file: answer predict", "empty file: export", "unknown layout",
         "separate pair of two aspect ratios", "data check reports every bad sample"]


@pytest.mark.parametrize("case", CASES)
def test_bad_data_is_a_clear_error_and_nothing_changes(tmp_path, photos, case):
    args, needles = _bad_data_cases(tmp_path, photos)[case]
    before = _snapshot(tmp_path)
    res = _idiff(*args)
    _refused(res, *needles)
    assert _snapshot(tmp_path) == before


# 3. One answer rule ------------------------------------------------------------------------------

def test_one_answer_rule_for_reader_scorer_and_reward():
    text = "<thinking>x</thinking><answer>A</answer><answer>B</answer>"
    parsed = parse_completion(text)
    assert parsed.answer == rewards.baseline_letter(text) == "A"
    assert "2 <answer> tags" in rewards.format_check(text)
    for single in ("<thinking>x</thinking><answer>A</answer>", "<thinking>x</thinking>\n<answer> b </answer>"):
        assert parse_completion(single).answer == rewards.baseline_letter(single)
        assert rewards.accuracy_reward(single, "<answer>A</answer>") == float(parse_completion(single).answer == "A")


# 4. Image path resolution ------------------------------------------------------------------------

def test_image_paths_resolve_in_a_bounded_number_of_parent_folders(tmp_path, monkeypatch):
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret/x.png").write_bytes(b"x")
    deep = tmp_path / "a/b/c"
    deep.mkdir(parents=True)
    (deep / "t.jsonl").write_text(json.dumps({"images": ["secret/x.png", "secret/y.png"]}) + "\n")
    # three folders up: no longer found, whether the JSONL path is absolute or relative
    (pair,) = read_pairs(deep / "t.jsonl")
    assert pair.images[0] is None
    monkeypatch.chdir(tmp_path / "a")
    (pair,) = read_pairs("b/c/t.jsonl")
    assert pair.images[0] is None
    # two folders up (the RAIM files' data/1536/images/... from data/raim_piqa/): found either way
    (deep / "t.jsonl").rename(tmp_path / "a/b/t.jsonl")
    (pair,) = read_pairs(tmp_path / "a/b/t.jsonl")
    assert pair.images[0] == tmp_path / "secret/x.png"
    (pair,) = read_pairs("b/t.jsonl")
    assert pair.images[0] is not None and pair.images[0].resolve() == (tmp_path / "secret/x.png").resolve()


@pytest.mark.parametrize("flag, env", [(["--allow-outside-root"], {}), ([], {"IDIFF_ALLOW_OUTSIDE_ROOT": "1"})])
def test_allow_outside_root_accepts_an_absolute_path(tmp_path, photos, flag, env):
    jsonl = _folder(tmp_path, photos, n=1)
    rec = json.loads(jsonl.read_text())
    rec["images"] = [str((tmp_path / r).resolve()) for r in rec["images"]]
    jsonl.write_text(json.dumps(rec) + "\n")
    res = _idiff("data", "check", jsonl, *flag, env=env)
    assert res.returncode == 0 and "1 good pair(s), 0 bad" in res.stdout, res.stderr + res.stdout


# 5. Separator detection --------------------------------------------------------------------------

def test_flat_bordered_halves_split_at_the_midline(photos):
    def bordered(img, value):
        out = np.full((img.shape[0] + 80, img.shape[1] + 80, 3), value, np.uint8)
        out[40:-40, 40:-40] = img
        return out

    a, b = bordered(photos["astronaut"], 230), bordered(photos["coffee"], 230)  # a studio backdrop
    merged = np.concatenate([a, b], axis=1)
    assert views.find_separator(merged) is not None  # the flat borders form a band at the middle
    left, right = views.split_merged(merged)
    assert np.array_equal(left, a) and np.array_equal(right, b)


def test_demo_images_split_at_the_midline():
    """The demo is built with A and B meeting at the midline (no separator): every image splits there.

    (The rule before the centred-band fix took any flat band for a separator: on the v2 demo it
    split 7 images off the midline, e.g. at a dark stage edge.)"""
    images = sorted((DEMO / "images").glob("*_merged_c*.jpg"))
    assert len(images) >= 100
    for path in images:
        img = views.load_rgb(path)
        w = img.shape[1]
        left, right = views.split_merged(img)
        assert np.array_equal(left, img[:, : w // 2]) and np.array_equal(right, img[:, w // 2:]), path


# 6-7. Reading: BOM, empty file --------------------------------------------------------------------

def test_utf8_bom_is_accepted(tmp_path, photos):
    jsonl = _folder(tmp_path, photos, n=2)
    jsonl.write_bytes(b"\xef\xbb\xbf" + jsonl.read_bytes())
    assert [p.id for p in read_pairs(jsonl)] == ["p_000", "p_001"]


def test_empty_file_is_a_data_error_in_the_reader(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(views.DataError, match=r"e.jsonl: the file is empty"):
        read_pairs(tmp_path / "e.jsonl")


def test_malformed_json_message_has_no_doubled_word(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"images": ["a.png", "b\n')
    with pytest.raises(views.DataError) as err:
        read_pairs(tmp_path / "t.jsonl")
    assert "line 1" in str(err.value) and "at at" not in str(err.value) and "(column" in str(err.value)


def test_data_folder_without_val_is_refused_before_the_chain_runs(tmp_path, photos):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        _folder(data, photos, n=2).rename(data / f"{split}_sft.jsonl")
    before = _snapshot(tmp_path)
    res = _idiff("run", "--profile", "tiny", "--data", data, "--out", tmp_path / "run")
    _refused(res, data, "no val_sft.jsonl", "picks each network's best epoch", "--only 01")
    assert _snapshot(tmp_path) == before and not (tmp_path / "run").exists()


def test_answer_predict_skip_bad_reports_an_oversized_image(tmp_path):
    """An image over the size limit is one bad sample: a row with the error, the others predicted."""

    from answer_fixtures import bare_member, make_pairs_file
    from idiff_lib.answer.model import inputs
    from idiff_lib.answer.experiments import ensemble, ensemblers, run_store
    from idiff_lib.answer.train import training
    from idiff_lib.core import layout

    pf = make_pairs_file(tmp_path / "d", n=4, side=64)
    cfg = bare_member(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40, epochs=1,
                      batch_size=4, hidden=8)
    step = layout.step_dir(tmp_path / "run", layout.ANSWER_STEP)
    training.train_member(cfg, inputs.load_items(read_pairs(pf), cfg), (), step / "members" / "m", progress=False)
    run_store.save_answer_run(step, [ensemble.network_member("m", {"": step / "members" / "m"})],
                              ensemblers.make_ensembler("mean"))
    second = read_pairs(pf)[1]
    _png_claiming(second.image_path(0), 20000, 10000)
    res = _idiff("answer", "predict", "--run", tmp_path / "run", "--data", pf, "--out", tmp_path / "p.jsonl",
                 "--skip-bad", "--device", "cpu")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr + res.stdout
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and [r["answer"] is None for r in rows] == [False, True, False, False]
    assert "line 2" in rows[1]["error"] and "too large" in rows[1]["error"]
