"""The no-repeat guard of greedy decoding reads the generated tokens only, never the prompt's."""

from __future__ import annotations

import torch
from transformers import NoRepeatNGramLogitsProcessor

from idiff_lib.thinking.decode.generation import GeneratedNoRepeatNGram

VOCAB = 12


def _banned(processor, ids: list[list[int]]) -> list[list[int]]:
    scores = processor(torch.tensor(ids), torch.zeros(len(ids), VOCAB))
    return [torch.isinf(row).nonzero().flatten().tolist() for row in scores]


def test_an_ngram_of_the_prompt_may_be_copied():
    # The prompt holds 5 6 7 8 (an evidence line); the model has written 5 6 7 and may close it with 8.
    ids = [[1, 5, 6, 7, 8, 2, 5, 6, 7]]
    assert _banned(NoRepeatNGramLogitsProcessor(4), ids) == [[8]]  # transformers' guard reads the prompt too
    assert _banned(GeneratedNoRepeatNGram(4, prompt_length=6), ids) == [[]]


def test_a_repeat_within_the_generated_text_is_still_banned():
    ids = [[1, 1, 3, 4, 5, 9, 3, 4], [1, 1, 3, 4, 5, 9, 9, 9]]
    assert _banned(GeneratedNoRepeatNGram(3, prompt_length=2), ids) == [[5], [9]]
    assert _banned(GeneratedNoRepeatNGram(4, prompt_length=2), ids) == [[], []]  # 3 4 5 / 9 9 9 not seen as 4-grams


def test_short_generations_and_size_one():
    assert _banned(GeneratedNoRepeatNGram(3, prompt_length=3), [[4, 4, 4, 7]]) == [[]]  # one token written
    assert _banned(GeneratedNoRepeatNGram(1, prompt_length=1), [[4, 2, 3]]) == [[2, 3]]  # no token twice
