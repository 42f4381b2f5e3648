"""Shared fixtures: small RAIM-layout pairs made from scikit-image's sample photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from idiff_lib.core import determinism  # loads nothing else

# Each pytest-xdist worker gets its share of the cores, set before torch, numpy or OpenCV load: two
# workers at 2 threads each on 2 cores made OpenMP spin against itself (a tiny training step ran 25x
# slower; issue 26's note). The chain kernels the tests start read the same count (``IDIFF_THREADS``,
# and ``--param threads`` in `tiny_chain_cmd`). Without xdist: all cores.
TEST_THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
os.environ.update({var: str(TEST_THREADS) for var in (determinism.THREADS_ENV, *determinism.THREAD_VARS)})

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402  alias: "data" names the data folders here
from skimage.transform import resize  # noqa: E402

from idiff_lib.core import paths  # noqa: E402
from idiff_lib.data.pairs import SYSTEM_PROMPT, USER_PROMPT, format_completion  # noqa: E402


def _small(img: np.ndarray, side: int = 128) -> np.ndarray:
    return (resize(img, (side, side), anti_aliasing=True) * 255).astype(np.uint8)


def write_merged_pair(folder: Path, pid: str, a: np.ndarray, b: np.ndarray) -> list[str]:
    """Write c0 (A|B) and c1 (centre crops A|B) JPEGs; return their names relative to `folder`."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    h, w = a.shape[:2]
    crop = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    names = []
    for tag, (left, right) in (("c0", (a, b)), ("c1", (a[crop], b[crop]))):
        name = f"images/{pid}_merged_{tag}.jpg"
        Image.fromarray(np.concatenate([left, right], axis=1)).save(folder / name, quality=95)
        names.append(name)
    return names


def sft_line(images: list[str], answer: str | None) -> dict:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT}]
    if answer:
        text = format_completion(
            [f"Face Sharpness: Image {answer} ({'Left' if answer == 'A' else 'Right'}) is sharper.",
             f"Global Overall: Image {answer} is better."], answer)
        messages.append({"role": "assistant", "content": text})
    return {"images": images, "messages": messages}


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {"astronaut": _small(skdata.astronaut()), "coffee": _small(skdata.coffee()),
            "chelsea": _small(skdata.chelsea())}


@pytest.fixture
def pair_folder(tmp_path: Path, photos) -> Path:
    """A folder with pairs.jsonl: two person pairs and one scene pair, B blurred or A blurred."""
    rng = np.random.default_rng(0)
    lines = []
    for pid, photo, answer in (("p_000", "astronaut", "A"), ("p_001", "chelsea", "B"), ("s_000", "coffee", "A")):
        clean = photos[photo]
        noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
        a, b = (clean, noisy) if answer == "A" else (noisy, clean)
        lines.append(sft_line(write_merged_pair(tmp_path, pid, a, b), answer))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return tmp_path


@pytest.fixture(scope="session")
def raim_dir() -> Path:
    folder = paths.raim_dir()
    if folder is None:
        pytest.skip("../shared/raim_piqa (the public RAIM-PIQA rationales) is not present")
    return folder


@pytest.fixture
def toy_chain(tmp_path: Path, monkeypatch) -> Path:
    """test_pipeline's two toy notebooks, a data folder with one file, a private hash cache; the chain's root folder.

    The code fingerprint is fixed, so a library edit made while the tests run does not rerun the toy steps.
    """
    from test_pipeline import write_toy_chain

    from idiff_lib.chain import runner

    monkeypatch.setattr(runner, "_code_fingerprint", lambda: "code")
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")
    write_toy_chain(tmp_path)
    (tmp_path / "data" / "train_sft.jsonl").write_text("abc\n")
    return tmp_path


TINY_CHAIN_OVERRIDES = {"threads": TEST_THREADS}  # the same in a resume (`runner.run_chain(overrides=...)`)


@pytest.fixture(autouse=True)
def _worker_threads():
    """After each test, torch and the thread variables are back at the worker's share (a test that
    applies a step's ``threads`` in process would otherwise leave it for every later test)."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != TEST_THREADS:
        torch.set_num_threads(TEST_THREADS)
    os.environ.update({var: str(TEST_THREADS) for var in (determinism.THREADS_ENV, *determinism.THREAD_VARS)})


def tiny_chain_cmd(out: Path, figs: Path) -> list[str]:
    """``idiff run`` of the whole chain at the tiny profile into `out`, its figures into `figs`."""
    return [sys.executable, "-m", "idiff_lib.cli", "run", "--profile", "tiny", "--out", str(out), "--fig-dir", str(figs),
            *(arg for key, value in TINY_CHAIN_OVERRIDES.items() for arg in ("--param", f"{key}={value}"))]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole notebook chain at the tiny profile, run once per test session; its run folder.

    About 2 min on 2 cores. Every test that needs an executed chain reads this one run (never writes
    to it): the chain tests, the executed-notebook checks that replaced nbval's second run of the
    notebooks, the export. Under pytest-xdist the workers share it: the first to ask runs it under a
    file lock, the others wait and read. Its figures are in ``run.parent / "figures"``.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    base = shared / "tiny_chain"
    run, outcome = base / "run", base / "outcome.txt"  # "ok", or why the chain failed (it runs once either way)
    with FileLock(str(shared / "tiny_chain.lock")):
        if not outcome.exists():
            res = subprocess.run(tiny_chain_cmd(run, base / "figures"), capture_output=True, text=True, check=False)
            failed = f"the tiny chain failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
            outcome.write_text("ok" if res.returncode == 0 else failed, encoding="utf-8")
    if outcome.read_text(encoding="utf-8") != "ok":
        pytest.fail(outcome.read_text(encoding="utf-8"), pytrace=False)
    return run


# A test that took this long or more in the last measured full run (tests/test_durations.json,
# written by benchmarks/suite_durations.py) is marked slow: make test-fast leaves it out.
SLOW_SECONDS = 1.0


def measured_durations() -> dict[str, float]:
    """Node id -> seconds of the last measured full run (empty when the file is absent)."""
    path = Path(__file__).with_name("test_durations.json")
    return json.loads(path.read_text(encoding="utf-8"))["tests"] if path.exists() else {}


def pytest_collection_modifyitems(config, items):
    """Mark the tests measured slow; the tiny chain's tests first (under xdist their worker starts the longest group at once)."""
    measured = measured_durations()
    for item in items:
        if measured.get(item.nodeid, 0.0) >= SLOW_SECONDS:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)
