"""Rationale scoring: the structured parser, rewards, BLEU-4/ROUGE-L and the other scorers, the LLM judge."""
