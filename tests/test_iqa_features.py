"""pyiqa features: weights are checked before any metric is built, and nothing touches the network."""

from __future__ import annotations

import math
import urllib.request

import numpy as np
import pytest
import torch

from idiff_lib.features import table as T  # alias: short name for the feature table module in many asserts
from idiff_lib.features import iqa
from idiff_lib.core.errors import OfflineError, ParameterError
from idiff_lib.data.pairs import read_pairs


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test loudly instead of hanging."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    import pyiqa.utils.download_util as dl  # alias: pyiqa's download helpers, patched here

    monkeypatch.setattr(dl, "download_url_to_file", refuse)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)


def test_missing_weights_warn_once_per_metric_and_are_left_out(tmp_path, monkeypatch, no_network):
    import pyiqa

    built = []
    real = pyiqa.create_metric
    monkeypatch.setattr(pyiqa, "create_metric", lambda name, **kw: built.append(name) or real(name, **kw))
    with pytest.warns(UserWarning) as record:
        scorer = iqa.IQAScorer(["entropy", "liqe", "musiq", "topiq_nr", "clipiqa", "qalign"], weights_dir=tmp_path)
    assert scorer.metrics == ["entropy"]
    messages = [str(w.message) for w in record if "left out" in str(w.message)]
    assert len(messages) == 5
    liqe = next(m for m in messages if "'liqe'" in m)
    assert "liqe_koniq.pt" in liqe and "ViT-B-32.pt" in liqe and "https://" in liqe and str(tmp_path) in liqe
    assert "q-future/one-align" in next(m for m in messages if "'qalign'" in m)
    assert built == []  # nothing was built while checking
    with pytest.raises(OfflineError, match="musiq_koniq_ckpt"):
        iqa.create_metric("musiq", weights_dir=tmp_path)
    assert built == []


def test_weights_are_found_where_pyiqa_looks(tmp_path):
    (tmp_path / "pyiqa").mkdir()
    (tmp_path / "clip").mkdir()
    (tmp_path / "pyiqa" / "musiq_koniq_ckpt-e95806b9.pth").write_bytes(b"x")
    (tmp_path / "cfanet_nr_koniq_res50-9a73138b.pth").write_bytes(b"x")  # flat layout is accepted for pyiqa files
    (tmp_path / "clip" / "RN50.pt").write_bytes(b"x")
    assert iqa.missing_weights("musiq", tmp_path) == []
    assert iqa.missing_weights("topiq_nr", tmp_path) == []
    assert iqa.missing_weights("clipiqa", tmp_path) == []
    assert [w.name for w in iqa.missing_weights("liqe", tmp_path)] == ["liqe_koniq.pt", "ViT-B-32.pt"]
    assert iqa.default_weights_dir() == __import__("pathlib").Path(torch.hub.get_dir())


def test_checkpoint_names_match_pyiqa_tables():
    import pyiqa.archs.musiq_arch as musiq  # alias: the arch module, patched here
    import pyiqa.archs.topiq_arch as topiq  # alias: the arch module, patched here

    assert musiq.default_model_urls["koniq10k"].endswith(iqa.CHECKPOINTS["musiq"])
    assert topiq.default_model_urls["cfanet_nr_koniq_res50"].endswith(iqa.CHECKPOINTS["topiq_nr"])
    assert iqa.required_weights("liqe")[0].url.endswith("/liqe_koniq.pt")


def test_metric_whose_code_cannot_import_is_left_out_with_a_warning(tmp_path, monkeypatch):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "RN50.pt").write_bytes(b"x")
    monkeypatch.setattr(iqa, "import_problem", lambda m: "ModuleNotFoundError: No module named 'pkg_resources'")
    with pytest.warns(UserWarning, match="cannot be imported.*pkg_resources"):
        assert iqa.available_metrics(["clipiqa"], weights_dir=tmp_path) == []


def test_every_learned_metric_imports_with_the_declared_dependencies():
    # LIQE and CLIP-IQA import openai-clip, which needs setuptools' pkg_resources (setuptools<81);
    # iqa-Align's code imports icecream. Both are project dependencies.
    import pkg_resources  # noqa: F401  (the module LIQE/CLIP-IQA need)

    assert {m: iqa.import_problem(m) for m in iqa.LEARNED_METRICS} == {m: None for m in iqa.LEARNED_METRICS}


def test_strict_mode_stops_naming_every_learned_metric_without_weights(tmp_path, no_network):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "RN50.pt").write_bytes(b"x")  # clipiqa's file is there: it is not named
    with pytest.raises(OfflineError) as err:
        iqa.IQAScorer(["piqe", "liqe", "clipiqa", "qalign"], weights_dir=tmp_path, strict=True)
    message = str(err.value)
    assert "liqe:" in message and "liqe_koniq.pt" in message and "qalign:" in message and "q-future/one-align" in message
    assert "clipiqa:" not in message
    assert iqa.IQAScorer(["piqe", "clipiqa"], weights_dir=tmp_path, strict=True).metrics == ["piqe", "clipiqa"]


def test_unknown_metric_suggests_close_names():
    with pytest.raises(ParameterError, match="Did you mean"):
        iqa.IQAScorer(["piqee"])


def test_direction_comes_from_pyiqa():
    assert iqa.lower_better("piqe") is True
    assert iqa.lower_better("entropy") is False


def test_offline_metrics_fill_the_table_and_cache(pair_folder, tmp_path, no_network, monkeypatch):
    pairs = read_pairs(pair_folder / "pairs.jsonl")[:2]
    table = T.build_feature_table(pairs, features=("iqa",), iqa_metrics=("entropy", "piqe"),
                                  cache_dir=tmp_path / "cache", progress=False)
    for metric in ("entropy", "piqe"):
        for view in ("global", "local"):
            a, b, d = (table[f"iqa.{metric}.{view}.{s}"] for s in ("A", "B", "diff"))
            assert np.isfinite(a).all() and np.isfinite(b).all()
            np.testing.assert_allclose(d, a - b)
    assert not any(c.startswith("cv.") for c in table.columns)
    # p_000: A clean, B noisy -> the noise spreads B's grey-level histogram (A/B not mixed up)
    assert table.loc["p_000", "iqa.entropy.global.B"] > table.loc["p_000", "iqa.entropy.global.A"]
    assert table.loc["p_001", "iqa.entropy.global.A"] > table.loc["p_001", "iqa.entropy.global.B"]
    monkeypatch.setattr(iqa.IQAScorer, "score", lambda *a, **k: pytest.fail("cache miss on rerun"))
    again = T.build_feature_table(pairs, features=("iqa",), iqa_metrics=("entropy", "piqe"),
                                  cache_dir=tmp_path / "cache", progress=False)
    assert again.equals(table)


def test_iqa_entropy_matches_the_grey_level_entropy():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    scorer = iqa.IQAScorer(["entropy"])
    value = scorer.score(img, "entropy")
    assert math.isfinite(value) and 7.0 < value <= 8.0


def test_feature_cues_record_which_iqa_metrics_ran_and_stop_when_learned_ones_are_required(
        pair_folder, tmp_path, no_network, monkeypatch):
    from idiff_lib.thinking.prompting.side_inputs import feature_cues

    monkeypatch.setattr(iqa, "default_weights_dir", lambda: tmp_path)  # an empty torch hub: no learned weights
    pairs = read_pairs(pair_folder / "pairs.jsonl")[:2]
    with pytest.warns(UserWarning, match="left out"):
        cues, note = feature_cues(pairs, sources=("iqa",), progress=False)
    assert "IQA metrics used: piqe;" in note and "left out (no weights or code here): " + ", ".join(
        iqa.LEARNED_METRICS) in note
    assert set(cues) == {p.id for p in pairs}
    with pytest.raises(OfflineError, match="liqe: weights not found offline"):
        feature_cues(pairs, sources=("iqa",), progress=False, require_learned=True)
