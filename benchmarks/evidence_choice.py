"""How the S3/S4 evidence block is chosen: the template filled from it, scored on val, as JSON.

The evidence block (`idiff_lib.thinking.prompting.evidence.rank_aspects`) decides which aspects a rationale
discusses (presence heads), and what it says about each (verdict heads). Its three settings trade
coverage against precision: more lines cover more of the ground truth's comparisons, but each extra
line is on a less likely aspect, with a less sure verdict, and moves the text away from the
references' four-or-five lines (BLEU-4). This script fills the house template from the evidence
(`evidence.evidence_rationale`, the "template filled from the evidence" row of Table B, no language
model) for every setting of a small grid on the **val** split, with the reference answer as the
verdict, so the settings are chosen without looking at the test split.

Usage:
    python benchmarks/evidence_choice.py --run runs/cpu            # the run's saved heads (notebook 02)

Writes benchmarks/results/evidence_choice.json: one row per setting, and the references' own coverage.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from idiff_lib.answer.train import aspects
from idiff_lib.core import storage
from idiff_lib.core.errors import IdiffError
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists here
from idiff_lib.data.meta import split_comparisons
from idiff_lib.scoring.meta_verdicts import meta_verdict_scores
from idiff_lib.thinking.prompting import evidence
from idiff_lib.thinking.decode.evaluation import score_completions

LINES = (4, 5, 6)
WEIGHTS = (1.0, 2.0, 4.0)
MIN_PRESENCE = (0.0, 0.3)
KEYS = ("bleu4", "rouge_l", "verdict_accuracy", "meta_coverage")


def evaluate(run: Path, data_dir: Path, split: str) -> dict:
    model = aspects.load(run)
    pairs = pairs_mod.read_pairs(data_dir / f"{split}_sft.jsonl")
    meta = split_comparisons(data_dir, split)
    heads = {row["id"]: row for row in model.predict(pairs)}
    rows = []
    for lines, weight, min_presence in itertools.product(LINES, WEIGHTS, MIN_PRESENCE):
        completions = {}
        for p in pairs:
            verdicts = evidence.rank_aspects(p.category, heads[p.id], lines=lines, presence_weight=weight,
                                             min_presence=min_presence)
            rationale = evidence.evidence_rationale(p.category, verdicts, p.answer, seed=0)
            completions[p.id] = pairs_mod.format_completion(rationale, p.answer)
        score = score_completions(completions, pairs, meta=meta)
        rows.append({"lines": lines, "weight": weight, "min_presence": min_presence,
                     **{k: score.get(k) for k in KEYS}})
    references = meta_verdict_scores({p.id: p.thinking for p in pairs}, meta)
    return {"split": split, "pairs": len(pairs), "backbone": model.spec.backbone, "rows": rows,
            "references": {"verdict_accuracy": references["verdict_accuracy"],
                           "meta_coverage": references["meta_coverage"]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/cpu"), help="a run folder with notebook 02's aspect heads")
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/evidence_choice.json"))
    args = ap.parse_args(argv)
    try:
        result = evaluate(args.run, args.data, args.split)
    except IdiffError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    storage.write_json(args.out, result)
    for row in result["rows"]:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print(f"references: {result['references']}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
