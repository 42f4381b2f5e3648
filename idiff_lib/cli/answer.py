"""``idiff answer ...``: predict A/B for a JSONL file of pairs with a trained Answer run."""

from __future__ import annotations

import argparse

from idiff_lib.answer.ensemble import predict_rows
from idiff_lib.answer.run_store import load_answer_run
from idiff_lib.core import storage
from idiff_lib.data.pairs import read_pairs


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
    pred.add_argument("--skip-bad", action="store_true", help="write an error row for unreadable pairs instead of stopping")
    pred.set_defaults(func=_cli_predict)


def _cli_predict(args: argparse.Namespace) -> int:
    pairs = read_pairs(args.data, data_root=args.data_root, skip_bad=args.skip_bad)
    ens = load_answer_run(args.run, device=args.device)
    rows = predict_rows(ens, pairs, batch_size=args.batch_size, skip_bad=args.skip_bad)
    for err in pairs.skipped:
        rows.append({"id": None, "answer": None, "p_left": None, "error": str(err)})
    storage.write_jsonl(args.out, rows)
    labelled = [r for r in rows if r.get("label") is not None and r.get("answer") is not None]
    msg = f"wrote {len(rows)} predictions to {args.out}"
    if labelled:
        acc = sum(r["answer"] == r["label"] for r in labelled) / len(labelled)
        msg += f" (accuracy {acc:.3f} on {len(labelled)} labelled pairs)"
    bad = sum(r.get("error") is not None for r in rows)
    if bad:
        msg += f"; {bad} bad pair(s) reported in 'error'"
    print(msg)
    return 0
