"""benchmarks/thinking_speed.py on the tiny model: generation tokens/s per batch size and one LoRA step, on real pairs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_TEST = ROOT / "data" / "demo" / "test_sft.jsonl"


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("thinking_speed", ROOT / "benchmarks" / "thinking_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_thinking_speed_times_generation_and_a_lora_step_on_real_pairs(tmp_path):
    from idiff_lib.data.pairs import read_pairs
    from idiff_lib.thinking.model.tiny import TinySettings, build_tiny_model, rationale_corpus

    tiny = TinySettings(vocab_size=500, hidden_size=64, intermediate_size=128, layers=1, heads=2, kv_heads=1,
                        vision_depth=1, vision_embed=32, vision_heads=2, max_pixels=28 * 28 * 8)
    folder = build_tiny_model(tmp_path / "tiny", rationale_corpus(read_pairs(DEMO_TEST, limit=4)), tiny)
    out = tmp_path / "speed.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "thinking_speed.py"), "--model", str(folder), "--data",
           str(DEMO_TEST), "--pairs", "3", "--batch-sizes", "1,2", "--max-new-tokens", "6", "--train-batch", "2",
           "--cue-sources", "cv", "--stage", "S4", "--threads", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IDIFF_PROGRESS": "off"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["settings"]["pairs"] == 3 and res["settings"]["stage"] == "S4"
    assert res["settings"]["model_class"] == "Qwen2VLForConditionalGeneration" and res["settings"]["prompt_tokens_mean"] > 50
    assert [(g["decoding"], g["batch_size"]) for g in res["generation"]] == [
        ("free", 1), ("free", 2), ("constrained", 1), ("constrained", 2)]  # both decodings by default
    for g in res["generation"]:
        assert g["pairs"] == 3 and 0 < g["new_tokens"] <= 3 * 6 and g["tokens_per_s"] > 0
    step = res["lora_step"]
    assert step["pairs"] == 2 and step["seconds"] > 0 and step["trainable_params"] > 0 and step["loss"] > 0
    assert len(res["machine"]["load_average_at_start"]) == 3 and "load_average_at_end" in res["machine"]


def test_small_vlm_is_built_once_into_a_folder_beside_the_output(tmp_path, monkeypatch):
    import idiff_lib.thinking.model.small_vlm_build as build  # alias: the builder module under test

    calls = []

    def fake_build(folder):
        calls.append(folder)
        Path(folder).mkdir(parents=True)
        (Path(folder) / "config.json").write_text("{}")

    monkeypatch.setattr(build, "build_small_vlm", fake_build)
    module = _benchmark_module()
    args = argparse.Namespace(model="small-vlm", cache_dir="", out=str(tmp_path / "results" / "speed.json"))
    first = module._model_folder(args)
    assert first == tmp_path / "results" / "thinking_speed_small_vlm" and calls == [first]
    assert module._model_folder(args) == first and len(calls) == 1, "an existing build is reused"
    assert module._model_folder(argparse.Namespace(model="some/folder", cache_dir="", out="x")) == Path("some/folder")
