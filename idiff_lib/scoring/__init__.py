"""Rationale scoring, one idea per module.

- `parser` (with `verdicts`): each ``Region Attribute: text`` line read into an aspect and a verdict;
- `rewards`: the challenge baseline's format/accuracy rewards and the stricter format check;
- `text_metrics`: BLEU-4, ROUGE-L and the sentence-embedding similarity;
- `predictions`: predicted completions read from JSONL or rows;
- `scorers`: the scorer registry, `score` and `ScoreResult`; `combined`: the weighted score;
- `stats`: the pair and cluster (photo) bootstrap; `controls`: the shuffled-reference floor, wrong-side
  labels and the copied-accuracy label; `worked_pair`: the pair followed through the chain;
- `meta_verdicts`: each line's verdict against the benchmark's ground truth (verdict accuracy, meta coverage);
- `judge`: the optional LLM judge; `settings`: notebook 05's settings.
"""
