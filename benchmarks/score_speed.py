"""How long `idiff_lib.scoring.scorers.score` takes on 1,000 pairs, without and with the embedding model.

Targets (issue 7): <= 10 s without the sentence-embedding model, <= 60 s with it, on 2 CPU cores.
The 1,000 pairs reuse real rationales (the public RAIM-PIQA ones when present, else data/demo's
test split) as references, and a shuffled copy as predictions, so lengths are realistic. Every
line gets its pair number appended, so all 2,000 texts and their lines are distinct and neither
the parser's cache nor the embedding cache can help. A second scoring of new predictions against
the same references (the stage-ladder case, references already embedded) is timed too. The
machine's load average is recorded, since the 2 cores are shared. Writes
``benchmarks/results/score_speed.json``.

Usage: ``python benchmarks/score_speed.py [--pairs 1000] [--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time

from idiff_lib.core import paths
from idiff_lib.scoring import scorers, text_metrics
from idiff_lib.core import storage
from idiff_lib.data.pairs import make_pair, read_pairs


def source_rationales() -> tuple[list[tuple[str, str]], str]:
    """(thinking, answer) pairs to build the benchmark from, and where they came from."""
    folder = paths.raim_dir()
    if folder is not None:
        pairs = read_pairs(folder / "train_sft_1536.jsonl")
        return [(p.thinking, p.answer) for p in pairs], str(folder / "train_sft_1536.jsonl")
    demo = paths.DEMO_DIR / "test_sft.jsonl"
    if demo.exists():
        pairs = read_pairs(demo)
        return [(p.thinking, p.answer) for p in pairs], str(demo)
    raise SystemExit("no rationales to benchmark on: need ../shared/raim_piqa or data/demo/test_sft.jsonl")


def _unique(thinking: str, mark: str) -> str:
    """Append a pair mark to every line, so no line or text repeats and no cache can help."""
    return "\n".join(f"{line.rstrip()} ({mark})" for line in thinking.splitlines() if line.strip())


def build(n: int, seed: int = 0, tag: str = ""):
    rationales, origin = source_rationales()
    rng = random.Random(seed)
    refs, preds = [], []
    for i in range(n):
        thinking, answer = rationales[i % len(rationales)]
        pid = f"{'p' if i % 4 else 's'}_{i:05d}"
        refs.append(make_pair([f"{pid}_merged_c0.jpg", f"{pid}_merged_c1.jpg"],
                              f"<thinking>\n{_unique(thinking, str(i))}\n</thinking>\n<answer>{answer}</answer>"))
        other, other_answer = rationales[rng.randrange(len(rationales))]
        preds.append({"id": pid, "completion": f"<thinking>\n{_unique(other, f'{i}{tag}')}\n</thinking>\n"
                                               f"<answer>{other_answer}</answer>"})
    return refs, preds, origin


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "score_speed.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    refs, preds, origin = build(args.pairs)
    t0, c0 = time.perf_counter(), time.process_time()
    plain = scorers.score(preds, refs)
    t_plain, c_plain = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    text_metrics.load_semantic_model(None)
    t_load = time.perf_counter() - t0
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    with_sem = scorers.score(preds, refs, semantic=True)
    t_sem, c_sem = time.perf_counter() - t0, time.process_time() - c0
    _, preds2, _ = build(args.pairs, seed=1, tag=" b")
    t0 = time.perf_counter()
    scorers.score(preds2, refs, semantic=True)
    t_warm = time.perf_counter() - t0
    result = {
        "pairs": args.pairs,
        "source": origin,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "seconds_without_semantic": round(t_plain, 3),
        "seconds_with_semantic": round(t_sem + t_load, 3),
        "seconds_semantic_model_load": round(t_load, 3),
        "seconds_with_semantic_references_cached": round(t_warm, 3),
        # CPU seconds of this process: less sensitive to other users of the shared cores than
        # wall time; with 2 busy threads, an idle machine's wall time is about half of it or more.
        "cpu_seconds_without_semantic": round(c_plain, 3),
        "cpu_seconds_with_semantic_excluding_load": round(c_sem, 3),
        "load_average_1_5_15min_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15min_after": [round(x, 2) for x in os.getloadavg()],
        "targets": {"without_semantic_s": 10, "with_semantic_s": 60},
        "meets_targets": {"without_semantic": t_plain <= 10, "with_semantic": t_sem + t_load <= 60},
        "check": {"bleu4_corpus": plain.metrics["bleu4"]["corpus"], "semantic_mean": with_sem.metrics["semantic"]["mean"]},
    }
    storage.write_json(args.out, result)
    print(f"{args.pairs} pairs: {t_plain:.2f} s without embeddings, {t_sem + t_load:.2f} s with "
          f"(model load {t_load:.2f} s), {t_warm:.2f} s with the references already embedded -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
