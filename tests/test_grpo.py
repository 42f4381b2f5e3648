"""GRPO: the rewards' refusals and our consistency reward, the checked input, the ms-swift export, TRL's adapter."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from conftest import sft_line, write_merged_pair
from idiff_lib import cli
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.pairs import format_completion
from idiff_lib.scoring.rewards import RewardLog, accuracy_reward, consistency_reward, format_reward
from idiff_lib.thinking.train import grpo, grpo_rows, grpo_settings
from idiff_lib.thinking.train.swift_export import SWIFT_GRPO_FLAGS, reward_plugin_source, swift_grpo_command

GOOD_A = format_completion(["Face Sharpness: Image A (Left) is sharper.", "Global Overall: Image A is better."], "A")
GOOD_B = format_completion(["Face Sharpness: Image B (Right) is sharper.", "Global Overall: Image B is better."], "B")
# The overall line prefers B, the answer says A.
TORN = format_completion(["Face Sharpness: Image B (Right) is sharper.", "Global Overall: Image B is better."], "A")
CORPUS = [GOOD_A, GOOD_B, TORN, "", "   ", "<answer>A</answer>", "<thinking>x</thinking><answer>B</answer>",
          "<answer>A</answer><thinking>x</thinking>", "<thinking>x</thinking>\n<answer> a </answer> tail",
          "<thinking>x</thinking><answer>AB</answer>", "plain text A", "<THINKING>x</THINKING><answer>A</answer>"]


# --------------------------------------------------------------------------- rewards
@pytest.mark.parametrize("bad, reason", [("", "empty"), ("  \n", "empty"), (None, "empty"),
                                         (b"\xff\xfe<answer>A</answer>", "non-utf8"),
                                         ("<thinking>x</thinking><answer>A</answer>\udcff", "non-utf8")])
def test_rewards_refuse_empty_and_non_utf8_completions_and_count_them(bad, reason):
    log = RewardLog()
    assert accuracy_reward(bad, GOOD_A, log) == 0.0
    assert format_reward(bad, log) == 0.0
    assert consistency_reward(bad, log) == 0.0
    assert log.summary() == {f"accuracy/{reason}": 1, f"consistency/{reason}": 1, f"format/{reason}": 1}


def test_rewards_read_utf8_bytes_as_text():
    log = RewardLog()
    assert accuracy_reward(GOOD_A.encode("utf-8"), GOOD_A, log) == 1.0
    assert format_reward(GOOD_A.encode("utf-8"), log) == 1.0
    assert not log.counts


def test_consistency_reward_checks_the_overall_line_against_the_answer():
    assert consistency_reward(GOOD_A) == 1.0
    assert consistency_reward(GOOD_B) == 1.0
    assert consistency_reward(TORN) == 0.0
    no_overall = format_completion(["Face Sharpness: Image A (Left) is sharper."], "A")
    assert consistency_reward(no_overall) == 0.0
    assert consistency_reward("<thinking>Global Overall: Image A is better.</thinking>") == 0.0  # no answer


# --------------------------------------------------------------------------- checked input
def test_a_solution_without_answer_is_named_by_file_and_line(tmp_path):
    rows = [{"id": "p1", "prompt": "q", "solution": GOOD_A}, {"id": "p2", "prompt": "q", "solution": "no tag"},
            {"id": "p3", "prompt": "q", "solution": "<answer>maybe</answer>"}]
    f = tmp_path / "grpo.jsonl"
    f.write_text(json.dumps(rows[0]) + "\n\n" + "".join(json.dumps(r) + "\n" for r in rows[1:]))
    with pytest.raises(DataError) as err:
        grpo_rows.read_grpo_file(f)
    assert err.value.line == 3 and "'p2'" in str(err.value) and "2 of 3 rows" in str(err.value)
    assert str(f) in str(err.value)
    grpo_rows.check_grpo_rows(rows[:1])  # a good row passes


def test_check_grpo_command_names_the_sample(tmp_path, capsys):
    f = tmp_path / "grpo.jsonl"
    f.write_text(json.dumps({"id": "p1", "prompt": "q", "solution": GOOD_A}) + "\n"
                 + json.dumps({"id": "p2", "prompt": "q", "solution": "<thinking>x</thinking>"}) + "\n")
    assert cli.main(["think", "check-grpo", "--data", str(f)]) != 0
    err = capsys.readouterr().err
    assert f"{f}, line 2: sample 'p2'" in err
    f.write_text(json.dumps({"id": "p1", "prompt": "q", "solution": GOOD_A}) + "\n")
    assert cli.main(["think", "check-grpo", "--data", str(f)]) == 0


def test_label_leaks_finds_quoted_solutions_and_label_verdicts():
    def row(i, verdict, solution):
        user = f"<image><image>Compare. Answer Model verdict: Image {verdict} (Left) is better." if verdict else "q"
        return {"id": f"p{i}", "messages": [{"role": "user", "content": user}], "solution": solution}

    sols = [GOOD_A if i % 2 else GOOD_B for i in range(10)]
    labels = [row(i, "A" if i % 2 else "B", s) for i, s in enumerate(sols)]
    assert any("every one of 10" in p for p in grpo_rows.label_leaks(labels))
    predicted = [row(i, "A", s) for i, s in enumerate(sols)]  # an Answer Model that is wrong half the time
    assert grpo_rows.label_leaks(predicted) == []
    assert grpo_rows.label_leaks([row(i, None, s) for i, s in enumerate(sols)]) == []
    quoted = [{"id": "q", "prompt": "Here is the answer: " + GOOD_A, "solution": GOOD_A}]
    assert grpo_rows.label_leaks(quoted)


# --------------------------------------------------------------------------- ms-swift export
def _load_plugin(path, monkeypatch):
    """Import the written plugin with a stand-in for ``swift.plugin.orm`` (ms-swift is a GPU install)."""
    orm_mod = types.ModuleType("swift.plugin.orm")

    class ORM:
        def __init__(self, **kwargs):
            pass

    orm_mod.ORM, orm_mod.orms = ORM, {}
    for name, mod in (("swift", types.ModuleType("swift")), ("swift.plugin", types.ModuleType("swift.plugin")),
                      ("swift.plugin.orm", orm_mod)):
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("idiff_reward_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return orm_mod.orms


def test_reward_plugin_gives_our_rewards(tmp_path, monkeypatch):
    path = tmp_path / "plugin.py"
    path.write_text(reward_plugin_source())
    orms = _load_plugin(path, monkeypatch)
    acc, fmt = orms["base_acc"](), orms["format_acc"]()
    for solution in (GOOD_A, GOOD_B):
        assert acc(CORPUS, solution=[solution] * len(CORPUS)) == [accuracy_reward(c, solution) for c in CORPUS]
    assert fmt(CORPUS) == [format_reward(c) for c in CORPUS]
    assert set(fmt(CORPUS)) == {0.0, 1.0}  # the corpus tells the two apart


def test_swift_command_has_the_baselines_settings():
    script = swift_grpo_command("train_grpo.jsonl", "train_grpo_reward_funcs.py")
    flags = dict(SWIFT_GRPO_FLAGS)
    for name, value in (("rlhf_type", "grpo"), ("beta", "0.04"), ("num_generations", "4"), ("temperature", "0.9"),
                        ("max_completion_length", "512"), ("learning_rate", "1e-6"), ("num_train_epochs", "10"),
                        ("deepspeed", "zero3"), ("train_type", "full"), ("reward_weights", "1.0 0.5")):
        assert flags[name] == value and f"--{name} {value} \\" in script
    assert "--external_plugins train_grpo_reward_funcs.py" in script and script.rstrip().endswith("true")


def _pairs_file(folder, photos, n):
    rng = np.random.default_rng(1)
    lines, answers = [], []
    for i in range(n):
        clean = photos["coffee" if i % 2 else "astronaut"]
        noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
        answer = "AB"[i % 3 == 0]
        a, b = (clean, noisy) if answer == "A" else (noisy, clean)
        lines.append(sft_line(write_merged_pair(folder, f"p_{i:03d}", a, b), answer))
        answers.append(answer)
    f = folder / "pairs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return f, answers


def _export(*args):
    return cli.main(["think", "export-swift", "--shape", "grpo", *map(str, args)])


def test_grpo_export_never_puts_the_solution_in_the_prompt(tmp_path, photos, capsys):
    data, labels = _pairs_file(tmp_path, photos, 10)
    out = tmp_path / "out" / "train_grpo.jsonl"
    assert _export("--data", data, "--out", out) == 0
    assert "stage S1: no verdict" in capsys.readouterr().out
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(rows) == 10 and all(grpo_rows.prompt_verdict(r) is None for r in rows)
    assert all(r["solution"][-18:] not in grpo_rows.prompt_text(r) for r in rows)  # no "<answer>X</answer>"
    assert grpo_rows.label_leaks(rows) == []
    assert (tmp_path / "out" / "train_grpo_reward_funcs.py").exists()
    script = tmp_path / "out" / "train_grpo_grpo.sh"
    assert "swift rlhf" in script.read_text() and script.stat().st_mode & 0o100
    # S4 takes the Answer Model's verdicts from a run folder ...
    run = tmp_path / "answer_run"
    run.mkdir()
    preds = [{"id": f"p_{i:03d}", "answer": "A", "p_left": 0.7} for i in range(10)]
    (run / "preds_test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    assert _export("--data", data, "--out", out, "--answers", run) == 0
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [grpo_rows.prompt_verdict(r) for r in rows] == ["A"] * 10
    # ... and an "answers" file that is the labels is refused, nothing written
    (run / "preds_test.jsonl").write_text("".join(json.dumps({"id": f"p_{i:03d}", "answer": a}) + "\n"
                                                  for i, a in enumerate(labels)))
    leaky = tmp_path / "leaky.jsonl"
    assert _export("--data", data, "--out", leaky, "--answers", run) != 0
    assert not leaky.exists() and "carry the labels" in capsys.readouterr().err


def test_grpo_export_refuses_s4_without_answers(tmp_path, photos, capsys):
    data, _ = _pairs_file(tmp_path, photos, 2)
    assert _export("--data", data, "--out", tmp_path / "g.jsonl", "--stage", "S4") != 0
    assert "--answers" in capsys.readouterr().err


# --------------------------------------------------------------------------- TRL
def test_grpo_settings_map_to_trl_config(tmp_path):
    pytest.importorskip("trl")
    settings = grpo_settings.GrpoSettings()
    config = grpo.grpo_config(settings, tmp_path)
    assert (config.beta, config.num_generations, config.temperature) == (0.04, 4, 0.9)
    assert config.reward_weights == [1.0, 0.5]  # consistency is off by default
    funcs, weights = grpo.trl_reward_functions(grpo_settings.GrpoSettings(consistency_weight=0.2))
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "consistency"] and weights == [1.0, 0.5, 0.2]
    conversational = [[{"role": "assistant", "content": GOOD_A}], [{"role": "assistant", "content": TORN}]]
    assert funcs[0](conversational, solution=[GOOD_A, GOOD_B]) == [1.0, 0.0]
    assert funcs[2](conversational) == [1.0, 0.0]
    with pytest.raises(ParameterError, match="multiple of num_generations"):
        grpo_settings.GrpoSettings(batch_size=6).validate()
    with pytest.raises(ParameterError, match="every reward weight is 0"):
        grpo.trl_reward_functions(grpo_settings.GrpoSettings(accuracy_weight=0, format_weight=0))


@pytest.mark.slow
def test_two_grpo_steps_run_end_to_end_and_log_the_rewards(tmp_path):
    """TRL's GRPOTrainer on a 2-layer Llama (random weights: the mechanism, not learning), LoRA, 4 prompts."""
    pytest.importorskip("trl")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from idiff_lib.thinking.model.tiny import train_tokenizer

    tokenizer = train_tokenizer(CORPUS[:3] + ["Compare the two images."] * 4, vocab_size=300)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.pad_token_id))
    rows = [{"id": f"p{i}", "prompt": "Compare the two images.", "solution": GOOD_A if i % 2 else GOOD_B}
            for i in range(4)]
    log = RewardLog()
    settings = grpo_settings.GrpoSettings(max_completion_length=8, max_steps=2, save_steps=2, lora_r=4, lora_alpha=8)
    trainer = grpo.grpo_trainer(model, tokenizer, rows, settings, tmp_path / "run", log=log, report_to=[])
    trainer.train()
    logged = [h for h in trainer.state.log_history if "rewards/accuracy/mean" in h]
    assert trainer.state.global_step == 2 and len(logged) == 2
    assert all("rewards/format/mean" in h and "kl" in h for h in logged)
    assert logged[-1]["refused_completions"] == sum(log.counts.values())
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
