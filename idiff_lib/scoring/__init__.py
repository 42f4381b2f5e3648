"""Rationale scoring, one idea per module.

- `parser` (with `verdicts`): each ``Region Attribute: text`` line read into an aspect and a verdict;
- `rewards`: the challenge baseline's format/accuracy rewards and the stricter format check;
- `text_metrics`: BLEU-4, ROUGE-L and the sentence-embedding similarity;
- `predictions`: predicted completions read from JSONL or rows;
- `scorers`: the scorer registry, `score` and `ScoreResult`; `combined`: the weighted score;
- `stats`: the bootstrap; `judge`: the optional LLM judge; `settings`: notebook 05's settings.
"""
