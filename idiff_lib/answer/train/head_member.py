"""An Answer Model member that is a head on cached frozen features (the cpu profile's members).

A `HeadMember` names a frozen backbone (timm name, ImageNet or seeded random weights), the input
it reads from the feature cache (`INPUTS`) and its trained head(s); its arrays live in one
safetensors file, its description in the run's ``ensemble.json`` (`idiff_lib.answer.experiments.run_store`).
Predicting a pair decodes its views once, looks their descriptors up in the cache (computing only
the views never seen) and applies the head. Swap consistency is exact: every input is an A - B
difference and every head is odd in it.

Inputs, the rungs of the paper's ladder on cached features:

- ``merged``: the descriptor of the merged A|B global image minus that of B|A;
- ``global``: global A - global B (the L/R split);
- ``global+local``: the global and the detail views' differences;
- ``evidence``: the per-kind defect heads' predicted A - B severities from ``global+local``
  (`idiff_lib.answer.model.heads.DefectHeads`), then a logistic verdict on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from idiff_lib.answer.model.feature_cache import FeatureCache, FrozenBackbone, PairFeatures
from idiff_lib.answer.model.heads import DefectHeads, PairHead, load_arrays, save_arrays
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.data.pairs import Pair

INPUTS = ("merged", "global", "global+local", "evidence")
HEAD_HINT = "retrain step 02 (idiff run --from 02) to rewrite the member's head file"


@dataclass(frozen=True)
class BackboneSpec:
    """Which frozen backbone a head reads: the cache's key besides the view's pixels."""

    backbone: str
    pretrained: bool = True
    seed: int = 0
    checkpoint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "pretrained": self.pretrained, "seed": self.seed,
                "checkpoint": self.checkpoint}


def feature_cache(spec: BackboneSpec, cache: dict, root: str | Path | None = None) -> FeatureCache:
    """The shared `FeatureCache` of `spec` (built once per `cache` dict: loading a backbone takes seconds)."""
    key = ("feature_cache", spec, str(root))
    if key not in cache:
        cache[key] = FeatureCache(FrozenBackbone(spec.backbone, spec.pretrained, seed=spec.seed,
                                                 checkpoint=spec.checkpoint), root)
    return cache[key]


def pair_features(spec: BackboneSpec, pairs: Sequence[Pair], cache: dict, merged: bool = False,
                  root: str | Path | None = None, desc: str = "features") -> PairFeatures:
    """Cached descriptors of `pairs` (each image decoded once per `cache` dict)."""
    views = cache.setdefault("decoded_views", {})
    return feature_cache(spec, cache, root).pairs(pairs, merged=merged, desc=desc, views=views)


def release_chunk(cache: dict) -> None:
    """Forget a chunk's decoded views and in-memory descriptors (the loaded backbones and the disk cache
    stay), so predicting a long file a chunk at a time keeps memory flat."""
    for key in list(cache):
        if isinstance(key, tuple) and key and key[0] == "feature_cache":
            cache[key].memory.clear()
        else:
            del cache[key]


def input_matrix(features: PairFeatures, kind: str) -> np.ndarray:
    """The A - B difference a head of input `kind` reads (``evidence`` reads ``global+local``)."""
    v = features.views.astype(np.float64)
    if kind == "merged":
        if features.merged is None:
            raise ParameterError("a merged head needs the merged descriptors; fix: compute them with merged=True")
        m = features.merged.astype(np.float64)
        return m[:, 0] - m[:, 1]
    if kind == "global":
        return v[:, 0] - v[:, 1]
    if kind in ("global+local", "evidence"):
        return np.hstack([v[:, 0] - v[:, 1], v[:, 2] - v[:, 3]])
    raise ParameterError(f"unknown head input {kind!r}.{suggest(kind, INPUTS)} Choose one of {', '.join(INPUTS)}.")


@dataclass
class HeadMember:
    """A frozen backbone's cached features and a trained head (see the module docstring).

    Attributes:
        name: the member's name in the ensemble.
        spec: the frozen backbone.
        input: one of `INPUTS`.
        head: the verdict head (per category when it has specialists).
        defects: the defect heads, for input ``evidence``.
        cache_root: the feature cache folder (None: the default).
    """

    name: str
    spec: BackboneSpec
    input: str
    head: PairHead
    defects: DefectHeads | None = None
    cache_root: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ParameterError(f"member {self.name}: unknown input {self.input!r}.{suggest(self.input, INPUTS)}")
        if self.input == "evidence" and self.defects is None:
            raise ParameterError(f"member {self.name}: an evidence member needs its defect heads")

    def verdict_input(self, x: np.ndarray) -> np.ndarray:
        """What the verdict head reads from the difference `x`: x itself, or the defect evidence."""
        return self.defects.evidence(x) if self.input == "evidence" else x

    def predict_matrix(self, x: np.ndarray, categories: Sequence[str]) -> np.ndarray:
        """p_left from an already built input matrix (`input_matrix`)."""
        return self.head.predict(self.verdict_input(x), categories)

    def predict(self, pairs: Sequence[Pair], categories: Sequence[str], cache: dict, batch_size: int = 16) -> np.ndarray:
        """p_left per pair (the `ensemble.Member` protocol)."""
        if not len(pairs):
            return np.zeros(0)
        feats = pair_features(self.spec, pairs, cache, merged=self.input == "merged", root=self.cache_root,
                              desc=f"{self.name} features")
        return self.predict_matrix(input_matrix(feats, self.input), categories)

    # ---------------------------------------------------------------- files
    def arrays(self) -> dict[str, np.ndarray]:
        out = self.head.arrays("head")
        if self.defects is not None:
            out["defects.coef"], out["defects.scale"] = self.defects.coef, self.defects.scale
        return out

    def save(self, path: str | Path) -> Path:
        """The member's arrays as one safetensors file (atomic)."""
        return save_arrays(path, self.arrays())

    def spec_dict(self, weights: str) -> dict[str, Any]:
        """The member's entry in ``ensemble.json`` (plain JSON: nothing is imported by name)."""
        return {"name": self.name, "kind": "head", "weights": weights, "input": self.input,
                "backbone": self.spec.to_dict(), "kinds": self.defects.kinds if self.defects else [],
                "settings": dict(self.meta)}

    @classmethod
    def load(cls, entry: dict[str, Any], path: str | Path) -> HeadMember:
        """The member an ``ensemble.json`` entry describes, its arrays read from `path`.

        Raises:
            DataError: the arrays file is missing, damaged or lacks an array the entry needs.
        """
        arrays = load_arrays(path, HEAD_HINT)
        try:
            head = PairHead.from_arrays(arrays, "head")
            defects = None
            if entry["input"] == "evidence":
                defects = DefectHeads(list(entry.get("kinds") or []), arrays["defects.coef"], arrays["defects.scale"])
        except KeyError as err:
            raise DataError(path, f"lacks the array {err.args[0]!r}", HEAD_HINT) from None
        b = entry["backbone"]
        spec = BackboneSpec(str(b["backbone"]), bool(b.get("pretrained", True)), int(b.get("seed", 0)),
                            str(b.get("checkpoint", "")))
        return cls(entry["name"], spec, entry["input"], head, defects, meta=dict(entry.get("settings") or {}))


def describe_views(spec: BackboneSpec, pair: Pair, cache: dict, root: str | Path | None = None) -> "pd.DataFrame":
    """The worked pair's four views as a frozen backbone sees them: pixels, descriptor length, and,
    per feature stage, how far the A and B descriptors lie apart (the norm of their difference)."""
    fc = feature_cache(spec, cache, root)
    feats = pair_features(spec, [pair], cache, root=root, desc="worked pair").views[0]
    v = cache["decoded_views"][pair.id]
    bounds = np.cumsum([0] + [2 * c for c in fc.extractor.channels])
    rows = []
    for k, name in enumerate(("global_left", "global_right", "local_left", "local_right")):
        img = getattr(v, name)
        row = {"view": name, "pixels (h x w)": f"{img.shape[0]} x {img.shape[1]}", "descriptor": feats[k].size}
        other = feats[k ^ 1]
        for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            row[f"|A-B| stage {fc.extractor.stages[s]}"] = round(float(np.linalg.norm(feats[k, lo:hi] - other[lo:hi])), 3)
        rows.append(row)
    return pd.DataFrame(rows)
