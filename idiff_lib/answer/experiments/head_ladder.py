"""Notebook 02's cpu work, cache first: every rung of the paper's ladder as a head on frozen features.

Each view goes through each frozen ImageNet backbone once (`idiff_lib.answer.model.feature_cache`);
then every rung is a head trained in seconds on the cached descriptors
(`idiff_lib.answer.model.heads`), antisymmetric by construction:

1. ``merged``: the first backbone on the merged A|B global image;
2. ``split``: global A - global B (the L/R split);
3. ``local``: + the detail views' difference;
4. ``specialists``: + a head per category (person / scene), kept for the ensemble only where it
   wins on val;
5. ``ensemble``: every backbone's head, combined by the profile's ensembler fitted on val;
6. ``evidence``: + the defect-evidence member: per-kind severity heads (trained on the benchmark's
   ``meta``) and a verdict from their predicted A - B severities.

Beside them: the same heads on a randomly initialised backbone ("no pretraining"), and, ours
beyond the paper, the gradient-boosted feature member alone and "+ feature member". The aspect
heads (one per region x attribute comparison of the ground truth) are the Thinking Model's
evidence, saved with a loader (`idiff_lib.answer.train.aspects`).

Reference: iDiff (NTIRE 2026 RAIM challenge Track 1 winner): merged 0.578, + L/R 0.696,
+ specialists 0.775, + ensemble 0.912 on RAIM validation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.answer.model.heads import (DefectHeads, fit_aspect_heads, fit_defect_heads, fit_pair_head,
                                          log_loss)
from idiff_lib.answer.experiments import ladder
from idiff_lib.answer.experiments.ensemble import Ensemble, FeatureMemberAdapter
from idiff_lib.answer.experiments.ladder import FEATURE_ROW, PLUS_FEATURE_ROW, LadderResult, fit_feature_member, table_row
from idiff_lib.answer.experiments.run_store import save_answer_run
from idiff_lib.answer.train import aspects
from idiff_lib.answer.train.head_member import BackboneSpec, HeadMember, input_matrix, pair_features
from idiff_lib.answer.train.splits import Split
from idiff_lib.data.datasets import SPLITS
from idiff_lib.data.degrade import DEFECTS
from idiff_lib.data.meta import split_meta

DEFECT_KINDS = tuple(DEFECTS)  # the benchmark's defect kinds, the evidence heads' targets


@dataclass
class DefectTargets:
    """Per split: (n_pairs, n_kinds) A - B severity per defect kind from ``meta`` (None without meta)."""

    severity: dict[str, np.ndarray] | None
    comparisons: dict[str, list[list[dict]]] | None


def defect_targets(data_dir: str | Path | None, splits: dict[str, Split]) -> DefectTargets:
    """The defect and comparison ground truth of each split's pairs (a data folder without ``meta/``: none).

    A defect both sides share cancels in the A - B severity; a pair missing from ``meta`` gets zeros
    (no difference known) and no comparisons.
    """
    if data_dir is None:
        return DefectTargets(None, None)
    severity, comparisons = {}, {}
    for name, split in splits.items():
        meta = split_meta(data_dir, name)
        if not meta:
            return DefectTargets(None, None)
        s = np.zeros((len(split.pairs), len(DEFECT_KINDS)))
        comps = []
        for i, pair in enumerate(split.pairs):
            row = meta.get(pair.id, {})
            for side, sign in (("defects_a", 1.0), ("defects_b", -1.0)):
                for d in row.get(side, []):
                    if d.get("kind") in DEFECT_KINDS:
                        s[i, DEFECT_KINDS.index(d["kind"])] += sign * float(d.get("severity", 0.0))
            comps.append(list(row.get("comparisons", [])))
        severity[name], comparisons[name] = s, comps
    return DefectTargets(severity, comparisons)


class HeadTrainer:
    """Cached features per backbone and split, and the heads fitted on them."""

    def __init__(self, settings: AnswerSettings, splits: dict[str, Split], cache_root: str | Path | None = None):
        self.s, self.splits = settings, splits
        self.cache: dict = {}
        self.cache_root = str(cache_root) if cache_root else None
        self.features: dict[tuple[BackboneSpec, str], Any] = {}
        self.seconds: dict[str, float] = {}

    @property
    def start(self) -> str:
        """Table A's "start" of the head rungs: frozen ImageNet or frozen random weights."""
        return "imagenet (frozen)" if self.s.pretrained else "random (frozen)"

    def spec(self, backbone: str, pretrained: bool | None = None) -> BackboneSpec:
        pre = self.s.pretrained if pretrained is None else pretrained
        return BackboneSpec(backbone, pre, self.s.seed, str(self.s.checkpoints.get(backbone, "")) if pre else "")

    def feats(self, spec: BackboneSpec, split: str, merged: bool = False):
        key = (spec, split)
        if key not in self.features or (merged and self.features[key].merged is None):
            t0 = time.monotonic()
            self.features[key] = pair_features(spec, self.splits[split].pairs, self.cache, merged=merged,
                                               root=self.cache_root, desc=f"{split} views")
            name = f"{spec.backbone}{'' if spec.pretrained else ' (random)'} features"
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - t0, 1)
        return self.features[key]

    def inputs(self, spec: BackboneSpec, kind: str) -> dict[str, np.ndarray]:
        return {sp: input_matrix(self.feats(spec, sp, merged=kind == "merged"), kind) for sp in SPLITS}

    def labels(self) -> dict[str, np.ndarray]:
        return {sp: self.splits[sp].labels for sp in SPLITS}

    def categories(self) -> dict[str, list[str]]:
        return {sp: self.splits[sp].categories for sp in SPLITS}

    def member(self, name: str, spec: BackboneSpec, kind: str, specialists: bool = False,
               defects: DefectHeads | None = None) -> HeadMember:
        """Fit one head member on train (hyper-parameters on val)."""
        x = self.inputs(spec, "global+local" if kind == "evidence" else kind)
        if defects is not None:
            x = {sp: defects.evidence(v) for sp, v in x.items()}
        head = fit_pair_head(x, self.labels(), self.categories(), specialists, self.s.seed)
        return HeadMember(name, spec, kind, head, defects, self.cache_root,
                          meta={"C": {c or "all": h.C for c, h in head.heads.items()}})

    def probs(self, member: HeadMember, split: str) -> np.ndarray:
        x = input_matrix(self.feats(member.spec, split, merged=member.input == "merged"), member.input)
        return member.predict_matrix(x, self.splits[split].categories)


def val_loss(trainer: HeadTrainer, member: HeadMember) -> float:
    return log_loss(trainer.probs(member, "val"), trainer.splits["val"].labels)


def head_swap_flip_rate(trainer: HeadTrainer, members: Sequence[HeadMember], split: str = "test") -> float:
    """Share of (pair, member) answers that flip when A and B are exchanged (the input negated)."""
    flips = []
    for m in members:
        x = input_matrix(trainer.feats(m.spec, split, merged=m.input == "merged"), m.input)
        cats = trainer.splits[split].categories
        p, q = m.predict_matrix(x, cats), m.predict_matrix(-x, cats)
        flips.append(((p > 0.5) != (q > 0.5)) | ((p == 0.5) & (q == 0.5)))
    return float(np.concatenate(flips).mean()) if flips else float("nan")


def backbone_members(tr: HeadTrainer, local: HeadMember, special: HeadMember) -> list[HeadMember]:
    """Each backbone's ensemble member: its specialists where they beat its generalist on val log-loss.

    `local` and `special` are the first backbone's, already fitted for their rungs.
    """
    members = []
    for b in tr.s.backbones:
        spec = tr.spec(b)
        first = b == tr.s.backbones[0]
        general = local if first else tr.member(f"{b}_views", spec, "global+local")
        spec_m = special if first else tr.member(f"{b}_specialists", spec, "global+local", specialists=True)
        members.append(spec_m if val_loss(tr, spec_m) < val_loss(tr, general) else general)
    return members


def train_heads(settings: AnswerSettings, splits: dict[str, Split], step_dir: str | Path,
                data_dir: str | Path | None = None, cache_root: str | Path | None = None) -> LadderResult:
    """Compute (or read) the cached features, fit every rung's head and score Table A's rows on test.

    Returns the same `LadderResult` as the fine-tuning ladder (`idiff_lib.answer.experiments.ladder.run`), so the
    notebook's saving, metrics and figures are shared; ``histories`` holds each head's chosen
    regularisation and val log-loss instead of epochs.
    """
    step_dir = Path(step_dir)
    tr = HeadTrainer(settings, splits, cache_root)
    first = settings.backbones[0]
    rows, val_cols, test_cols, histories = [], {}, {}, {}
    test = splits["test"]

    def add(member, row: tuple[str, str, str, str] | None = None, n_members: int = 1) -> None:
        if isinstance(member, HeadMember):
            val_cols[member.name], test_cols[member.name] = tr.probs(member, "val"), tr.probs(member, "test")
            histories[member.name] = [{"head": cat or "all", "C": c, "val_loss": loss}
                                      for cat, h in member.head.heads.items() for c, loss in h.path]
        else:
            val_cols[member.name] = member.predict(splits["val"].pairs, splits["val"].categories, tr.cache)
            test_cols[member.name] = member.predict(test.pairs, test.categories, tr.cache)
        if row is not None:
            rows.append(table_row(*row, test_cols[member.name], test, n_members))

    spec0 = tr.spec(first)
    merged = tr.member(f"{first}_merged", spec0, "merged")
    add(merged, ("merged", f"{first} frozen, head on the merged A|B image", "rung", tr.start))
    split = tr.member(f"{first}_global", spec0, "global")
    add(split, ("split", f"{first} frozen, head on global A - B", "rung", tr.start))
    local = tr.member(f"{first}_views", spec0, "global+local")
    add(local, ("local", f"{first} frozen, head on global and local A - B", "rung", tr.start))
    special = tr.member(f"{first}_specialists", spec0, "global+local", specialists=True)
    add(special, ("specialists", f"{first} frozen, a head per category", "rung", tr.start))

    members: list[HeadMember | FeatureMemberAdapter] = backbone_members(tr, local, special)
    for m in members:
        if m.name not in val_cols:
            add(m)
    stack = (settings, splits, members, val_cols, test_cols, rows)  # every ensemble row reads these
    final_val, final_test, ens = ladder.ensemble_row(*stack, "ensemble", "rung", tr.start)

    targets = defect_targets(data_dir, splits)
    if targets.severity is not None and settings.evidence:
        x = tr.inputs(spec0, "global+local")
        defects = fit_defect_heads(x, targets.severity, DEFECT_KINDS)
        evidence = tr.member(f"{first}_evidence", spec0, "evidence", defects=defects)
        add(evidence)
        members.append(evidence)
        final_val, final_test, ens = ladder.ensemble_row(*stack, "evidence", "rung", tr.start)
        aspect_heads = fit_aspect_heads(x, targets.comparisons, seed=settings.seed)
        aspects.save(step_dir, spec0, aspect_heads, defects, x["val"], targets.comparisons["val"],
                          targets.severity["val"])
    if settings.feature_member:
        t0 = time.monotonic()
        feature = fit_feature_member(splits, settings.feature_synthetic_pairs, data_dir, step_dir, settings.seed,
                                     settings.threads)
        add(feature, (FEATURE_ROW, "gradient boosting on the aligned pair cues", "ours", "-"))
        tr.seconds["feature member"] = round(time.monotonic() - t0, 1)
        members.append(feature)
        final_val, final_test, ens = ladder.ensemble_row(*stack, PLUS_FEATURE_ROW, "ours", tr.start)
    save_answer_run(step_dir, members, ens)
    if settings.scratch_rows and settings.pretrained:  # the "no pretraining" row: the same head, random weights
        random_spec = tr.spec(first, pretrained=False)
        scratch = tr.member(f"{first}_views_random", random_spec, "global+local")
        add(scratch, ("local (no pretraining)", f"{first} with random weights, head on global and local A - B",
                      "ablation", "random (frozen)"))
    head_members = [m for m in members if isinstance(m, HeadMember)] + [merged, split]
    return LadderResult(
        ladder=pd.DataFrame(rows), histories=histories,
        val_probs=pd.DataFrame(val_cols, index=[p.id for p in splits["val"].pairs]),
        test_probs=pd.DataFrame(test_cols, index=[p.id for p in test.pairs]),
        final_val=final_val, final_test=final_test, seconds=tr.seconds,
        ensemble=Ensemble(members, ens, step_dir), swap_flip_rate=head_swap_flip_rate(tr, head_members),
    )


def train_answer_model(settings: AnswerSettings, splits: dict[str, Split], step_dir: str | Path,
                       data_dir: str | Path | None = None, synthetic: Any = None,
                       pretext_init: dict[str, str] | None = None) -> LadderResult:
    """Notebook 02's training by the profile's `method`: heads on cached features, or end-to-end fine-tuning."""
    if settings.method == "heads":
        return train_heads(settings, splits, step_dir, data_dir)
    return ladder.run(settings, splits, step_dir, synthetic=synthetic, pretext_init=pretext_init, data_dir=data_dir)


def cache_summary(result: LadderResult) -> str:
    """One line on where the features came from (seconds per backbone; the rest is heads)."""
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    return f"time per part: {secs}" if secs else "no timed parts"
