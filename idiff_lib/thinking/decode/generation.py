"""Writing rationales: greedy decoding, completion repair, resumable output files and one ladder row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import LogitsProcessorList

from idiff_lib.core import storage
from idiff_lib.core.ontology import SIDE_NAMES, SUMMARY_HEADING
from idiff_lib.core.progress import progress_bar
from idiff_lib.core.vocabulary import BAD_VERBS, GOOD_VERBS, INTENSITY
from idiff_lib.data import pairs as pairs_mod  # alias: 'pairs' names pair lists in this module
from idiff_lib.scoring.controls import PROMPT_VERDICT_SOURCES
from idiff_lib.scoring.verdicts import read_verdict
from idiff_lib.thinking.decode.evaluation import format_ok, score_completions
from idiff_lib.thinking.prompting import prompts as prompts_mod  # alias: 'prompts' names built prompts in this module
from idiff_lib.thinking.prompting.evidence import parse_evidence
from idiff_lib.thinking.prompting.side_inputs import read_answers
from idiff_lib.thinking.train.encoding import collate, context_length, examples_for


class AgreementConstraint:
    """Structure-constrained decoding: the ``Global Overall`` line and ``<answer>`` must agree.

    A ``prefix_allowed_tokens_fn`` for ``transformers``' ``generate`` (its
    `PrefixConstrainedLogitsProcessor`), so the decoding loop, the KV cache and batching stay the
    library's. Per row it reads the text generated so far and forces a short continuation where the
    grammar fixes one:

    - a row whose verdict is given (answer-aware stages, `answers`): right after it writes
      ``Global Overall:``, the words `` Image X (Side) is better overall`` naming that verdict;
    - every row: right after ``</thinking>``, ``\n<answer>X</answer>`` with X the verdict of its
      ``Global Overall`` line (`idiff_lib.scoring.verdicts.read_verdict`; the given verdict, else
      the row's own, else `fallback`), then the end of the text.
    - **copy-through** (a row with `evidence`, the `AspectVerdict`s of its prompt's evidence block):
      the rationale's lines are the evidence's, in its order. Each line starts with the evidence
      line's heading and the side it favours, ``Face Texture: Image B (Right)``, and the model writes
      the rest of the sentence, except that the clause after the named side may not open with a word
      the house uses only for a defect (`references.INTENSITY`, a `BAD_VERBS` verb that no good side
      takes). After the last line comes ``Global Overall:``, and the end of that
      line closes the rationale (``</thinking>``); until then no token holding ``<`` (a tag) and no
      end of text may be written, so a rationale cannot close before its Overall line. The model writes the wording; the verdicts are the
      evidence's unless its sentence turns against the named side anyway (the share that does not:
      `idiff_lib.thinking.prompting.evidence.evidence_agreement`), so verdict accuracy then mostly measures the
      aspect heads. This is the pointer idea of copy mechanisms (See et al., ACL 2017), applied to the
      part of each line the evidence fixes.

    Elsewhere every token is allowed: the lines themselves are the model's.
    """

    def __init__(self, tokenizer, prompt_length: int, answers: Sequence[str | None], fallback: str = "A",
                 evidence: Sequence[Sequence | None] | None = None):
        self.tokenizer, self.prompt_length = tokenizer, prompt_length
        self.answers, self.fallback = list(answers), fallback
        self.evidence = list(evidence) if evidence is not None else [None] * len(self.answers)
        self.line: dict[int, int] = {}  # copy-through: the evidence lines started so far, per row
        self.seen: dict[int, int] = {}  # copy-through: the text length at the last line start handled
        self.clause: dict[int, int] = {}  # copy-through: where the named better side's clause starts, per row
        self.eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
        self.open_words = self._open_words(tokenizer)
        self.open_vocab = torch.arange(len(tokenizer))[self.open_words]  # copy-through lines before the Overall line
        self.winner_words = self._winner_words(tokenizer)
        self.summary = f"{SUMMARY_HEADING}:"
        self.vocab = torch.arange(len(tokenizer))  # "any token" (a tensor: the processor indexes with it fast)
        self.queue: dict[int, list[int]] = {}
        self.done: dict[int, set[str]] = {}

    def _force(self, row: int, text: str, end: bool = False) -> None:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        self.queue[row] = list(ids) + ([self.eos] if end and self.eos is not None else [])

    def _verdict(self, row: int, text: str) -> str:
        if self.answers[row] in pairs_mod.ANSWERS:
            return str(self.answers[row])
        overall = [ln for ln in text.splitlines() if ln.strip().startswith(self.summary)]
        verdict = read_verdict(overall[-1].split(":", 1)[1])[0] if overall else None
        return verdict if verdict in pairs_mod.ANSWERS else self.fallback

    def _open_words(self, tokenizer) -> torch.Tensor:
        """A mask of the tokens a copied-through rationale may write before its Overall line: none holding
        ``<`` (``</thinking>``, ``<answer>``, chat markers) and not the end of text."""
        keep = torch.tensor(["<" not in str(t) for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))],
                            dtype=torch.bool)
        if self.eos is not None and self.eos < len(keep):
            keep[self.eos] = False
        return keep

    def _winner_words(self, tokenizer) -> torch.Tensor:
        """The tokens the better side's clause may use: all but the first tokens of the house's words for a
        defect's strength and of its verbs only a defect takes (`references.INTENSITY`, `BAD_VERBS`), and
        none that closes the rationale (`_open_words`)."""
        words = [w for level in INTENSITY.values() for w in level] + [v.split()[0] for v in set(BAD_VERBS) - set(GOOD_VERBS)]
        banned = {ids[0] for w in words for form in (w, f" {w}", w.capitalize(), f" {w.capitalize()}")
                  if (ids := tokenizer(form, add_special_tokens=False).input_ids)}
        keep = self.open_words.clone()
        keep[sorted(i for i in banned if i < len(tokenizer))] = False
        return torch.arange(len(tokenizer))[keep]

    def _in_winner_clause(self, row: int, text: str) -> bool:
        """Whether the text is still in the clause that follows a copied-through ``Image X (Side)``."""
        start = self.clause.get(row)
        if start is None:
            return False
        tail = text[start:]
        if "\n" in tail or re.search(r"[,.;]|\b(while|whereas|but|in contrast|compared)\b", tail):
            del self.clause[row]
            return False
        return True

    def _copy_through(self, row: int, text: str, done: set[str]) -> list[int] | None:
        """At the start of the rationale or of a line: the next evidence line's heading and side, or the Overall heading."""
        if text and not text.endswith("\n") or self.seen.get(row) == len(text):
            return None
        self.seen[row] = len(text)
        lines = self.evidence[row]
        k = self.line.get(row, 0)
        start = "" if text.lstrip().startswith("<thinking>") else "<thinking>\n"
        if k < len(lines):
            self.line[row] = k + 1
            v = lines[k]
            line = f"{start}{v.heading}: Image {v.winner} ({'Left' if v.winner == 'A' else 'Right'})"
            self._force(row, line)
            self.clause[row] = len(text) + len(line)
        else:
            if self.answers[row] not in pairs_mod.ANSWERS:
                done.add("closing")  # the model writes the Overall line's verdict; its end closes the rationale
            self._force(row, f"{start}{self.summary}")
        return [self.queue[row].pop(0)]

    def __call__(self, row: int, input_ids: torch.Tensor) -> list[int]:
        queue = self.queue.get(row)
        if queue:
            return [queue.pop(0)]
        done = self.done.setdefault(row, set())
        if "answer" in done:
            return [self.eos] if self.eos is not None else self.vocab
        text = self.tokenizer.decode(input_ids[self.prompt_length:], skip_special_tokens=True)
        if self.evidence[row] and "overall" not in done and "closing" not in done:
            forced = self._copy_through(row, text, done)
            if forced is not None:
                return forced
        if self._in_winner_clause(row, text):
            return self.winner_words
        if "closing" in done and text.endswith("\n") and "</thinking>" not in text:
            self._force(row, "</thinking>")
            return [self.queue[row].pop(0)]
        answer = self.answers[row]
        if answer in pairs_mod.ANSWERS and "overall" not in done and text.rstrip().endswith(self.summary):
            done.update(("overall", "closing") if self.evidence[row] else ("overall",))
            self._force(row, f" Image {answer} ({SIDE_NAMES[answer]}) is better overall")
            return [self.queue[row].pop(0)]
        if text.rstrip().endswith("</thinking>"):
            done.add("answer")
            self._force(row, f"\n<answer>{self._verdict(row, text)}</answer>", end=True)
            return [self.queue[row].pop(0)]
        if self.evidence[row] and "overall" not in done and "closing" not in done:
            return self.open_vocab  # the rationale stays open until its Overall line
        return self.vocab


class GeneratedNoRepeatNGram:
    """A ``transformers`` logits processor: no token n-gram of size `size` twice *in the generated text*.

    ``generate``'s own ``no_repeat_ngram_size`` reads the whole sequence of a decoder-only model, the
    prompt included, so it forbids copying any `size` tokens of the prompt. The S3/S4 evidence lines
    (``\nGlobal Sharpness: Image A (Left)`` is 10 SmolLM2 tokens) are what a rationale should say,
    so at size 10 it banned the closing ``)`` or the side after a heading copied from the evidence,
    and the model wrote the other letter or side. This guard reads only the tokens after
    `prompt_length`: it still breaks the loops of a small model, and leaves the evidence free to copy.
    """

    def __init__(self, size: int, prompt_length: int):
        self.size, self.prompt_length = int(size), int(prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = self.size
        generated = input_ids[:, self.prompt_length:]
        if n < 1 or generated.shape[1] < n:
            return scores
        for row, tokens in enumerate(generated.tolist()):
            tail = tuple(tokens[len(tokens) - n + 1:])
            banned = [tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == tail]
            if banned:
                scores[row, banned] = -float("inf")
        return scores


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
    constrained: bool = False,
    answers: Sequence[str | None] | None = None,
    evidence: Sequence[Sequence | None] | None = None,
    fallback_answer: str = "A",
    progress: bool = True,
) -> list[torch.Tensor]:
    """Greedy decoding for encoded prompts (no targets): the new token ids of each example.

    Batched, with ``transformers``' KV cache (``generate``).

    The padding a batch adds after an example has finished is removed, so the lengths count the
    tokens each example generated (its end-of-turn token included when the pad token differs).

    Args:
        stop_after_rationale: stop at ``</thinking>`` (answer-aware stages append the answer).
        no_repeat_ngram_size: forbid repeating any token n-gram of this size within the generated
            text (0 = off; `GeneratedNoRepeatNGram`): a guard against the loops small models fall
            into under greedy decoding that leaves the prompt's evidence free to copy.
        constrained: structure-constrained decoding (`AgreementConstraint`); `answers` gives each
            example's verdict when its prompt holds one (None: the model's own Overall line decides),
            `evidence` each example's evidence lines to copy through (None or empty: none).
    """
    tok = processor.tokenizer
    model.eval()
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tok.pad_token_id}
    if stop_after_rationale:
        kwargs.update(stop_strings=["</thinking>"], tokenizer=tok)
    for start in progress_bar(range(0, len(examples), batch_size), desc="generate", disable=not progress,
                              leave=False):
        chunk = [{k: v for k, v in ex.items() if k not in ("id", "labels")} for ex in examples[start:start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk, tok.pad_token_id, "left").items()}
        extra: dict[str, Any] = {}
        if no_repeat_ngram_size:  # over the generated tokens only (`GeneratedNoRepeatNGram`)
            extra["logits_processor"] = LogitsProcessorList(
                [GeneratedNoRepeatNGram(no_repeat_ngram_size, batch["input_ids"].shape[1])])
        if constrained:
            rows = list(answers[start:start + batch_size]) if answers is not None else [None] * len(chunk)
            lines = list(evidence[start:start + batch_size]) if evidence is not None else None
            extra["prefix_allowed_tokens_fn"] = AgreementConstraint(tok, batch["input_ids"].shape[1], rows, fallback_answer,
                                                                    lines)
        ids = model.generate(**batch, **kwargs, **extra)
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
    constrained: bool = False,
    answers: Sequence[str | None] | None = None,
    evidence: Sequence[Sequence | None] | None = None,
    fallback_answer: str = "A",
    progress: bool = True,
) -> list[str]:
    """Greedy decoding for encoded prompts (no targets); returns the new text of each example.

    See `generate_ids` for the arguments; special tokens are left out of the text.
    """
    ids = generate_ids(model, processor, examples, batch_size=batch_size, max_new_tokens=max_new_tokens,
                       stop_after_rationale=stop_after_rationale, no_repeat_ngram_size=no_repeat_ngram_size,
                       constrained=constrained, answers=answers, evidence=evidence, fallback_answer=fallback_answer,
                       progress=progress)
    return processor.tokenizer.batch_decode([row.tolist() for row in ids], skip_special_tokens=True)


def finish_completion(raw: str, answer: str | None = None, fallback_answer: str = "A") -> tuple[str, dict]:
    """Turn generated text into a well-formed completion.

    With `answer` (answer-aware stages) the rationale is the generated text up to ``</thinking>``
    and the answer is `answer`. Otherwise the model's own answer is kept when it is A or B, else
    `fallback_answer` is used (and reported).

    Returns:
        (completion, info) with info = {"raw_format_ok", "answer_source"}; ``raw_format_ok`` is the
        challenge format check on what the model wrote (plus the given answer in answer-aware stages);
        ``answer_source`` is "model", "fallback" or, for the prompt's verdict, "answer_model" (wrap the
        writer in `with_verdict_sources` to record where that verdict came from).
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


def verdict_sources(pairs: Sequence[pairs_mod.Pair], preds_file: str | Path | None,
                    fallback: str = "reference") -> dict[str, str]:
    """Per pair, the `controls.PROMPT_VERDICT_SOURCES` entry its S4 prompt's verdict comes from, by the rule of
    `side_inputs.s4_answers`: a prediction in `preds_file` first, else the `fallback` ("reference"
    when the pair has an A/B reference answer, else "prior")."""
    model, reference, prior = PROMPT_VERDICT_SOURCES
    predicted = read_answers(preds_file) if preds_file and Path(preds_file).exists() else {}
    return {p.id: model if p.id in predicted
            else reference if fallback == "reference" and p.answer in pairs_mod.ANSWERS
            else prior for p in pairs}


def with_verdict_sources(writer, sources: Mapping[str, str]):
    """Wrap a `write_rationales` writer so that a row whose answer is its prompt's verdict (the writer
    records ``"answer_model"``) records where that verdict came from (`verdict_sources`), so a fallback
    verdict is never counted as the Answer Model's. Other rows pass unchanged."""

    def run(part: Sequence[pairs_mod.Pair], prompts: Mapping[str, prompts_mod.Prompt]) -> list[tuple[str, dict]]:
        out = []
        for pair, (completion, info) in zip(part, writer(part, prompts)):
            if info.get("answer_source") == PROMPT_VERDICT_SOURCES[0]:
                info = {**info, "answer_source": sources.get(pair.id, PROMPT_VERDICT_SOURCES[0])}
            out.append((completion, info))
        return out

    return run


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
                 progress: bool = True, meta: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                 chunk: int = 8) -> dict:
    """One row of notebook 03's stage ladder: write `system`'s rationales for `pairs` (resumably) and score them.

    Returns ``{"system", "stage", **score_completions(...), "raw_format_pass"}``; ``raw_format_pass``
    is the share of outputs whose raw text (before `finish_completion`) passed the format check.
    With `meta` (pair id -> ground-truth comparisons, `idiff_lib.data.meta.split_comparisons`) the
    row's ``verdict_accuracy`` and ``meta_coverage`` are filled (else None). `chunk`: pairs per
    writer call (and per resumable append): a model writer's batch is at most this.
    """
    write_rationales(pairs, prompts, out_path, writer, progress=progress, chunk=chunk)
    written = storage.read_jsonl_rows(out_path)
    score = score_completions({r["id"]: r["completion"] for r in written}, pairs, meta=meta)
    score["raw_format_pass"] = sum(bool(r.get("raw_format_ok")) for r in written) / max(1, len(written))
    return {"system": system, "stage": stage, **score}


def model_writer(model, processor, *, batch_size: int = 8, max_new_tokens: int = 256, max_pixels: int | None = None,
                 fallback_answer: str = "A", no_repeat_ngram_size: int = 0, constrained: bool = False,
                 copy_evidence: bool = False):
    """A `write_rationales` writer that runs the model (answer-aware when the prompt holds an answer).

    With `constrained`, decoding follows `AgreementConstraint` (the Overall line and the answer agree);
    with `copy_evidence` too, a prompt's evidence lines (`idiff_lib.thinking.prompting.evidence.parse_evidence`)
    are copied through: each rationale line starts with an evidence line's heading and favoured side.

    A prompt longer than the model's context less `max_new_tokens` is a `DataError` naming the pair and
    the token counts (`idiff_lib.thinking.train.encoding.check_prompt_length`): generation never overruns the
    position table, and no prompt is cut.
    """
    context = context_length(model)
    max_length = context - max_new_tokens if context is not None else None

    def run(part: Sequence[pairs_mod.Pair], prompts: Mapping[str, prompts_mod.Prompt]) -> list[tuple[str, dict]]:
        examples = examples_for(part, prompts, processor, with_targets=False, max_pixels=max_pixels,
                                max_length=max_length, progress=False)
        aware = any(prompts[p.id].answer is not None for p in part)
        raw = generate(model, processor, examples, batch_size=batch_size, max_new_tokens=max_new_tokens,
                       stop_after_rationale=aware and not constrained, no_repeat_ngram_size=no_repeat_ngram_size,
                       constrained=constrained, answers=[prompts[p.id].answer for p in part],
                       evidence=[parse_evidence(prompts[p.id].user) for p in part] if copy_evidence else None,
                       fallback_answer=fallback_answer, progress=False)
        return [finish_completion(text, prompts[p.id].answer, fallback_answer) for p, text in zip(part, raw)]

    return run
