"""``idiff answer predict``: predict A/B for a JSONL file of pairs with a trained Answer run.

The predictions are computed a chunk of pairs at a time and appended to a resumable side file
``<out stem>.partial.jsonl``; a rerun of the same command after an interruption reuses the rows
already there. ``--out`` is written atomically at the end, in the input's line order, and the
side file is then removed. With ``--skip-bad`` every bad sample (a malformed line or an
unreadable image) keeps its row at its line's position, with ``line`` and ``error``, and is also
listed in ``<out stem>.bad.jsonl``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from idiff_lib.answer.experiments.ensemble import predict_rows
from idiff_lib.answer.experiments.run_store import load_answer_run
from idiff_lib.answer.train import aspects
from idiff_lib.answer.train.head_member import release_chunk
from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import Pair, read_pairs

# Pairs predicted and saved to the side file at a time (an interruption loses at most one chunk).
CHUNK = 64


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``idiff answer predict``."""
    answer = sub.add_parser("answer", help="the answer model (A or B)")
    asub = answer.add_subparsers(dest="answer_command", required=True)
    pred = asub.add_parser("predict", help="predict A/B for every pair of a JSONL file with a trained run")
    pred.add_argument("--run", required=True, help="the run folder of notebook 02 (holds ensemble.json), or the chain's run folder")
    pred.add_argument("--data", required=True, help="a RAIM-PIQA JSONL file (labelled or unlabeled)")
    pred.add_argument("--out", required=True, help="where to write the predictions (JSONL, one object per pair)")
    pred.add_argument("--data-root", default=None, help="a folder to look for images in when the paths do not resolve")
    pred.add_argument("--batch-size", type=int, default=16)
    pred.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    pred.add_argument("--aspects", action="store_true",
                      help="add the evidence heads' per-aspect p(A better) and per-defect A - B severity to each row "
                           "(a run trained with method=heads on a data folder with meta/)")
    pred.add_argument("--skip-bad", action="store_true",
                      help="write an error row (and a line of <out stem>.bad.jsonl) for each bad pair instead of stopping")
    pred.set_defaults(func=_cli_predict)


def _side_file(out: str | Path, kind: str) -> Path:
    """``<out stem>.<kind>.jsonl`` next to `out` (``partial``: the resumable rows, ``bad``: the bad samples)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{kind}.jsonl")


def _check_args(args: argparse.Namespace) -> None:
    """Refuse arguments that would fail late or overwrite the input, naming the parameter."""
    if args.batch_size < 1:
        raise ParameterError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.device is not None:
        try:
            dev = torch.device(args.device)
        except RuntimeError:
            raise ParameterError(f"--device must be 'cpu' or 'cuda' (or 'cuda:N'), got {args.device!r}") from None
        if dev.type not in ("cpu", "cuda"):
            raise ParameterError(f"--device must be 'cpu' or 'cuda' (or 'cuda:N'), got {args.device!r}")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ParameterError("--device cuda: no CUDA device is available here; use --device cpu")
    data, out = Path(args.data), Path(args.out)
    if data.is_dir():
        raise DataError(data, "is a folder, not a JSONL file", "pass --data <file>.jsonl")
    if out.is_dir():
        raise DataError(out, "is a folder", "pass --out <file>.jsonl (the predictions file to write)")
    if data.exists() and out.exists() and out.resolve() == data.resolve():
        raise DataError(out, "--out is the --data file; writing it would replace the input",
                        "pass another --out path")
    for path in (out, _side_file(out, "partial"), _side_file(out, "bad")):
        storage.check_output_file(path, "--out", inputs=(data,))  # a writable folder, before any work


def _bad_row(err: DataError) -> dict[str, Any]:
    return {"id": None, "answer": None, "p_left": None, "line": err.line, "error": str(err)}


def _resume(partial: Path, key: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The rows (by line) already in the side file of this same input and run; else a fresh side file."""
    try:
        saved = storage.read_resumable_jsonl(partial)
    except DataError:
        saved = []  # a damaged side file is only a cache: start again
    if saved and saved[0] == {"resume": key}:
        return {r["line"]: r["row"] for r in saved[1:]}
    storage.write_jsonl(partial, [{"resume": key}])
    return {}


def _predict_all(args: argparse.Namespace, entries: list[tuple[int, Pair | DataError]],
                 partial: Path) -> list[dict[str, Any]]:
    """One row per entry, in order: predicted a chunk at a time, resumed from and saved to `partial`."""
    run = Path(args.run)
    ens = load_answer_run(run, device=args.device)
    evidence = aspects.load(run) if args.aspects else None
    key = {"data": storage.file_sha256(args.data), "run": storage.file_sha256(ens.run_dir / layout.ENSEMBLE_FILE),
           "data_root": args.data_root, "skip_bad": bool(args.skip_bad), "aspects": bool(args.aspects)}
    cache: dict = {}
    done = _resume(partial, key)
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start:start + CHUNK]
        if all(line in done for line, _ in chunk):
            continue
        good = [item for _, item in chunk if isinstance(item, Pair)]
        rows = predict_rows(ens, good, batch_size=args.batch_size, skip_bad=args.skip_bad, cache=cache)
        if evidence is not None:
            ok = [pair for pair, row in zip(good, rows) if row.get("error") is None]
            found = {r["id"]: r for r in evidence.predict(ok, cache)}
            for row in rows:
                row.update({k: v for k, v in found.get(row["id"], {}).items() if k != "id"})
        release_chunk(cache)
        by_line = {pair.line: row for pair, row in zip(good, rows)}
        for line, item in chunk:
            row = by_line[line] if isinstance(item, Pair) else _bad_row(item)
            storage.append_jsonl(partial, {"line": line, "row": row})
            done[line] = row
    return [done[line] for line, _ in entries]


def _cli_predict(args: argparse.Namespace) -> int:
    _check_args(args)
    # without --skip-bad a missing image stops the command before any work; with it, it is one bad row
    pairs = read_pairs(args.data, data_root=args.data_root, skip_bad=args.skip_bad, require_images=not args.skip_bad)
    entries = sorted([(p.line or 0, p) for p in pairs] + [(e.line or 0, e) for e in pairs.skipped],
                     key=lambda e: e[0])
    partial, bad_path = _side_file(args.out, "partial"), _side_file(args.out, "bad")
    rows = _predict_all(args, entries, partial)
    bad = [{"line": r.get("line"), "id": r.get("id"), "error": r["error"]} for r in rows if r.get("error") is not None]
    if args.skip_bad:
        storage.write_jsonl(bad_path, bad)
    predicted = len(rows) - len(bad)
    if not predicted:
        partial.unlink()
        where = f"; every one is listed in {bad_path}" if bad else ""
        raise DataError(args.data, f"no pair could be predicted ({len(rows)} pair(s) read{where})",
                        "fix the file and the image paths (or pass --data-root <folder with the images>); "
                        f"{args.out} was not written")
    storage.write_jsonl(args.out, rows)
    partial.unlink()
    labelled = [r for r in rows if r.get("label") is not None and r.get("answer") is not None]
    msg = f"wrote {len(rows)} predictions to {args.out}"
    if labelled:
        acc = sum(r["answer"] == r["label"] for r in labelled) / len(labelled)
        msg += f" (accuracy {acc:.3f} on {len(labelled)} labelled pairs)"
    if bad:
        msg += f"; {len(bad)} bad pair(s) reported in 'error' and in {bad_path}"
    print(msg)
    return 0
