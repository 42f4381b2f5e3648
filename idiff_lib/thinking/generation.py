"""Writing rationales: greedy decoding, completion repair, resumable output files and one ladder row."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from idiff_lib.core import storage
from idiff_lib.data import pairs as pairs_mod
from idiff_lib.thinking import prompts as prompts_mod
from idiff_lib.thinking.encoding import collate, context_length, examples_for
from idiff_lib.thinking.evaluation import format_ok, score_completions


@torch.no_grad()
def generate_ids(
    model: torch.nn.Module,
    processor,
    examples: Sequence[dict],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    stop_after_rationale: bool = False,
    no_repeat_ngram_size: int = 0,
    progress: bool = True,
) -> list[torch.Tensor]:
    """Greedy decoding for encoded prompts (no targets): the new token ids of each example.

    The padding a batch adds after an example has finished is removed, so the lengths count the
    tokens each example generated (its end-of-turn token included when the pad token differs).

    Args:
        stop_after_rationale: stop at ``</thinking>`` (answer-aware stages append the answer).
        no_repeat_ngram_size: forbid repeating any token n-gram of this size (0 = off); a guard
            against the loops small models fall into under greedy decoding.
    """
    from idiff_lib.core.progress import progress_bar

    tok = processor.tokenizer
    model.eval()
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tok.pad_token_id}
    if no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = no_repeat_ngram_size
    if stop_after_rationale:
        kwargs.update(stop_strings=["</thinking>"], tokenizer=tok)
    for start in progress_bar(range(0, len(examples), batch_size), desc="generate", disable=not progress,
                              leave=False):
        chunk = [{k: v for k, v in ex.items() if k not in ("id", "labels")} for ex in examples[start:start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk, tok.pad_token_id, "left").items()}
        ids = model.generate(**batch, **kwargs)
        for row in ids[:, batch["input_ids"].shape[1]:].cpu():
            kept = (row != tok.pad_token_id).nonzero()
            out.append(row[:int(kept[-1]) + 1] if len(kept) else row[:0])
    return out


def generate(
    model: torch.nn.Module,
    processor,
    examples: Sequence[dict],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    stop_after_rationale: bool = False,
    no_repeat_ngram_size: int = 0,
    progress: bool = True,
) -> list[str]:
    """Greedy decoding for encoded prompts (no targets); returns the new text of each example.

    See `generate_ids` for the arguments; special tokens are left out of the text.
    """
    ids = generate_ids(model, processor, examples, batch_size=batch_size, max_new_tokens=max_new_tokens,
                       stop_after_rationale=stop_after_rationale, no_repeat_ngram_size=no_repeat_ngram_size,
                       progress=progress)
    return processor.tokenizer.batch_decode([row.tolist() for row in ids], skip_special_tokens=True)


def finish_completion(raw: str, answer: str | None = None, fallback_answer: str = "A") -> tuple[str, dict]:
    """Turn generated text into a well-formed completion.

    With `answer` (answer-aware stages) the rationale is the generated text up to ``</thinking>``
    and the answer is `answer`. Otherwise the model's own answer is kept when it is A or B, else
    `fallback_answer` is used (and reported).

    Returns:
        (completion, info) with info = {"raw_format_ok", "answer_source"}; ``raw_format_ok`` is the
        challenge format check on what the model wrote (plus the given answer in answer-aware stages).
    """
    if answer is not None:
        rationale = raw.split("</thinking>")[0]
        raw_full = rationale + "</thinking>\n" + f"<answer>{answer}</answer>" if "</thinking>" in raw else raw
        parsed = pairs_mod.parse_completion(rationale + "</thinking>")
        return pairs_mod.format_completion(parsed.thinking, answer), {
            "raw_format_ok": format_ok(raw_full), "answer_source": "answer_model"}
    parsed = pairs_mod.parse_completion(raw)
    source = "model" if parsed.answer else "fallback"
    return pairs_mod.format_completion(parsed.thinking, parsed.answer or fallback_answer), {
        "raw_format_ok": format_ok(raw), "answer_source": source}


def done_ids(path: str | Path) -> set[str]:
    """Ids already in a resumable output; a line cut by a crash is removed from the file first."""
    return {row["id"] for row in storage.read_resumable_jsonl(path)}


def write_rationales(
    pairs: Sequence[pairs_mod.Pair],
    prompts: Mapping[str, prompts_mod.Prompt],
    out_path: str | Path,
    writer,
    *,
    chunk: int = 8,
    progress: bool = True,
) -> dict:
    """Write one ``{"id", "completion", ...}`` row per pair, resumably: ids already written are skipped.

    Rows are appended with fsync a chunk at a time, so an interruption loses at most one chunk.

    Args:
        writer: a callable (pairs, prompts) -> list of (completion, info) for that chunk.
    """
    from idiff_lib.core.progress import progress_bar

    done = done_ids(out_path)
    todo = [p for p in pairs if p.id not in done]
    bar = progress_bar(total=len(pairs), initial=len(pairs) - len(todo), desc=f"rationales -> {Path(out_path).name}",
                       disable=not progress, leave=False)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        for pair, (completion, info) in zip(part, writer(part, prompts)):
            storage.append_jsonl(out_path, {"id": pair.id, "completion": completion, **info})
        bar.update(len(part))
    bar.close()
    return {"written": len(todo), "skipped": len(pairs) - len(todo)}


def ladder_stage(system: str, stage: str, pairs: Sequence[pairs_mod.Pair],
                 prompts: Mapping[str, prompts_mod.Prompt], out_path: str | Path, writer,
                 progress: bool = True, meta: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> dict:
    """One row of notebook 03's stage ladder: write `system`'s rationales for `pairs` (resumably) and score them.

    Returns ``{"system", "stage", **score_completions(...), "raw_format_pass"}``; ``raw_format_pass``
    is the share of outputs whose raw text (before `finish_completion`) passed the format check.
    With `meta` (pair id -> ground-truth comparisons, `idiff_lib.data.meta.split_comparisons`) the
    row's ``verdict_accuracy`` and ``meta_coverage`` are filled (else None).
    """
    write_rationales(pairs, prompts, out_path, writer, progress=progress)
    written = storage.read_jsonl_rows(out_path)
    score = score_completions({r["id"]: r["completion"] for r in written}, pairs, meta=meta)
    score["raw_format_pass"] = sum(bool(r.get("raw_format_ok")) for r in written) / max(1, len(written))
    return {"system": system, "stage": stage, **score}


def model_writer(model, processor, *, batch_size: int = 8, max_new_tokens: int = 256, max_pixels: int | None = None,
                 fallback_answer: str = "A", no_repeat_ngram_size: int = 0):
    """A `write_rationales` writer that runs the model (answer-aware when the prompt holds an answer).

    A prompt longer than the model's context less `max_new_tokens` is cut by the rule of
    `idiff_lib.thinking.encoding.fit_prompt` (the middle of its longest plain-text run; never image or
    chat tokens), with a warning naming the pair, so generation never overruns the position table.
    """
    context = context_length(model)
    max_length = context - max_new_tokens if context is not None else None

    def run(part: Sequence[pairs_mod.Pair], prompts: Mapping[str, prompts_mod.Prompt]) -> list[tuple[str, dict]]:
        examples = examples_for(part, prompts, processor, with_targets=False, max_pixels=max_pixels,
                                max_length=max_length, progress=False)
        aware = any(prompts[p.id].answer is not None for p in part)
        raw = generate(model, processor, examples, batch_size=batch_size, max_new_tokens=max_new_tokens,
                       stop_after_rationale=aware, no_repeat_ngram_size=no_repeat_ngram_size, progress=False)
        return [finish_completion(text, prompts[p.id].answer, fallback_answer) for p, text in zip(part, raw)]

    return run
