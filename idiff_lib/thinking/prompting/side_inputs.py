"""The side inputs of the prompt stages: feature cue texts (S2, S3) and the Answer Model's verdicts (S4)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from idiff_lib.answer.train import aspects
from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.features import cue_text, iqa
from idiff_lib.features import table as features  # alias: 'table' reads as a DataFrame in this module
from idiff_lib.features.cue_text import iqa_label
from idiff_lib.thinking.prompting.evidence import pair_evidence

# Notebook 03 saves the cue thresholds it calibrated on the train split here, in its step folder.
CUE_THRESHOLDS_FILE = "cue_thresholds.json"


def read_id_table(path: str | Path, required: Sequence[str] = ("id",)) -> dict[str, dict]:
    """A JSONL file of rows keyed by ``id`` (answers, cues), with errors naming the file and line."""
    out: dict[str, dict] = {}
    for row in storage.read_jsonl_rows(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(path, f"row {json.dumps(row)[:80]} lacks {', '.join(missing)}",
                            f"every row needs {', '.join(required)}")
        out[str(row["id"])] = row
    return out


def read_answers(path: str | Path) -> dict[str, dict]:
    """Answer Model predictions (rows ``id, answer[, p_left]``) -> id -> {"answer", "p_answer"}."""
    table = read_id_table(path, ("id", "answer"))
    out = {}
    for pid, row in table.items():
        if row["answer"] not in pairs_mod.ANSWERS:
            raise DataError(path, f"pair {pid}: answer {row['answer']!r} is not A or B", "write 'A' or 'B'")
        p_left = row.get("p_left")
        p = None if p_left is None else (float(p_left) if row["answer"] == "A" else 1 - float(p_left))
        out[pid] = {"answer": row["answer"], "p_answer": p}
    return out


def read_answers_source(path: str | Path) -> dict[str, dict]:
    """`read_answers` of a predictions file, or of every ``preds_*.jsonl`` in a run folder (later files win).

    Raises:
        DataError: a folder without predictions files.
    """
    path = Path(path)
    if not path.is_dir():
        return read_answers(path)
    files = sorted(path.glob("preds_*.jsonl"))
    if not files:
        raise DataError(path, "no preds_*.jsonl in this folder", "pass the Answer Model's run folder or a predictions file")
    out: dict[str, dict] = {}
    for f in files:
        out.update(read_answers(f))
    return out


def s4_answers(pairs: Sequence[pairs_mod.Pair], preds_file: str | Path | None, fallback: str = "reference",
               prior: str = "A") -> tuple[dict[str, dict], str]:
    """The verdicts that answer-aware prompts (S4) carry for `pairs`, and a note on where they came from.

    The Answer Model's predictions (`preds_file`, rows ``id, answer, p_left``) come first. Pairs
    they do not cover (no file, or a run that predicted a subset) get the `fallback`: "reference"
    (the pair's own answer, an upper bound that says nothing about the Answer Model) or "prior"
    (the most common training answer `prior`). The note counts each source, so nothing is hidden.
    """
    if fallback not in ("reference", "prior"):
        raise ParameterError(f"answers_fallback must be 'reference' or 'prior', got {fallback!r}")
    predicted = read_answers(preds_file) if preds_file and Path(preds_file).exists() else {}
    out, missing = {}, 0
    for p in pairs:
        if p.id in predicted:
            # The verdict only: training prompts carry the reference answer, which has no confidence,
            # so test prompts must not show one either.
            out[p.id] = {"answer": predicted[p.id]["answer"], "p_answer": None}
            continue
        missing += 1
        if fallback == "reference" and p.answer in pairs_mod.ANSWERS:
            out[p.id] = {"answer": p.answer, "p_answer": None}
        else:
            out[p.id] = {"answer": prior, "p_answer": None}
    used = len(pairs) - missing
    note = f"answer model ({Path(preds_file).name}) for {used} of {len(pairs)} pairs" if preds_file and predicted \
        else "no Answer Model predictions"
    if missing:
        note += f"; {missing} pairs use the {fallback} fallback" + (f" ({prior})" if fallback == "prior" else "")
    return out, note


def iqa_sources_text(ran: Sequence[str], left_out: Sequence[str] = ()) -> str:
    """The short phrase naming which IQA metrics S3's cues come from, e.g. ``PIQE (LIQE, QALIGN: no weights)``.

    Metric names are written as the cue lines write them (`features.cue_text.iqa_label`). Prompts
    carry it under the IQA cue heading, metrics.json and Table B's caption record it.
    """
    text = ", ".join(iqa_label(m) for m in ran) or "none"
    return text + (f" ({', '.join(iqa_label(m) for m in left_out)}: no weights)" if left_out else "")


def iqa_sources_of(cues: Mapping[str, Mapping[str, str]]) -> str:
    """The IQA sources phrase a cue table carries (`feature_cues` puts one in every row), or "".

    Raises:
        DataError: rows naming different sources (cue files of different runs mixed together).
    """
    found = {str(c["iqa_sources"]) for c in cues.values() if c.get("iqa_sources")}
    if len(found) > 1:
        raise DataError(None, f"the cue rows name {len(found)} different IQA sources: {sorted(found)}",
                        "compute the cues of one run with one `idiff think cues` call")
    return found.pop() if found else ""


def feature_cues(
    pairs: Sequence[pairs_mod.Pair],
    calibration_ids: Iterable[str] | None = None,
    *,
    sources: Sequence[str] = ("cv", "iqa"),
    progress: bool = True,
    require_learned: bool = False,
    thresholds: Mapping[str, Any] | None = None,
    thresholds_out: str | Path | None = None,
    warn_left_out: bool = True,
) -> tuple[dict[str, dict[str, str]], str]:
    """Cue texts per pair from `idiff_lib.features`: ``{id: {"cv": lines, "iqa": lines[, "iqa_sources"]}}`` and a note.

    The feature table comes from ``features.table.build_feature_table`` (cached per image); the cue
    thresholds are calibrated on the `calibration_ids` rows (the train split; default: all) with
    ``features.cue_text.calibrate_thresholds``; each pair's cues are
    ``features.cue_text.render_features(row, style)`` lines. The note names the IQA metrics that
    ran and those left out, so metrics.json records which cues the prompts had; with "iqa" among
    `sources` every row also carries ``iqa_sources`` (`iqa_sources_text`), which S3 prompts show.

    Args:
        thresholds: thresholds calibrated before (`CUE_THRESHOLDS_FILE` of a run's notebook 03);
            then `calibration_ids` is not used and no calibration pair's features are needed.
        thresholds_out: where to save the thresholds calibrated here (notebook 03 saves them in
            its step folder, so an export of that run words its cues the same way).
        require_learned: the paper profile's rule: a learned IQA metric (LIQE, Q-Align, ...) whose
            weights are missing stops the run with the files to fetch. Without it (the cpu profile)
            such metrics are left out with a warning each, and S3 prompts carry the cues that ran
            (none at all: "not measured").
        warn_left_out: warn once per learned metric left out, with the files to fetch (the CLI);
            False (notebook 03) says it in the note's one line instead.

    Raises:
        OfflineError: with `require_learned`, naming every learned metric that cannot run.
    """
    with warnings.catch_warnings():
        if not warn_left_out:
            warnings.filterwarnings("ignore", message=r"IQA metric '.*' left out", category=UserWarning)
        table = features.build_feature_table(list(pairs), features=tuple(sources), progress=progress,
                                             strict_iqa=require_learned)
    if thresholds is None:
        ids = [i for i in (calibration_ids or table.index) if i in table.index]
        thresholds = cue_text.calibrate_thresholds(table.loc[ids])
        calibrated = f"thresholds calibrated on {len(ids)} pairs"
        if thresholds_out is not None:
            cue_text.save_thresholds(thresholds, thresholds_out)
    else:
        calibrated = "thresholds of the run's training split"
    ran = table.attrs.get("iqa_metrics", [])
    left_out = [m for m in iqa.DEFAULT_METRICS if m not in ran] if "iqa" in sources else []
    extra = {"iqa_sources": iqa_sources_text(ran, left_out)} if "iqa" in sources else {}
    cues = {}
    for pid, row in table.iterrows():
        cues[str(pid)] = {**{style: "\n".join(cue_text.render_features(row, style=style, thresholds=thresholds))
                             for style in ("cv", "iqa")}, **extra}
    with_iqa = sum(bool(c["iqa"]) for c in cues.values())
    iqa_note = (f"IQA metrics used: {', '.join(ran) or 'none'}" +
                (f"; left out (no weights or code here): {', '.join(left_out)}" if left_out else "") +
                ("; `idiff think cues` names the files to fetch" if left_out and not warn_left_out else ""))
    return cues, (f"feature cues from idiff_lib.features.cv for {len(cues)} pairs (sources {', '.join(sources)}; "
                  f"{calibrated}; {with_iqa} pairs have IQA cues; {iqa_note})")


def calibrated_cues(
    pairs: Sequence[pairs_mod.Pair],
    calibration: Sequence[pairs_mod.Pair] = (),
    *,
    sources: Sequence[str] = ("cv", "iqa"),
    progress: bool = True,
    require_learned: bool = False,
    thresholds: Mapping[str, Any] | None = None,
) -> tuple[dict[str, dict[str, str]], str]:
    """`feature_cues` of `pairs` with thresholds calibrated on `calibration` (the train split), or on `pairs` themselves.

    With `thresholds` (a run's saved ones) only `pairs`' features are computed. Otherwise the
    calibration pairs' features are computed too (cached per image) but only `pairs`' cues are
    returned; the note says when no calibration pairs were given.
    """
    if thresholds is not None:
        return feature_cues(list(pairs), sources=sources, progress=progress, require_learned=require_learned,
                            thresholds=thresholds)
    ids = {p.id for p in pairs}
    extra = [p for p in calibration if p.id not in ids]
    cues, note = feature_cues(list(pairs) + extra, [p.id for p in calibration] or None, sources=sources,
                              progress=progress, require_learned=require_learned)
    if not calibration:
        note += " (no training split given: thresholds calibrated on these pairs)"
    return {p.id: cues[p.id] for p in pairs if p.id in cues}, note


def aspect_evidence(pairs: Sequence[pairs_mod.Pair], answer_dir: str | Path, *, lines: int,
                    presence_weight: float, min_presence: float = 0.0,
                    follow_reference: Iterable[str] = ()) -> tuple[dict[str, str], str]:
    """Each pair's evidence block (S3, S4) from the Answer step's aspect heads, and a note saying where it came from.

    `follow_reference`: the training pairs' ids, whose blocks follow their reference's aspects
    (`idiff_lib.thinking.prompting.evidence.pair_evidence`).

    The heads are `idiff_lib.answer.train.aspects` (saved by notebook 02's cache-first method); their
    features come from the shared feature cache. Without them (a fine-tuned Answer run, data
    without ``meta/``) every block says ``unavailable`` and why, and the note says so.
    """
    model = aspects.load_if_present(answer_dir)
    if model is None:
        reason = f"no aspect heads in {Path(answer_dir).name}"
        return pair_evidence(pairs, None, lines=lines, presence_weight=presence_weight,
                             unavailable_reason=reason), f"aspect evidence unavailable ({reason})"
    heads = {row["id"]: row for row in model.predict(list(pairs))}
    follow = set(follow_reference)
    blocks = pair_evidence(pairs, heads, lines=lines, presence_weight=presence_weight, min_presence=min_presence,
                           follow_reference=follow)
    taught = sum(p.id in follow for p in pairs)
    return blocks, (f"aspect evidence from {model.spec.backbone} heads ({len(model.aspects.heads)} aspects, "
                    f"{len(model.defects.kinds)} defect kinds) for {len(heads)} pairs: up to {lines} ranked lines each"
                    + (f"; the {taught} training pairs' lines follow their references' aspects" if taught else ""))
