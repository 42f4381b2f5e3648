"""Notebook 02's work: train a profile's answer-model members and rebuild the paper's ablation ladder.

Reference: iDiff (NTIRE 2026 RAIM challenge Track 1 winner), whose ablation goes from one model on
the merged image (0.578) through split L/R views and person/scene specialists to the backbone
ensemble (0.912). The rows rebuilt here, on whatever data folder is given:

1. ``merged``: the first backbone on the merged A|B global image;
2. ``split``: the same backbone on the four views (global and local, left and right);
3. ``specialists``: + person and scene specialists fine-tuned from the ``split`` model, routed by
   the content detector;
4. ``ensemble``: every backbone (each with its specialists), networks only as in the paper,
   combined by the chosen ensembler fitted on val.

Beside them (Table A): the teaching row "frozen features + linear head" (ImageNet features, no
fine-tuning: the floor every fine-tuned rung must clear), the ``scratch_rows`` trained again from
random weights ("no pretraining"), and, ours beyond the paper, the feature member alone and the
ensemble "+ feature member". Members start from ImageNet weights when the profile has them, else
from the degradation pretext task when it ran, else from scratch.
Every member is resumable: rerunning after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from idiff_lib.answer.answer_settings import LADDER_ROWS, AnswerSettings
from idiff_lib.answer.model.inputs import Item, load_items
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.experiments.analysis import MEMBER_PROBS_FILE, PREDICTIONS_FILE, accuracy, accuracy_table
from idiff_lib.answer.experiments.ensemble import Ensemble, FeatureMemberAdapter, NetworkMember, network_member
from idiff_lib.answer.experiments.ensemblers import make_ensembler
from idiff_lib.answer.experiments.run_store import save_answer_run
from idiff_lib.answer.train import synthetic
from idiff_lib.answer.train.feature_member import FeatureMember
from idiff_lib.answer.train.frozen_probe import probe_probabilities
from idiff_lib.answer.train.splits import Split
from idiff_lib.answer.train.training import BEST_CHECKPOINT, MEMBERS_DIR, ItemStream, predict_items, train_member
from idiff_lib.core import storage
from idiff_lib.core.ontology import CATEGORIES
from idiff_lib.features.table import feature_table

# cfg -> the member's synthetic pair stream (`synthetic.synthetic_factory`).
SyntheticFactory = Callable[[MemberConfig], ItemStream]
LADDER_FILE = "ladder.csv"  # one row per ladder row, read by the report
HISTORIES_FILE = "histories.json"  # every member's epoch history
FROZEN_PROBE_FILE = "frozen_probe.json"  # the teaching row's probabilities (computed once per run)
FROZEN_ROW = "frozen features + linear head"  # Table A's teaching row
FEATURE_ROW = "feature member alone"  # ours, beyond the paper
PLUS_FEATURE_ROW = "+ feature member"  # the networks' ensemble with the feature member (ours)


@dataclass
class LadderResult:
    """What notebook 02 shows and saves."""

    ladder: pd.DataFrame
    histories: dict[str, list[dict[str, Any]]]
    val_probs: pd.DataFrame
    test_probs: pd.DataFrame
    final_val: np.ndarray
    final_test: np.ndarray
    seconds: dict[str, float]
    ensemble: Ensemble
    swap_flip_rate: float = float("nan")


class Trainer:
    """Trains and caches members inside a step folder, sharing decoded views across members."""

    def __init__(self, settings: AnswerSettings, splits: dict[str, Split], step_dir: Path,
                 synthetic: SyntheticFactory | None = None, pretext_init: dict[str, str] | None = None,
                 device: str | None = None):
        self.s, self.splits, self.step_dir = settings, splits, Path(step_dir)
        self.cache: dict = {}
        self.synthetic = synthetic
        self.pretext_init = pretext_init or {}
        self.device = device
        self.histories: dict[str, list] = {}
        self.seconds: dict[str, float] = {}
        self._networks: dict[tuple, NetworkMember] = {}
        self._probs: dict[tuple[int, str], np.ndarray] = {}

    def items(self, split: str, cfg: MemberConfig) -> list[Item]:
        """The split's items for `cfg`'s input size (decoded once), with the routed categories."""
        items = load_items(self.splits[split].pairs, cfg, desc=f"{split} views", cache=self.cache)
        for it, cat in zip(items, self.splits[split].categories):
            it.category = cat
        return items

    def train(self, cfg: MemberConfig) -> Path:
        """Train (or resume, or reuse) one member; its folder."""
        member_dir = self.step_dir / MEMBERS_DIR / cfg.name
        synthetic = self.synthetic(cfg) if (self.synthetic and cfg.synthetic_pairs) else None
        result = train_member(cfg, self.items("train", cfg), self.items("val", cfg), member_dir,
                                 resume=True, synthetic=synthetic, device=self.device)
        self.histories[cfg.name] = result.history
        self.seconds[cfg.name] = round(sum(h["seconds"] for h in result.history), 1)
        return member_dir

    def init_for(self, backbone: str, scratch: bool) -> str:
        """The pretext checkpoint a member of `backbone` starts from ("" for none, and for scratch rows)."""
        return "" if scratch else self.pretext_init.get(backbone, "")

    def network(self, backbone: str, mode: str, specialists: bool, scratch: bool = False) -> NetworkMember:
        """The trained member (loaded once: the ladder's specialists row is also the first ensemble member)."""
        key = (backbone, mode, specialists, scratch)
        if key not in self._networks:
            self._networks[key] = self._network(backbone, mode, specialists, scratch)
        return self._networks[key]

    def _network(self, backbone: str, mode: str, specialists: bool, scratch: bool) -> NetworkMember:
        suffix = "scratch" if scratch else ""
        general = self.s.member(backbone, mode, init=self.init_for(backbone, scratch), suffix=suffix, scratch=scratch)
        dirs = {"": self.train(general)}
        if specialists:
            for cat in CATEGORIES:
                if any(c == cat for c in self.splits["train"].categories):
                    spec = self.s.member(backbone, mode, category=cat, init=str(dirs[""] / BEST_CHECKPOINT),
                                         suffix=suffix, scratch=scratch)
                    dirs[cat] = self.train(spec)
        name = "_".join(x for x in (backbone, "merged" if mode == "merged" else "", suffix) if x)
        return network_member(name, dirs, device=self.device)

    def probs(self, member: NetworkMember | FeatureMemberAdapter, split: str) -> np.ndarray:
        """p_left of every pair of `split` (computed once per member object)."""
        key = (id(member), split)
        if key not in self._probs:
            sp = self.splits[split]
            self._probs[key] = member.predict(sp.pairs, sp.categories, self.cache)
        return self._probs[key]


def table_row(name: str, description: str, kind: str, start: str, p: np.ndarray, split: Split, members: int) -> dict[str, Any]:
    table = accuracy_table(p, split.labels, split.categories, clusters=split.photos)
    row: dict[str, Any] = {"row": name, "description": description, "kind": kind, "start": start, "members": members}
    for group, stats in table.items():
        row[f"{group}_acc"], row[f"{group}_lo"], row[f"{group}_hi"], row[f"{group}_n"] = (
            stats["acc"], stats["lo"], stats["hi"], stats["n"])
    return row


def start_of(settings: AnswerSettings, pretext_init: dict[str, str] | None) -> str:
    """How the main members start: "imagenet" (pretrained weights), "pretext" or "scratch"."""
    if settings.pretrained or settings.checkpoints:
        return "imagenet"
    return "pretext" if pretext_init else "scratch"


def frozen_probe_probs(settings: AnswerSettings, splits: dict[str, Split], step_dir: Path) -> dict[str, np.ndarray]:
    """The frozen-features + linear-head probe on the first backbone (cached in ``frozen_probe.json``)."""
    path = step_dir / FROZEN_PROBE_FILE
    ids = {name: [p.id for p in sp.pairs] for name, sp in splits.items()}
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("backbone") == settings.backbones[0] and saved.get("ids") == ids:
            return {name: np.asarray(v, dtype=float) for name, v in saved["p_left"].items()}
    probs, c = probe_probabilities(splits, settings.backbones[0], seed=settings.seed)
    storage.write_json(path, {"backbone": settings.backbones[0], "C": c, "ids": ids,
                              "p_left": {k: v.tolist() for k, v in probs.items()}})
    return probs


def fit_feature_member(splits: dict[str, Split], synthetic_pairs: int = 0, data_dir: str | Path | None = None,
                       step_dir: str | Path | None = None, seed: int = 0, workers: int = 2) -> FeatureMemberAdapter:
    """The feature-based member (`FeatureMember`): gradient boosting on the pair cues.

    It is fitted on the train split plus `synthetic_pairs` fresh pairs rendered from the training
    photos (`synthetic.synthetic_cue_table`, cached in ``<step_dir>/synthetic_cues``): the cue model
    needs thousands of pairs (val / test 0.69 / 0.62 from the 300 train pairs alone, 0.75 / 0.72 with
    4,000 more: `benchmarks/pair_cue_member.py`).
    """
    train = splits["train"]
    table, labels = feature_table(train.pairs), np.asarray(train.labels, dtype=float)
    if synthetic_pairs > 0:
        source = synthetic.SyntheticSource(train, data_dir)
        syn = synthetic.synthetic_cue_table(source, synthetic_pairs, Path(step_dir) / "synthetic_cues", seed=seed,
                                          workers=workers)
        labels = np.concatenate([labels, syn["label"].to_numpy(dtype=float)])
        table = pd.concat([table, syn[list(table.columns)]])
    member = FeatureMember(kind="hgb", seed=seed).fit(table, labels)
    return FeatureMemberAdapter(member, feature_table, table_name="feature_table")


def swap_flip_rate(member: NetworkMember, split: Split, trainer: Trainer) -> float:
    """Share of pairs whose answer flips when A and B are exchanged (every sub-model of the member)."""
    flipped = []
    for key, model in member.models.items():
        items = [it for it in trainer.items(split.name, model.cfg) if not key or it.category == key]
        swapped = [Item(it.id, tuple(it.views[j ^ 1] for j in range(len(it.views))), None, it.category) for it in items]
        if items:
            p, q = predict_items(model, items), predict_items(model, swapped)
            flipped.append(((p > 0.5) != (q > 0.5)) | ((p == 0.5) & (q == 0.5)))
    return float(np.concatenate(flipped).mean()) if flipped else float("nan")


def run(settings: AnswerSettings, splits: dict[str, Split], step_dir: str | Path, *, synthetic: SyntheticFactory | None = None,
        pretext_init: dict[str, str] | None = None, device: str | None = None,
        data_dir: str | Path | None = None) -> LadderResult:
    """Train every member the ladder needs (resuming finished ones) and score Table A's rows on test.

    The rows: the paper's four rungs, networks only (kind "rung"); the frozen-features + linear-head
    probe (kind "teaching", pretrained profiles); the `scratch_rows` trained again from random
    weights (kind "ablation"); the feature member alone and the ensemble "+ feature member"
    (kind "ours", beyond the paper). The saved ensemble is the last ensemble row.

    Args:
        synthetic: a callable cfg -> (n, rng) -> items, the on-the-fly pair stream (or None).
        pretext_init: backbone -> pretext checkpoint, the quality-aware start (or None).
        data_dir: the data folder (its ``meta/train.jsonl`` names the training photos for the
            feature member's synthetic pairs).
    """
    step_dir = Path(step_dir)
    tr = Trainer(settings, splits, step_dir, synthetic, pretext_init, device)
    start = start_of(settings, pretext_init)
    first = settings.backbones[0]
    rows, val_cols, test_cols = [], {}, {}

    def add(column: str, member: NetworkMember | FeatureMemberAdapter | None, row: tuple[str, str, str, str] | None = None,
            probs: dict[str, np.ndarray] | None = None) -> None:
        if member is not None:
            val_cols[column], test_cols[column] = tr.probs(member, "val"), tr.probs(member, "test")
        else:
            val_cols[column], test_cols[column] = probs["val"], probs["test"]
        if row is not None:
            rows.append(table_row(*row, test_cols[column], splits["test"], 1))

    def ladder_rows(scratch: bool) -> None:
        wanted = tuple(settings.scratch_rows) if scratch else LADDER_ROWS[:3]
        tag, kind, how = (" (no pretraining)", "ablation", "scratch") if scratch else ("", "rung", start)
        if "merged" in wanted:
            add(f"merged{tag}", tr.network(first, "merged", False, scratch),
                (f"merged{tag}", f"{first} on the merged A|B image", kind, how))
        if "split" in wanted:
            add(f"split{tag}", tr.network(first, "split", False, scratch),
                (f"split{tag}", f"{first} on global + local L/R views", kind, how))
        if "specialists" in wanted:
            add(f"specialists{tag}", tr.network(first, "split", True, scratch),
                (f"specialists{tag}", f"{first} + person/scene specialists", kind, how))

    if settings.frozen_row and start == "imagenet":
        add(FROZEN_ROW, None, (FROZEN_ROW, f"{first} frozen, mean/std of 4 stages, logistic regression", "teaching",
                               "imagenet (frozen)"), probs=frozen_probe_probs(settings, splits, step_dir))
    ladder_rows(False)
    members: list[NetworkMember | FeatureMemberAdapter] = [tr.network(b, "split", True) for b in settings.backbones]
    for m in members:
        add(m.name, m)
    final_val, final_test, ens = ensemble_row(settings, splits, members, val_cols, test_cols, rows, "ensemble", "rung", start)
    if settings.feature_member:
        feature = fit_feature_member(splits, settings.feature_synthetic_pairs, data_dir, step_dir, settings.seed,
                                     settings.threads)
        add(feature.name, feature, (FEATURE_ROW, "gradient boosting on the aligned pair cues", "ours", "-"))
        members.append(feature)
        final_val, final_test, ens = ensemble_row(settings, splits, members, val_cols, test_cols, rows,
                                                   PLUS_FEATURE_ROW, "ours", start)
    save_answer_run(step_dir, members, ens)
    if start != "scratch" and settings.scratch_rows:
        ladder_rows(True)  # the comparison rows last: the main result is saved first
    return LadderResult(
        ladder=pd.DataFrame(rows), histories=tr.histories,
        val_probs=pd.DataFrame(val_cols, index=[p.id for p in splits["val"].pairs]),
        test_probs=pd.DataFrame(test_cols, index=[p.id for p in splits["test"].pairs]),
        final_val=final_val, final_test=final_test, seconds=tr.seconds,
        ensemble=Ensemble(members, ens, step_dir),
        swap_flip_rate=float(np.mean([swap_flip_rate(m, splits["test"], tr) for m in members
                                      if isinstance(m, NetworkMember)])),
    )


def ensemble_row(settings: AnswerSettings, splits: dict[str, Split], members: list, val_cols: dict, test_cols: dict,
                  rows: list, name: str, kind: str, start: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """Fit the ensembler on val over `members`' columns and append its test row."""
    names = [m.name for m in members]
    pv = np.column_stack([val_cols[n] for n in names])
    pt = np.column_stack([test_cols[n] for n in names])
    ens = make_ensembler(settings.ensembler).fit(pv, splits["val"].labels)
    final_val, final_test = ens.predict(pv), ens.predict(pt)
    rows.append(table_row(name, f"{settings.ensembler} of {', '.join(names)}", kind, start, final_test, splits["test"], len(names)))
    return final_val, final_test, ens


def prediction_rows(result: LadderResult, split: Split, final: np.ndarray) -> list[dict[str, Any]]:
    """The final ensemble's predictions in the CLI's row format (id, answer, p_left, category, members, label)."""
    probs = result.test_probs if split.name == "test" else result.val_probs
    names = result.ensemble.names
    rows = []
    for i, pair in enumerate(split.pairs):
        rows.append({"id": pair.id, "answer": "A" if final[i] > 0.5 else "B", "p_left": float(final[i]),
                     "category": split.categories[i], "members": {n: float(probs[n].iloc[i]) for n in names},
                     "label": pair.answer})
    return rows


def save_outputs(result: LadderResult, splits: dict[str, Split], step_dir: str | Path) -> dict[str, Path]:
    """preds_val.jsonl, preds_test.jsonl, ladder.csv, member_probs_{val,test}.csv, histories.json."""
    step_dir = Path(step_dir)
    out = {
        "preds_val": storage.write_jsonl(step_dir / PREDICTIONS_FILE.format(split="val"),
                                         prediction_rows(result, splits["val"], result.final_val)),
        "preds_test": storage.write_jsonl(step_dir / PREDICTIONS_FILE.format(split="test"),
                                          prediction_rows(result, splits["test"], result.final_test)),
        "histories": storage.write_json(step_dir / HISTORIES_FILE, result.histories),
        "ladder": storage.write_text(step_dir / LADDER_FILE, result.ladder.to_csv(index=False)),
    }
    for split, frame in (("val", result.val_probs), ("test", result.test_probs)):
        out[f"member_probs_{split}"] = storage.write_text(step_dir / MEMBER_PROBS_FILE.format(split=split), frame.to_csv())
    return out


def _finite(obj: Any) -> Any:
    """NaN (a category absent from a small split) -> None, so metrics.json stays strict JSON."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def metrics(result: LadderResult, splits: dict[str, Split], seconds: float) -> dict[str, Any]:
    """The numbers notebook 02 records in metrics.json."""
    test = splits["test"]
    table = accuracy_table(result.final_test, test.labels, test.categories, clusters=test.photos)
    singles = {n: accuracy(result.test_probs[n].to_numpy(), test.labels) for n in result.ensemble.names}
    return _finite({
        "test_accuracy": table["overall"]["acc"], "test_ci": [table["overall"]["lo"], table["overall"]["hi"]],
        "test_person_accuracy": table["person"]["acc"], "test_scene_accuracy": table["scene"]["acc"],
        "val_accuracy": accuracy(result.final_val, splits["val"].labels),
        "member_test_accuracy": singles, "best_single": max(singles.values()) if singles else None,
        "ladder": result.ladder[["row", "kind", "start", "overall_acc", "overall_lo", "overall_hi", "person_acc",
                                  "scene_acc"]].to_dict("records"),
        "swap_flip_rate": result.swap_flip_rate, "train_seconds": result.seconds, "seconds": round(seconds, 1),
        "n_pairs": {k: len(v.pairs) for k, v in splits.items()},
    })


def curves_frame(histories: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Long table of the training curves (member, epoch, metric, value) for plotting."""
    rows = []
    for member, hist in histories.items():
        for h in hist:
            for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
                if key in h:
                    rows.append({"member": member, "epoch": h["epoch"], "metric": key, "value": h[key]})
    return pd.DataFrame(rows, columns=["member", "epoch", "metric", "value"])

