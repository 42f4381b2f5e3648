"""``idiff export``: a trained run's answers and rationales as a RAIM JSONL submission."""

from __future__ import annotations

import argparse
import json

from idiff_lib.chain.export import export
from idiff_lib.thinking.prompting.prompts import STAGES


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``idiff`` command."""
    p = sub.add_parser("export", help="write a run's answers and rationales as a RAIM JSONL submission")
    p.add_argument("--run", required=True, help="the chain's run folder (holds 02_train_answer_model, 03_tune_thinking_model)")
    p.add_argument("--data", required=True, help="the pairs to answer: a RAIM-PIQA JSONL file, labelled or not")
    p.add_argument("--out", required=True, help="the submission JSONL to write (side files go next to it)")
    p.add_argument("--stage", choices=STAGES, help="the Thinking Model stage (default: the last trained)")
    p.add_argument("--writer", default="model", choices=("model", "template"),
                   help="'model': the run's Thinking Model; 'template': the template writer")
    p.add_argument("--data-root", help="a folder to look for images in when the paths do not resolve")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--limit", type=int, help="export the first N pairs only")
    p.set_defaults(func=_cli_export)


def _cli_export(args: argparse.Namespace) -> int:
    summary = export(args.run, args.data, args.out, stage=args.stage, writer=args.writer, data_root=args.data_root,
                     batch_size=args.batch_size, device=args.device, limit=args.limit)
    print(json.dumps(summary, indent=1))
    return 0
