"""Predicted completions: one `Prediction` per pair, read from a JSONL file or from rows in memory.

Every reading problem is an error naming the file, the line and the fix (a missing id, malformed
JSON, a duplicate id), except bytes that are not UTF-8: that row is kept and counted as a format
failure.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from idiff_lib.core.errors import DataError
from idiff_lib.data import pairs
from idiff_lib.data.pairs import Pair


@dataclass
class Prediction:
    """One predicted completion: id, text (None when absent), and reading problems."""

    id: str
    completion: str | None
    problems: list[str] = field(default_factory=list)
    line: int | None = None


def prediction_from_row(row: Any, *, source: Path | None = None, line: int | None = None) -> Prediction:
    """A Prediction from ``{"id", "completion"}`` or a RAIM SFT/GRPO record.

    Raises:
        DataError: the row has no id (nor images to take one from).
    """
    if not isinstance(row, dict):
        raise DataError(source, f"expected a JSON object, got {type(row).__name__}",
                        'write {"id": ..., "completion": "<thinking>...</thinking><answer>A</answer>"}', line)
    pid = row.get("id")
    if pid is None and isinstance(row.get("images"), list) and row["images"] and isinstance(row["images"][0], str):
        pid = pairs.pair_id(row["images"][0])
    if pid is None or str(pid).strip() == "":
        raise DataError(source, "prediction has no 'id' (and no 'images' to take one from)",
                        'add "id": "<pair id>" to the row', line)
    if "completion" in row:
        text = row["completion"]
    elif "solution" in row:
        text = row["solution"]
    else:
        text = next((m.get("content") for m in row.get("messages") or []
                     if isinstance(m, dict) and m.get("role") == "assistant"), None)
    problems = []
    if text is not None and not isinstance(text, str):
        problems.append(f"completion is {type(text).__name__}, not text")
        text = None
    return Prediction(str(pid), text, problems, line)


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read a predictions JSONL file; bytes that are not UTF-8 mark that row a format failure.

    Raises:
        DataError: a file that is missing, a line that is not JSON, a row without id, a
            duplicate id, each naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found", "check the --pred path (a JSONL of {id, completion} rows)")
    if path.is_dir():
        raise DataError(path, "is a folder, not a JSONL file", "pass --pred <file>.jsonl ({id, completion} rows)")
    out: list[Prediction] = []
    seen: dict[str, int] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            bad_utf8 = False
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text, bad_utf8 = raw.decode("utf-8", errors="replace"), True
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"malformed JSON: {exc.msg} (column {exc.colno})",
                                "fix or remove that line", lineno) from None
            pred = prediction_from_row(row, source=path, line=lineno)
            if bad_utf8:
                pred.problems.append("not UTF-8")
            if pred.id in seen:
                raise DataError(path, f"duplicate id {pred.id!r} (first on line {seen[pred.id]})",
                                "keep one prediction per pair", lineno)
            seen[pred.id] = lineno
            out.append(pred)
    return out


def as_predictions(pred_rows: Iterable[Any]) -> list[Prediction]:
    """`Prediction`s from dict rows, RAIM records, Pairs or Predictions; duplicate ids are an error."""
    preds = []
    for i, row in enumerate(pred_rows, start=1):
        if isinstance(row, Prediction):
            preds.append(row)
        elif isinstance(row, Pair):
            preds.append(Prediction(row.id, row.completion))
        else:
            preds.append(prediction_from_row(row, line=i))
    counts = Counter(p.id for p in preds)
    dups = sorted(i for i, c in counts.items() if c > 1)
    if dups:
        raise DataError(None, f"duplicate prediction ids: {id_list(dups)}", "keep one prediction per pair")
    return preds


def check_ids(pred_ids: Iterable[str], ref_ids: Iterable[str], pred_source: Any = None) -> None:
    """Raise a DataError listing every id present on one side only."""
    pred_ids, ref_ids = list(pred_ids), list(ref_ids)
    only_pred = sorted(set(pred_ids) - set(ref_ids))
    only_ref = sorted(set(ref_ids) - set(pred_ids))
    if not (only_pred or only_ref):
        return
    parts = []
    if only_ref:
        parts.append(f"{len(only_ref)} reference pair(s) without a prediction: {id_list(only_ref)}")
    if only_pred:
        parts.append(f"{len(only_pred)} prediction(s) without a reference: {id_list(only_pred)}")
    raise DataError(pred_source, "; ".join(parts),
                    "score predictions and references of the same pairs (same ids; a missing "
                    "prediction should be written as an empty completion so it counts as a failure)")


def id_list(ids: list[str]) -> str:
    """Every id, comma-separated: the user needs the complete list to fix the files."""
    return ", ".join(ids)
