"""Person/scene specialists and ensembles of answer-model members.

Reference: iDiff (NTIRE 2026 RAIM challenge Track 1 winner) routes each pair to a person or a
scene specialist by its content and averages the backbones' probabilities with equal weights. The
rules that combine the members' probabilities (that mean, accuracy-weighted voting, logistic
stacking) are `idiff_lib.answer.experiments.ensemblers`.

A member is anything that yields ``p_left`` (the probability that Image A is better) per pair:
a trained network with its specialists (`NetworkMember`) or the feature-based member of
`idiff_lib.answer.train.feature_member` (`FeatureMemberAdapter`). Every ensembler keeps swap
consistency: exchanging A and B in every member gives ``1 - p``. Saving and loading a run is
`idiff_lib.answer.experiments.run_store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from idiff_lib.answer.experiments.ensemblers import Ensembler
from idiff_lib.answer.model.inputs import load_items
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.model.network import PairwiseModel
from idiff_lib.answer.train.feature_member import FeatureMember
from idiff_lib.answer.train.training import load_member, predict_items
from idiff_lib.core.errors import DataError
from idiff_lib.core.ontology import CATEGORIES
from idiff_lib.data.content import detect_content
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views

# pairs -> the feature table a feature member reads (one row per pair, in the order given).
TableBuilder = Callable[[list[Pair]], pd.DataFrame]


# --------------------------------------------------------------------------- routing
def pair_category(pair: Pair, cache: dict | None = None) -> str:
    """"person" or "scene": the ``p_``/``s_`` prefix when present, else the face detector."""
    if pair.category in CATEGORIES:
        return pair.category
    key = ("category", pair.id, str(pair.source))
    if cache is not None and key in cache:
        return cache[key]
    category = detect_content(pair, image=load_views(pair).global_left, use_prefix=False).category
    if cache is not None:
        cache[key] = category
    return category


# --------------------------------------------------------------------------- members
class Member(Protocol):
    """What the ensemble needs of a member: a name and p_left per pair."""

    name: str

    def predict(self, pairs: Sequence[Pair], categories: Sequence[str], cache: dict, batch_size: int = 16) -> np.ndarray:
        """p_left per pair."""


@dataclass
class NetworkMember:
    """One backbone: a generalist and optional person/scene specialists, routed by category.

    Attributes:
        name: the member's name (the backbone key).
        models: "" -> generalist, "person"/"scene" -> specialist (each a PairwiseModel in eval mode).
        dirs: the folders the models were loaded from (relative to the run folder when saved).
    """

    name: str
    models: dict[str, PairwiseModel]
    dirs: dict[str, str] = field(default_factory=dict)

    def route(self, category: str) -> PairwiseModel:
        """The specialist of `category`, or the generalist when there is none."""
        return self.models.get(category) or self.models[""]

    def predict(self, pairs: Sequence[Pair], categories: Sequence[str], cache: dict, batch_size: int = 16) -> np.ndarray:
        """p_left per pair, each pair scored by the model of its category."""
        out = np.zeros(len(pairs))
        for key, model in self.models.items():
            idx = [i for i, c in enumerate(categories) if (key == c) or (key == "" and c not in self.models)]
            if not idx:
                continue
            items = load_items([pairs[i] for i in idx], model.cfg, cache=cache, desc=f"{self.name} views")
            out[idx] = predict_items(model, items, batch_size=batch_size, desc=f"{self.name}{'/' + key if key else ''}")
        return out


class FeatureMemberAdapter:
    """A `FeatureMember` (``fit(table, labels)``, ``predict_proba(table)``) as an ensemble member.

    Args:
        member: the fitted feature member.
        table_fn: builds its feature table from pairs; the table's row order is the order given.
        name: the member's name in the ensemble.
        table_name: the name a saved run records for `table_fn` (see `run_store.feature_table_builder`).
    """

    def __init__(self, member: FeatureMember, table_fn: TableBuilder, name: str = "features",
                 table_name: str = "feature_table"):
        self.member, self.table_fn, self.name, self.table_name = member, table_fn, name, table_name

    def predict(self, pairs: Sequence[Pair], categories: Sequence[str], cache: dict, batch_size: int = 16) -> np.ndarray:
        """p_left per pair, from the member's feature table of the pairs."""
        return np.asarray(self.member.predict_proba(self.table_fn(list(pairs))), dtype=float).reshape(-1)


# --------------------------------------------------------------------------- the ensemble
@dataclass
class Ensemble:
    """Members and the rule that combines them."""

    members: list[NetworkMember | FeatureMemberAdapter]
    ensembler: Ensembler
    run_dir: Path | None = None

    @property
    def names(self) -> list[str]:
        """The members' names, in column order."""
        return [m.name for m in self.members]

    def member_probs(self, pairs: Sequence[Pair], cache: dict | None = None,
                     batch_size: int = 16) -> tuple[np.ndarray, list[str]]:
        """(n_pairs, n_members) p_left and each pair's routed category."""
        cache = {} if cache is None else cache
        categories = [pair_category(p, cache) for p in pairs]
        probs = np.column_stack([m.predict(pairs, categories, cache, batch_size) for m in self.members]) \
            if pairs else np.zeros((0, len(self.members)))
        return probs, categories


def predict_rows(ens: Ensemble, pairs: Sequence[Pair], batch_size: int = 16, skip_bad: bool = False,
                 cache: dict | None = None) -> list[dict[str, Any]]:
    """One row per pair: id, answer (A/B), p_left, category, members {name: p_left}, label when known.

    Args:
        skip_bad: pairs whose images cannot be read get a row with ``error`` instead of stopping.

    Raises:
        DataError: for the first unreadable pair (naming its file and line) unless `skip_bad`.
    """
    cache = {} if cache is None else cache
    good, bad = [], []
    for pair in pairs:
        try:
            load_items([pair], _first_cfg(ens), cache=cache)
            good.append(pair)
        except DataError as err:
            if not skip_bad:
                raise
            bad.append({"id": pair.id, "answer": None, "p_left": None, "category": pair.category, "line": pair.line,
                        "error": str(err)})
    probs, categories = ens.member_probs(good, cache, batch_size)
    p = ens.ensembler.predict(probs) if len(good) else np.zeros(0)
    rows = {r["id"]: r for r in bad}
    for i, pair in enumerate(good):
        row = {"id": pair.id, "answer": "A" if p[i] > 0.5 else "B", "p_left": float(p[i]), "category": categories[i],
               "members": {n: float(probs[i, j]) for j, n in enumerate(ens.names)}}
        if pair.answer is not None:
            row["label"] = pair.answer
        rows[pair.id] = row
    return [rows[p.id] for p in pairs]


def _first_cfg(ens: Ensemble) -> MemberConfig:
    for m in ens.members:
        if isinstance(m, NetworkMember):
            return next(iter(m.models.values())).cfg
    return MemberConfig(name="views", backbone="resnet10t")


def network_member(name: str, dirs: dict[str, str | Path], device: str | None = None) -> NetworkMember:
    """A NetworkMember loaded from member folders ("" generalist, "person"/"scene" specialists)."""
    return NetworkMember(name, {k: load_member(v, device=device)[1] for k, v in dirs.items()},
                         {k: str(v) for k, v in dirs.items()})

