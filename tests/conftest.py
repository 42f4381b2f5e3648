"""Shared fixtures: small RAIM-layout pairs made from scikit-image's sample photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from skimage.transform import resize

from idiff_lib.core import paths
from idiff_lib.data.pairs import SYSTEM_PROMPT, USER_PROMPT, format_completion


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
