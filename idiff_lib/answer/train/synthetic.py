"""An unlimited stream of fresh labelled pairs rendered from the training photos.

`synthetic_factory` gives the pairwise training fresh pairs every epoch, and
`synthetic_cue_table` the feature member thousands of them, rendered by the benchmark's own
generator (`idiff_lib.demo_data.build`) or by `degrade.sample_pair` from the training photos and cut
into the four views like the data folder's.
"""

from __future__ import annotations

import concurrent.futures as cf  # alias: 'futures' would read as a value
import multiprocessing
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from idiff_lib.answer.model.inputs import Item, prepare_views
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.train.splits import Split
from idiff_lib.answer.train.training import ItemStream
from idiff_lib.answer.train.training_photos import (TrainingPhoto, catalogue_sources, decode_image, encode_image,
                                                    training_photos)
from idiff_lib.core import storage
from idiff_lib.core.progress import progress_bar
from idiff_lib.data import degrade
from idiff_lib.data.views import Views, detail_box, load_views, resize, split_merged
from idiff_lib.demo_data import build
from idiff_lib.demo_data import photos as catalogue  # alias: 'photos' names photo lists in this module
from idiff_lib.features import pair_cues

# One rendered pair: encoded merged global (c0) and detail (c1) images, the answer and the category.
SyntheticPair = tuple[bytes, bytes, str, str]


def synthetic_views(a: np.ndarray, b: np.ndarray, global_hw: tuple[int, int], local_side: int) -> Views:
    """Four views of a rendered pair: globals resized like the data's, aligned detail crops at native pixels."""
    side = min(local_side, *a.shape[:2])
    x, y, w, h = detail_box(a, b, side / min(a.shape[:2]))
    wh = (global_hw[1], global_hw[0])
    return Views(resize(a, wh), resize(b, wh), a[y:y + h, x:x + w], b[y:y + h, x:x + w])


def _benchmark_sample(name: str, rng: np.random.Generator, index: int, jpeg_quality: int) -> SyntheticPair:
    """One pair drawn exactly as `idiff_lib.demo_data.build` draws the benchmark's (crop, scale, defects, views)."""
    plan = {"id": f"syn_{index}", "photo": name, "answer": str(rng.choice(["A", "B"])), "index": index}
    sample = build.make_sample(plan, "train", int(rng.integers(2**31)))
    return encode_image(sample.c0, jpeg_quality), encode_image(sample.c1, jpeg_quality), sample.meta["answer"], sample.meta["category"]


class SyntheticSource:
    """Fresh labelled pairs rendered from the training photos: ``generate(n, rng)``.

    When the data folder's ``meta/train.jsonl`` names catalogue photos (the embedded benchmark),
    pairs are drawn by the benchmark's own generator (`idiff_lib.demo_data.build.make_sample`: crop, scale,
    defects, detail window) and stored through the same JPEG q80 round trip; otherwise
    `degrade.sample_pair` renders the stand-in photos of `training_photos` and `synthetic_views` cuts
    their views. Each pair is ``(c0 bytes, c1 bytes, answer, category)``.

    `catalogue_names` overrides which catalogue photos the benchmark's generator draws from (e.g.
    the val / test photos, for held-out pairs no training pair shares a photo with).
    """

    def __init__(self, train_split: Split, data_dir: str | Path | None = None, photos: Sequence[TrainingPhoto] | None = None,
                 jpeg_quality: int = 80, catalogue_names: Sequence[str] | None = None):
        self.jpeg_quality = jpeg_quality
        if catalogue_names is not None:
            self.names = sorted(catalogue.check_name(n).name for n in catalogue_names)
        else:
            self.names = sorted({v for v in catalogue_sources(data_dir).values() if v in catalogue.PHOTOS})
        self.photos: list[TrainingPhoto] = []
        if not self.names:
            self.photos = list(photos) if photos is not None else training_photos(train_split, data_dir)
            first = load_views(train_split.pairs[0])
            self.global_hw, self.local_side = first.global_left.shape[:2], min(first.local_left.shape[:2])

    def generate(self, n: int, rng: np.random.Generator, progress: bool = True) -> list[SyntheticPair]:
        """`n` fresh pairs drawn with `rng` (the same rng state gives the same pairs)."""
        out = []
        for k in progress_bar(range(n), desc="synthetic pairs", leave=False, disable=not progress or n < 50):
            if self.names:
                out.append(_benchmark_sample(self.names[int(rng.integers(len(self.names)))], rng, k, self.jpeg_quality))
                continue
            photo = self.photos[int(rng.integers(len(self.photos)))]
            sample = degrade.sample_pair(photo.rgb, rng, faces=photo.faces, category=photo.category, masks=photo.masks)
            v = synthetic_views(sample.a, sample.b, self.global_hw, self.local_side)
            out.append((encode_image(np.concatenate([v.global_left, v.global_right], 1), self.jpeg_quality),
                        encode_image(np.concatenate([v.local_left, v.local_right], 1), self.jpeg_quality),
                        sample.answer, photo.category))
        return out


def decoded_views(c0: bytes, c1: bytes) -> Views:
    """The four views of a generated pair's encoded merged images."""
    gl, gr = split_merged(decode_image(c0))
    ll, lr = split_merged(decode_image(c1))
    return Views(gl, gr, ll, lr)


def synthetic_factory(train_split: Split, data_dir: str | Path | None = None, photos: Sequence[TrainingPhoto] | None = None,
                      jpeg_quality: int = 80) -> Callable[[MemberConfig], ItemStream]:
    """cfg -> (n, rng) -> items: fresh labelled pairs from `SyntheticSource`, as training items.

    Draws are cached by the RNG's seed, so members trained with the same seed and epoch share one
    draw (generated once).
    """
    source = SyntheticSource(train_split, data_dir, photos, jpeg_quality)
    drawn: dict[tuple, list[SyntheticPair]] = {}

    def generate(n: int, rng: np.random.Generator) -> list[SyntheticPair]:
        key = (tuple(np.atleast_1d(rng.bit_generator.seed_seq.entropy).tolist()), n)
        if key not in drawn:
            drawn[key] = source.generate(n, rng)
        return drawn[key]

    def for_member(cfg: MemberConfig) -> ItemStream:
        split_cfg = MemberConfig(**{**cfg.to_dict(), "mode": "split"})
        n_views = 4 if cfg.mode == "split" else 2

        def draw(n: int, rng: np.random.Generator) -> list[Item]:
            items = []
            for k, (c0, c1, answer, category) in enumerate(generate(n, rng)):
                prepared = prepare_views(decoded_views(c0, c1), split_cfg)
                items.append(Item(f"syn_{k}", prepared[:n_views], float(answer == "A"), category))
            return items

        return draw

    return for_member


# --------------------------------------------------------------------------- synthetic cue table
_WORKER_SOURCE: SyntheticSource | None = None


def _cue_chunk(seed: int, index: int, size: int) -> pd.DataFrame:
    """One chunk of synthetic pairs with their pair cues (deterministic in seed and index)."""
    assert _WORKER_SOURCE is not None
    rng = np.random.default_rng([seed, index, 23])
    rows = []
    for k, (c0, c1, answer, category) in enumerate(_WORKER_SOURCE.generate(size, rng, progress=False)):
        row = pair_cues.pair_cues(decoded_views(c0, c1))
        row.update({"label": float(answer == "A"), "meta.person": float(category == "person")})
        rows.append(pd.Series(row, name=f"syn_{seed}_{index}_{k}"))
    return pd.DataFrame(rows)


def synthetic_cue_table(source: SyntheticSource, n: int, out_dir: str | Path, seed: int = 0, chunk: int = 250,
                        workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """`n` synthetic pairs' `pair_cues` columns plus ``label`` (1 = A better), for the feature member.

    Chunks of `chunk` pairs are written to ``out_dir/chunk_<seed>_<index>.parquet`` atomically as
    they finish, so an interrupted build resumes and a rerun with the same seed reads them back.
    `workers` processes share the work (the generator and the cues are single-threaded NumPy/OpenCV).
    """
    global _WORKER_SOURCE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [min(chunk, n - i) for i in range(0, n, chunk)]
    path = lambda i: out_dir / f"chunk_{pair_cues.VERSION}_{seed}_{i:04d}.parquet"  # noqa: E731
    todo = [i for i in range(len(sizes)) if not path(i).exists()]
    _WORKER_SOURCE = source
    bar = progress_bar(total=n, initial=n - sum(sizes[i] for i in todo), desc="synthetic cue pairs", unit="pair",
                       disable=not progress)

    def save(i: int, frame: pd.DataFrame) -> None:
        with storage.atomic_path(path(i)) as tmp:
            frame.to_parquet(tmp)
        bar.update(sizes[i])

    try:
        if workers > 1 and len(todo) > 1 and "fork" in multiprocessing.get_all_start_methods():
            with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(_cue_chunk, seed, i, sizes[i]): i for i in todo}
                for fut in cf.as_completed(futures):
                    save(futures[fut], fut.result())
        else:
            for i in todo:
                save(i, _cue_chunk(seed, i, sizes[i]))
    finally:
        bar.close()
        _WORKER_SOURCE = None
    frames = [pd.read_parquet(path(i)) for i in range(len(sizes))]
    return pd.concat(frames) if frames else pd.DataFrame()
