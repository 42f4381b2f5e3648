"""The Answer Model's evidence on disk: per-aspect verdicts and per-kind defect differences, with a loader.

Notebook 02 (cache-first) fits one head per ground-truth comparison (region x attribute, e.g.
"Face Texture": which side is better on it), one presence head per comparison (does the pair differ
on it at all) and one ridge head per defect kind (the predicted A - B severity) on the first
backbone's cached features. They are saved in the Answer step's folder:

- ``aspects.json``: the backbone, the aspect names, the defect kinds and each head's val accuracy
  (plain JSON);
- ``aspects.safetensors``: the heads' arrays (no pickles).

`load` reads them back; `AspectModel.predict` gives, per pair, ``{"aspects": {name: p_A_better},
"presence": {name: p_differs}, "defects": {kind: A - B severity}}``. `idiff answer predict --aspects`
writes these rows, and the Thinking Model's prompts read them as evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from idiff_lib.answer.experiments.analysis import bootstrap_ci
from idiff_lib.answer.model.heads import (AspectHeads, DefectHeads, LinearHead, PresenceHead, aspect_labels,
                                          load_arrays, presence_labels, save_arrays, worse_side_accuracy)
from idiff_lib.answer.train.head_member import BackboneSpec, input_matrix, pair_features
from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError
from idiff_lib.data.meta import split_meta
from idiff_lib.data.pairs import Pair

ASPECTS_FILE = "aspects.json"
ASPECTS_ARRAYS = "aspects.safetensors"
ASPECTS_FORMAT = 2  # 2: presence heads
HINT = "rerun notebook 02 (idiff run --from 02) on a data folder with meta/ to fit the aspect heads"


def save(step_dir: str | Path, spec: BackboneSpec, heads: AspectHeads, defects: DefectHeads, x_val: np.ndarray,
         comparisons_val: Sequence[Sequence[dict]], severity_val: np.ndarray) -> Path:
    """Write the aspect and defect heads with their val accuracies into `step_dir`."""
    step_dir = Path(step_dir)
    labels = aspect_labels(comparisons_val)
    aspect_acc = {}
    for name, head in heads.heads.items():
        lab = labels.get(name)
        m = ~np.isnan(lab) if lab is not None else np.zeros(len(x_val), bool)
        aspect_acc[name] = {"val_accuracy": float(np.mean((head.predict(x_val[m]) > 0.5) == (lab[m] > 0.5)))
                            if m.any() else None, "val_pairs": int(m.sum())}
    held = presence_labels(comparisons_val, list(heads.presence))
    presence_acc = {name: {"val_accuracy": float(np.mean((head.predict(x_val) > 0.5) == (held[name] > 0.5)))
                           if len(x_val) else None, "val_held": int(held[name].sum())}
                    for name, head in heads.presence.items()}
    ev = defects.evidence(x_val)
    defect_acc = {}
    for k, kind in enumerate(defects.kinds):
        acc, n = worse_side_accuracy(ev[:, k], severity_val[:, k])
        defect_acc[kind] = {"val_accuracy": None if n == 0 else acc, "val_pairs": n}
    arrays = {"defects.coef": defects.coef, "defects.scale": defects.scale}
    for i, (name, head) in enumerate(heads.heads.items()):
        arrays[f"aspect{i}.coef"], arrays[f"aspect{i}.scale"] = head.coef, head.scale
    for i, (name, head) in enumerate(heads.presence.items()):
        arrays[f"presence{i}.coef"], arrays[f"presence{i}.scale"] = head.coef, head.scale
        arrays[f"presence{i}.intercept"] = head.intercept
    save_arrays(step_dir / ASPECTS_ARRAYS, arrays)
    return storage.write_json(step_dir / ASPECTS_FILE, {
        "format": ASPECTS_FORMAT, "backbone": spec.to_dict(), "aspects": list(heads.heads),
        "aspect_accuracy": aspect_acc, "presence": list(heads.presence), "presence_accuracy": presence_acc,
        "kinds": list(defects.kinds), "defect_accuracy": defect_acc,
        "defect_alpha": defects.alpha})


@dataclass
class AspectModel:
    """The saved evidence heads of a run (see the module docstring)."""

    spec: BackboneSpec
    aspects: AspectHeads
    defects: DefectHeads
    info: dict[str, Any]

    def predict(self, pairs: Sequence[Pair], cache: dict | None = None) -> list[dict[str, Any]]:
        """Per pair: ``{"id", "aspects": {name: p(A better)}, "presence": {name: p(differs)}, "defects": {kind: A - B
        severity}}``."""
        cache = {} if cache is None else cache
        if not pairs:
            return []
        x = input_matrix(pair_features(self.spec, pairs, cache, desc="evidence features"), "global+local")
        probs = self.aspects.predict(x)
        held = self.aspects.predict_presence(x)
        ev = self.defects.evidence(x)
        return [{"id": p.id, "aspects": {n: round(float(v[i]), 4) for n, v in probs.items()},
                 "presence": {n: round(float(v[i]), 4) for n, v in held.items()},
                 "defects": {k: round(float(ev[i, j]), 4) for j, k in enumerate(self.defects.kinds)}}
                for i, p in enumerate(pairs)]


def find(run_dir: str | Path) -> Path:
    """The ``aspects.json`` of a run folder or of its Answer step folder."""
    run_dir = Path(run_dir)
    for folder in (run_dir, layout.step_dir(run_dir, layout.ANSWER_STEP)):
        if (folder / ASPECTS_FILE).is_file():
            return folder / ASPECTS_FILE
    raise DataError(run_dir / ASPECTS_FILE, "no aspect heads here", HINT)


def load(run_dir: str | Path) -> AspectModel:
    """The aspect and defect heads saved by notebook 02.

    Raises:
        DataError: no ``aspects.json``, a damaged one, or arrays that do not match it (naming the file).
    """
    path = find(run_dir)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"is not valid JSON ({err})", HINT) from None
    if not isinstance(info, dict) or info.get("format") != ASPECTS_FORMAT:
        raise DataError(path, f"is not an aspects file of format {ASPECTS_FORMAT}", HINT)
    arrays = load_arrays(path.parent / ASPECTS_ARRAYS, HINT)
    try:
        heads = {name: LinearHead(arrays[f"aspect{i}.coef"], arrays[f"aspect{i}.scale"])
                 for i, name in enumerate(info["aspects"])}
        presence = {name: PresenceHead(arrays[f"presence{i}.coef"], arrays[f"presence{i}.scale"],
                                       arrays[f"presence{i}.intercept"])
                    for i, name in enumerate(info["presence"])}
        defects = DefectHeads(list(info["kinds"]), arrays["defects.coef"], arrays["defects.scale"])
        b = info["backbone"]
        spec = BackboneSpec(str(b["backbone"]), bool(b["pretrained"]), int(b["seed"]), str(b.get("checkpoint", "")))
    except (KeyError, TypeError) as err:
        raise DataError(path.parent / ASPECTS_ARRAYS, f"does not match {ASPECTS_FILE} (missing {err})", HINT) from None
    return AspectModel(spec, AspectHeads(heads, presence), defects, info)


def evidence_accuracy(model: AspectModel, pairs: Sequence[Pair], data_dir: str | Path, split: str = "test",
                      cache: dict | None = None) -> "pd.DataFrame":
    """How often each evidence head picks the right side on a labelled split, against the majority floor.

    One row per defect kind (the worse side: sign of the predicted A - B severity against ``meta``'s)
    and per aspect (the better side against ``meta``'s comparisons), over the pairs where the truth
    names a side: ``group``, ``by`` ("defect" / "aspect"), ``n``, ``acc`` with its 95% cluster-bootstrap
    interval over photos (``lo``, ``hi``), and ``floor``, the accuracy of always answering the
    split's majority side for that head. Empty when the data folder has no ``meta/``.
    """
    meta = split_meta(data_dir, split)
    cols = ["group", "by", "n", "acc", "lo", "hi", "floor"]
    if not meta or not pairs:
        return pd.DataFrame(columns=cols)
    rows = model.predict(pairs, cache)
    photos = np.array([str(meta.get(p.id, {}).get("photo") or p.id) for p in pairs], dtype=object)
    out = []

    def add(group: str, by: str, pred: np.ndarray, truth: np.ndarray) -> None:
        known = ~np.isnan(truth) & (truth != 0)
        if not known.any():
            return
        correct = np.sign(pred[known]) == np.sign(truth[known])
        lo, hi = bootstrap_ci(correct, clusters=photos[known])
        share = float(np.mean(truth[known] > 0))
        out.append({"group": group, "by": by, "n": int(known.sum()), "acc": float(correct.mean()), "lo": lo, "hi": hi,
                    "floor": max(share, 1 - share)})

    for kind in model.defects.kinds:
        truth = np.zeros(len(pairs))
        for i, p in enumerate(pairs):
            row = meta.get(p.id, {})
            truth[i] = (sum(d["severity"] for d in row.get("defects_a", []) if d.get("kind") == kind)
                        - sum(d["severity"] for d in row.get("defects_b", []) if d.get("kind") == kind))
        add(kind, "defect", np.array([r["defects"][kind] for r in rows]), truth)
    labels = aspect_labels([meta.get(p.id, {}).get("comparisons", []) for p in pairs])
    for name in model.aspects.heads:
        truth = labels.get(name, np.full(len(pairs), np.nan)) * 2 - 1  # +1 A better, -1 B better
        add(name, "aspect", np.array([r["aspects"][name] for r in rows]) - 0.5, truth)
    return pd.DataFrame(out, columns=cols)


def load_if_present(run_dir: str | Path) -> AspectModel | None:
    """`load`, or None when the run has no aspect heads (a fine-tuned run, or data without ``meta/``)."""
    try:
        find(run_dir)
    except DataError:
        return None
    return load(run_dir)


def evidence_sentence(table: "pd.DataFrame") -> str:
    """Which evidence heads clear their majority floor with their whole interval, computed from `table`."""
    if table.empty:
        return "No evidence head was scored."
    clear = table[table["lo"] > table["floor"]]
    inside = table[(table["lo"] <= table["floor"])]
    parts = [f"{len(clear)} of {len(table)} evidence heads clear their always-majority floor with their whole "
             f"95% interval" + (f" ({', '.join(clear['group'])})" if len(clear) else "")]
    if len(inside):
        parts.append(f"{len(inside)} do not ({', '.join(inside['group'])}): their intervals reach the floor, "
                     "so those verdicts are not shown to carry information")
    return "; ".join(parts) + "."
