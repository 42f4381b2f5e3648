"""Optional LLM judge of rationales, off by default.

LLM-as-a-judge (Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena",
NeurIPS 2023 Datasets and Benchmarks): a language model grades a candidate rationale against the
expert's on a fixed rubric. The NTIRE 2026 RAIM challenge uses an LLM judge in its final phase;
its prompt is not public, so `RUBRIC` is this workbench's own, fixed so that scores are
comparable between runs.

Two back ends, one interface (`Judge.reply(system, user) -> str`):

- `HFJudge`: any local Hugging Face causal text model (transformers), greedy decoding;
- `EndpointJudge`: an OpenAI-compatible ``/chat/completions`` endpoint given by URL, called with
  the standard library only (no ``openai`` package).

Replies are parsed strictly (`parse_reply`): exactly one JSON object with the four rubric keys,
each an integer 1-5. Anything else is counted as unparseable and reported, never guessed.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence


from idiff_lib.core import storage
from idiff_lib.core.errors import OfflineError, ParameterError
from idiff_lib.core.progress import progress_bar

CRITERIA: tuple[str, ...] = ("verdict", "grounding", "specificity", "fluency")
SYSTEM = ("You are a strict grader of image quality assessment rationales. You reply with one JSON "
          "object and nothing else.")
RUBRIC = """Grade the CANDIDATE rationale against the EXPERT rationale for the same pair of photographs
(Image A on the left, Image B on the right). Give each criterion an integer from 1 (poor) to 5 (excellent):

- verdict: does the candidate prefer the same image as the expert, for the same reasons?
- grounding: are its claims about regions and defects (noise, smearing, halos, blur, texture) ones the expert also makes, with nothing invented?
- specificity: does it name concrete regions and attributes rather than generic praise?
- fluency: is it clear, grammatical and free of repetition?

EXPERT (answer {ref_answer}):
{reference}

CANDIDATE (answer {cand_answer}):
{candidate}

Reply with exactly one JSON object, for example {{"verdict": 4, "grounding": 3, "specificity": 4, "fluency": 5}}"""

_FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


class Judge(Protocol):
    """Anything that turns a (system, user) prompt into a reply text."""

    name: str

    def reply(self, system: str, user: str) -> str: ...


def build_judge_prompt(reference: str, ref_answer: str | None, candidate: str, cand_answer: str | None) -> str:
    """The rubric filled in for one pair."""
    return RUBRIC.format(reference=(reference or "").strip() or "(empty)", ref_answer=ref_answer or "none",
                         candidate=(candidate or "").strip() or "(empty)", cand_answer=cand_answer or "none")


def parse_reply(text: str | None) -> tuple[dict[str, int] | None, str]:
    """Strictly read a judge's reply.

    Accepted: one JSON object (optionally in a ```json fence) whose keys are exactly `CRITERIA`
    and whose values are integers 1-5.

    Returns:
        (scores, "") when valid, else (None, the reason).
    """
    if text is None or not text.strip():
        return None, "empty reply"
    body = text.strip()
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None, "not a single JSON object"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    if set(obj) != set(CRITERIA):
        return None, f"keys {sorted(obj)} are not {list(CRITERIA)}"
    for key in CRITERIA:
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            return None, f"{key}={value!r} is not an integer 1-5"
    return {k: int(obj[k]) for k in CRITERIA}, ""


# ---------------------------------------------------------------------------------------------
# Back ends
# ---------------------------------------------------------------------------------------------
class HFJudge:
    """A local Hugging Face causal language model as judge (greedy decoding).

    Args:
        model: a folder or hub name, or an already loaded model.
        tokenizer: the tokenizer when `model` is an object (else loaded from `model`).
        max_new_tokens: reply budget; the rubric's JSON needs about 30 tokens.
        device: "cpu", "cuda", ...
    """

    def __init__(self, model: Any, tokenizer: Any = None, max_new_tokens: int = 48, device: str = "cpu"):
        from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: heavy
        import torch  # deferred: heavy

        self.torch = torch
        if isinstance(model, (str, Path)):
            self.name = str(model)
            try:
                self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model))
                self.model = AutoModelForCausalLM.from_pretrained(str(model))
            except OSError as exc:
                raise OfflineError(
                    f"cannot load the judge model {model!r} ({exc}). Download it on a machine with "
                    f"internet (huggingface-cli download {model}) and pass the folder with --judge") from exc
        else:
            if tokenizer is None:
                raise ParameterError("HFJudge: pass the tokenizer together with a loaded model")
            self.model, self.tokenizer = model, tokenizer
            self.name = getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__
        self.model.to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens

    def _prompt_ids(self, system: str, user: str):
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)
            return out["input_ids"]
        return self.tokenizer(f"{system}\n\n{user}\n\n", return_tensors="pt")["input_ids"]

    def reply(self, system: str, user: str) -> str:
        ids = self._prompt_ids(system, user).to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self.torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=self.torch.ones_like(ids),
                                      max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


class EndpointJudge:
    """An OpenAI-compatible chat endpoint as judge, called with urllib (no ``openai`` package).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``; ``/chat/completions`` is appended.
        model: the model name to request.
        api_key_env: environment variable holding a bearer token (optional).
        timeout: seconds per request.
        retries: extra attempts after a network error.
    """

    def __init__(self, base_url: str, model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, retries: int = 2, max_tokens: int = 64):
        if not re.match(r"^https?://", base_url):
            raise ParameterError(f"judge endpoint {base_url!r} must start with http:// or https://")
        self.url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/chat/completions")
                                           else "/chat/completions")
        self.model = model or "default"
        self.name = f"{self.model}@{base_url}"
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.timeout, self.retries, self.max_tokens = timeout, retries, max_tokens

    def reply(self, system: str, user: str) -> str:
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                           "messages": [{"role": "system", "content": system},
                                        {"role": "user", "content": user}]}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                return payload["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    raise JudgeCallError(f"HTTP {exc.code} from {self.url}") from exc
                last = exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = exc
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
                raise JudgeCallError(f"{self.url} did not answer in the OpenAI chat format") from exc
            time.sleep(min(2.0, 0.2 * 2 ** attempt))
        raise JudgeCallError(f"{self.url} unreachable after {self.retries + 1} attempts: {last}")


class JudgeCallError(RuntimeError):
    """A judge call that failed (network, HTTP, protocol): counted, not fatal."""


def make_judge(spec: str, model: str | None = None, api_key_env: str = "OPENAI_API_KEY", **kwargs) -> Judge:
    """An `EndpointJudge` for an ``http(s)://`` URL, else an `HFJudge` for a model folder or name."""
    if re.match(r"^https?://", spec):
        return EndpointJudge(spec, model=model, api_key_env=api_key_env, **kwargs)
    return HFJudge(spec, **kwargs)


# ---------------------------------------------------------------------------------------------
# Running a judge over a corpus
# ---------------------------------------------------------------------------------------------
@dataclass
class JudgeResults:
    """Per-sample judge scores (None where unparseable or failed) and the raw replies."""

    ids: list[str]
    scores: list[dict[str, int] | None]
    replies: list[str | None]
    problems: list[str]
    judge: str = ""
    errors: list[bool] = field(default_factory=list)

    def columns(self) -> dict[str, list]:
        cols: dict[str, list] = {f"judge_{c}": [s[c] if s else None for s in self.scores] for c in CRITERIA}
        cols["judge_mean"] = [sum(s.values()) / len(CRITERIA) if s else None for s in self.scores]
        cols["judge_problem"] = list(self.problems)
        return cols

    def summary(self) -> dict[str, Any]:
        parsed = [s for s in self.scores if s]
        n = len(self.scores)
        out: dict[str, Any] = {"judge": self.judge, "n": n, "parsed": len(parsed),
                               "unparseable": sum(1 for s, e in zip(self.scores, self.errors) if s is None and not e),
                               "failed_calls": sum(self.errors)}
        for c in CRITERIA:
            out[c] = sum(s[c] for s in parsed) / len(parsed) if parsed else None
        out["mean"] = (sum(sum(s.values()) / len(CRITERIA) for s in parsed) / len(parsed)) if parsed else None
        return out


def judge_rationales(judge: Judge, references: Sequence[str], ref_answers: Sequence[str | None],
                     candidates: Sequence[str], cand_answers: Sequence[str | None],
                     ids: Sequence[str] | None = None, cache_path: str | Path | None = None) -> JudgeResults:
    """Judge every candidate against its reference.

    Args:
        cache_path: a JSONL file; each reply is appended as it arrives and reused when the same
            (judge, id, prompt) comes again, so an interrupted run resumes.
    """
    ids = list(ids) if ids is not None else [str(i) for i in range(len(candidates))]
    cache: dict[tuple[str, str, str], dict] = {}
    if cache_path is not None:
        for row in storage.read_resumable_jsonl(cache_path):
            cache[(row.get("judge", ""), row.get("id", ""), row.get("prompt_sha", ""))] = row
    scores, replies, problems, errors = [], [], [], []
    rows = list(zip(ids, references, ref_answers, candidates, cand_answers))
    for pid, ref, ra, cand, ca in progress_bar(rows, desc="judge", disable=len(ids) < 20):
        prompt = build_judge_prompt(ref, ra, cand, ca)
        key = (judge.name, pid, storage.text_sha256(SYSTEM + prompt))
        call_error = ""
        if key in cache and not cache[key].get("error"):
            reply = cache[key]["reply"]
        else:
            try:
                reply = judge.reply(SYSTEM, prompt)
            except JudgeCallError as exc:
                reply, call_error = None, str(exc)
            if cache_path is not None:
                storage.append_jsonl(cache_path, {"judge": key[0], "id": pid, "prompt_sha": key[2],
                                                  "reply": reply, "error": bool(call_error)})
        error = bool(call_error)
        parsed, why = (None, call_error) if error else parse_reply(reply)
        scores.append(parsed)
        replies.append(reply)
        problems.append(why)
        errors.append(error)
    return JudgeResults(ids, scores, replies, problems, judge=judge.name, errors=errors)
