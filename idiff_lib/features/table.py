"""The cached feature table: one row of quality features per pair, built, saved and loaded.

`build_feature_table` measures each pair once per source (hand-crafted ``cv`` features of
`idiff_lib.features.cv`, no-reference ``iqa`` scores of `idiff_lib.features.iqa`, aligned
``pair`` cues of `idiff_lib.features.pair_cues`) and caches every pair's values by the content
hash of its image files, so a rerun computes nothing again and an interrupted build resumes.
Columns are named ``source.feature.view.side`` (see `idiff_lib.features.cv`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.core.paths import CACHE_DIR
from idiff_lib.core.progress import progress_bar
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views
from idiff_lib.features import iqa, pair_cues
from idiff_lib.features.cue_text import CUE_NAMES, TABLE_SOURCES, load_thresholds, save_thresholds
from idiff_lib.features.cv import CV_VERSION, pair_cue_row, pair_cv_features

SOURCES = ("cv", "iqa", "pair")
# The Answer member reads the aligned pair-difference cues of `idiff_lib.features.pair_cues`: on the embedded
# benchmark they beat the nine per-image features (0.72 vs 0.54 on test with synthetic training
# pairs), and IQA columns would depend on which weights are installed.
MEMBER_SOURCES = ("pair",)


def pair_key(pair: Pair) -> str:
    """Content hash of a pair: sha256 of both image files and the layout/category that change the features."""
    digests = [storage.file_sha256(pair.image_path(i)) for i in range(2)]
    return storage.text_sha256("|".join(digests + [pair.layout, str(pair.category)]))


def _check_sources(features: Sequence[str]) -> tuple[str, ...]:
    if isinstance(features, str):
        features = (features,)
    for f in features:
        if f not in SOURCES:
            raise ParameterError(f"unknown feature source {f!r} (features=); choose from {SOURCES}.{suggest(f, SOURCES)}")
    return tuple(features)


@dataclass
class _Cache:
    """Per-pair JSON entries under ``cache_dir/<namespace>/<key[:2]>/<key>.json``."""

    root: Path | None

    def path(self, namespace: str, key: str) -> Path | None:
        return None if self.root is None else self.root / namespace / key[:2] / f"{key}.json"

    def get(self, namespace: str, key: str) -> dict | None:
        path = self.path(namespace, key)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # a cache entry is written atomically, but a user may have edited it
            return None

    def put(self, namespace: str, key: str, values: dict) -> None:
        path = self.path(namespace, key)
        if path is not None:
            storage.write_json(path, values)


def build_feature_table(
    pairs: Iterable[Pair],
    features: Sequence[str] = TABLE_SOURCES,
    cache_dir: str | Path | None = CACHE_DIR / "features",
    out_path: str | Path | None = None,
    iqa_metrics: Sequence[str] | None = None,
    weights_dir: str | Path | None = None,
    progress: bool = True,
    strict_iqa: bool = False,
) -> pd.DataFrame:
    """One row per pair of quality features, cached by image content hash.

    Args:
        pairs: the pairs (their order is the row order).
        features: the sources, any of ``"cv"`` (hand-crafted), ``"iqa"`` (pyiqa models) and
            ``"pair"`` (the aligned pair-difference cues of `idiff_lib.features.pair_cues`).
        cache_dir: folder of per-pair cache entries (None: no cache), each written atomically as
            soon as the pair is measured: a rerun on the same image files computes nothing again,
            and an interrupted build resumes where it stopped.
        out_path: when given, the table is written there as Parquet, atomically.
        iqa_metrics: pyiqa metric names (default `iqa.DEFAULT_METRICS`); metrics whose
            weights are missing are left out with one warning each.
        weights_dir: where to look for pyiqa/CLIP weights (default: torch hub's cache).
        progress: show a tqdm bar.
        strict_iqa: a requested IQA metric that cannot run stops the build (OfflineError) instead
            of being left out with a warning.

    Returns:
        A DataFrame indexed by pair id; bad samples keep their row with ``meta.ok = 0`` and NaN
        features, and are listed in ``table.attrs["problems"]`` (and warned about);
        ``table.attrs["iqa_metrics"]`` names the IQA metrics that ran.
    """
    features = _check_sources(features)
    pairs = list(pairs)
    cache = _Cache(Path(cache_dir) if cache_dir is not None else None)
    scorer = iqa.IQAScorer(iqa_metrics, weights_dir=weights_dir, strict=strict_iqa) if "iqa" in features else None
    rows, problems = [], {}
    for pair in progress_bar(pairs, desc="features", unit="pair", disable=not progress):
        row: dict[str, Any] = {"id": pair.id, "meta.ok": 1.0, "meta.person": float(pair.category == "person")}
        try:
            key = pair_key(pair)
            views = None
            if "cv" in features:
                values = cache.get(CV_VERSION, key)
                if values is None:
                    views = load_views(pair)
                    values = pair_cv_features(pair, views)
                    cache.put(CV_VERSION, key, values)
                row.update(values)
            if "pair" in features:
                values = cache.get(pair_cues.VERSION, key)
                if values is None:
                    views = views if views is not None else load_views(pair)
                    values = pair_cue_row(pair, views)
                    cache.put(pair_cues.VERSION, key, values)
                row.update(values)
            if scorer is not None:
                for metric in scorer.metrics:
                    namespace = f"iqa-{metric}-{iqa.IQA_VERSION}"
                    values = cache.get(namespace, key)
                    if values is None:
                        views = views if views is not None else load_views(pair)
                        values = scorer.pair_scores(pair, views, metric)
                        cache.put(namespace, key, values)
                    row.update(values)
        except DataError as err:
            problems[pair.id] = str(err)
            warnings.warn(f"feature table: bad sample reported, row kept with meta.ok=0: {err}", stacklevel=2)
            row = {"id": pair.id, "meta.ok": 0.0, "meta.person": row["meta.person"]}
        rows.append(row)
    table = pd.DataFrame(rows, columns=_column_order(rows)).set_index("id") if rows else pd.DataFrame(
        index=pd.Index([], name="id"))
    table = table.astype(float)
    table.attrs["problems"] = problems
    table.attrs["sources"] = list(features)
    table.attrs["iqa_metrics"] = list(scorer.metrics) if scorer is not None else []  # the ones that ran
    if out_path is not None:
        save_table(table, out_path)
    return table


def _column_order(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {"id": None, "meta.ok": None, "meta.person": None}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


def feature_table(pairs: Sequence[Pair], features: Sequence[str] = MEMBER_SOURCES,
                  cache_dir: str | Path | None = CACHE_DIR / "features", progress: bool = True) -> pd.DataFrame:
    """The Answer member's input: the A − B difference columns of `build_feature_table`.

    The ensemble (`idiff_lib.ensemble.FeatureMemberAdapter`) calls this with the pairs only, so its
    permutation importances are over the difference columns the member uses.
    """
    table = build_feature_table(pairs, features=features, cache_dir=cache_dir, progress=progress)
    return member_columns(table)


def member_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The ``*.diff`` columns of a feature table, in a fixed order (a bad row's are NaN)."""
    cols = sorted(c for c in table.columns if c.endswith(".diff"))
    out = table[cols].copy()
    out.attrs = dict(table.attrs)
    return out


def save_table(table: pd.DataFrame, path: str | Path, thresholds: Mapping[str, Any] | None = None) -> Path:
    """Write the table as Parquet atomically, with its companions beside it.

    ``<name>.problems.json`` holds the bad-sample report; ``<name>.thresholds.json`` the cue
    thresholds (`calibrate_thresholds` on the training table), when given or in ``table.attrs``.
    """
    path = Path(path)
    clean = table.copy()
    clean.attrs = {}
    with storage.atomic_path(path) as tmp:
        clean.to_parquet(tmp, engine="pyarrow")
    storage.write_json(path.with_suffix(".problems.json"), table.attrs.get("problems", {}))
    thresholds = thresholds if thresholds is not None else table.attrs.get("thresholds")
    if thresholds is not None:
        save_thresholds(thresholds, path.with_suffix(".thresholds.json"))
    return path


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by `save_table`; its problems (and thresholds, if saved) go in ``attrs``."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "feature table not found", "build it with features.build_feature_table(..., out_path=)")
    table = pd.read_parquet(path)
    problems = path.with_suffix(".problems.json")
    table.attrs["problems"] = json.loads(problems.read_text(encoding="utf-8")) if problems.exists() else {}
    thresholds = path.with_suffix(".thresholds.json")
    if thresholds.exists():
        table.attrs["thresholds"] = load_thresholds(thresholds)
    return table


_VIEW_WORDS = {"global": "global view", "local": "detail crops", "global_face": "face", "global_rest": "background"}


def cue_glossary(columns: Iterable[str]) -> pd.DataFrame:
    """What each feature column means, one line each: column, cue, view, meaning (in the given order).

    Reads ``source.cue.view.side`` names (`idiff_lib.features.cv`): pair cues are explained by
    `pair_cues.GLOSSARY`, hand-crafted CV features by `cue_text.CUE_NAMES`; a name neither knows
    keeps an empty meaning rather than a guessed one.
    """
    rows = []
    for column in columns:
        parts = str(column).split(".")  # a cue name may hold a dot itself (y0_energy_share_0.5)
        source, cue, view = (parts[0], ".".join(parts[1:-2]), parts[-2]) if len(parts) >= 4 else (parts[0], "", "")
        if source == "pair":
            meaning = pair_cues.GLOSSARY.get(cue, "")
        elif cue in CUE_NAMES:
            label, more = CUE_NAMES[cue]
            meaning = f"{label} A − B (higher: {more})"
        else:
            meaning = ""
        rows.append({"column": column, "cue": cue, "view": _VIEW_WORDS.get(view, view), "meaning": meaning})
    return pd.DataFrame(rows, columns=["column", "cue", "view", "meaning"])
