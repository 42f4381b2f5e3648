"""``idiff score``: score predicted rationales against references (`idiff_lib.scoring.scorers`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from idiff_lib.core.errors import OfflineError
from idiff_lib.scoring import scorers
from idiff_lib.scoring.combined import parse_weights
from idiff_lib.scoring.judge import make_judge
from idiff_lib.scoring.text_metrics import DEFAULT_SEMANTIC_MODEL, resolve_semantic_model


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """``idiff score --pred PRED.jsonl --ref REF.jsonl [--out DIR] [--semantic/--no-semantic] [--judge ...]``."""
    p = subparsers.add_parser("score", help="score predicted rationales against references",
                              description=scorers.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, help="predictions JSONL: {id, completion} rows or RAIM SFT/GRPO records")
    p.add_argument("--ref", required=True, help="references: a RAIM-PIQA SFT or GRPO JSONL")
    p.add_argument("--out", default=None, help="folder for scores.json, per_sample.csv, aspects.csv "
                   "(default: beside --pred, <pred stem>_scores/)")
    p.add_argument("--semantic", action=argparse.BooleanOptionalAction, default=None,
                   help="sentence-embedding similarity (default: on when the model is available)")
    p.add_argument("--semantic-model", default=None, help="sentence-transformers name or folder "
                   f"(default: {DEFAULT_SEMANTIC_MODEL})")
    p.add_argument("--judge", default=None, help="LLM judge: a local HF model folder/name, or an "
                   "OpenAI-compatible base URL (http://host:port/v1); off when not given")
    p.add_argument("--judge-model", default=None, help="model name to request from a judge endpoint")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="environment variable that holds the endpoint's API key, if it needs one")
    p.add_argument("--weights", default=None, help="combined-score weights, e.g. "
                   "accuracy=0.5,bleu4=0.25,rouge_l=0.25 (the official weights are not public)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for accuracy intervals")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cli_score)


def _semantic_available(model: str | None) -> bool:
    try:
        resolve_semantic_model(model)
        return True
    except OfflineError:
        return False


def _cli_score(args: argparse.Namespace) -> int:
    pred = Path(args.pred)
    out = Path(args.out) if args.out else pred.parent / f"{pred.stem}_scores"
    semantic = args.semantic if args.semantic is not None else _semantic_available(args.semantic_model)
    judge = None
    if args.judge:
        judge = make_judge(args.judge, model=args.judge_model, api_key_env=args.judge_api_key_env)
    result = scorers.score_files(pred, args.ref, semantic=semantic, semantic_model=args.semantic_model, judge=judge,
                                 judge_cache=out / "judge_cache.jsonl" if judge else None,
                                 weights=parse_weights(args.weights), bootstrap=args.bootstrap, seed=args.seed)
    paths = result.save(out)
    m = result.metrics
    acc = m["accuracy"]["overall"]
    print(f"{m['n']} pairs: accuracy {acc['value']:.3f} [{acc['ci_low']:.3f}, {acc['ci_high']:.3f}], "
          f"BLEU-4 {m['bleu4']['corpus']:.3f}, ROUGE-L {m['rouge_l']['f']:.3f}, "
          f"aspect F1 {m['aspects']['micro']['f1']:.3f}, format failures {m['format']['failures']}")
    print(f"wrote {paths['scores']} and {paths['per_sample']}")
    return 0
