"""Thinking Model training checkpoints hold no pickle (issue 27), and a resumed run equals an uninterrupted one."""

import json
import pickle
import shutil

import pytest
import torch

from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.thinking.train import train_checkpoint, training
from idiff_lib.thinking.train.training import TrainSettings, train



def _tiny_lm(hidden: int = 32):
    """A one-layer causal LM with tied embeddings and attention dropout (the global torch generator matters)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=64, hidden_size=hidden, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, attention_dropout=0.2,
                         tie_word_embeddings=True, max_position_embeddings=64)
    return Qwen2ForCausalLM(config)


def _examples(n: int = 8) -> list[dict]:
    """Encoded examples of different lengths, the first half of each a prompt without labels."""
    gen = torch.Generator().manual_seed(1)
    items = []
    for i in range(n):
        ids = torch.randint(1, 64, (1, 6 + i % 3), generator=gen)
        labels = ids.clone()
        labels[:, :3] = -100
        items.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return items


class _Interrupted(Exception):
    pass


def _run(out, settings, monkeypatch, stop_at=None, hidden=32):
    """Train a fresh tiny model into `out`; with `stop_at`, die right after the checkpoint of that step."""
    model = _tiny_lm(hidden)
    if stop_at is not None:
        save = training._Loop.save

        def save_then_die(loop):
            save(loop)
            if loop.state["step"] == stop_at:
                raise _Interrupted

        monkeypatch.setattr(training._Loop, "save", save_then_die)
    try:
        result = train(model, _examples(), 0, out, settings, val_examples=_examples(2), log=lambda *_: None)
    finally:
        monkeypatch.undo()
    return model, result


class _RunsCode:
    """Unpickling this object would create a file: a stand-in for a crafted checkpoint."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _assert_no_pickle(folder):
    for path in folder.rglob("*"):
        assert path.suffix not in train_checkpoint.PICKLE_SUFFIXES, path
    for path in (folder / "checkpoint").iterdir():
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", f"{path} looks like a pickle or a torch.save archive"
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            from safetensors import safe_open

            assert path.suffix == ".safetensors", path
            with safe_open(str(path), "pt") as fh:
                assert list(fh.keys())


# (stop after this step, micro-batches per step): mid second epoch; with accumulation, mid second epoch too.
@pytest.mark.parametrize("stop_at, grad_accum", [(6, 1), (3, 3)])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch, stop_at, grad_accum):
    settings = TrainSettings(epochs=3, batch_size=2, grad_accum=grad_accum, save_every=1, eval_every=2, lr=5e-3)
    reference, expected = _run(tmp_path / "whole", settings, monkeypatch)
    with pytest.raises(_Interrupted):
        _run(tmp_path / "run", settings, monkeypatch, stop_at=stop_at)
    assert json.loads((tmp_path / "run" / "train_state.json").read_text())["step"] == stop_at
    _assert_no_pickle(tmp_path / "run")
    model, resumed = _run(tmp_path / "run", settings, monkeypatch)
    assert resumed["resumed_from"] == stop_at and resumed["steps"] == expected["steps"]
    for key in ("loss_history", "val_history", "best_step"):
        assert resumed[key] == expected[key], key
    mine, theirs = model.state_dict(), reference.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    _assert_no_pickle(tmp_path / "run")
    assert not (tmp_path / "run" / ".checkpoint.tmp").exists()


def test_the_tree_codec_reads_back_types_and_values(tmp_path):
    tree = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.arange(4.0)}},
            "param_groups": [{"betas": (0.9, 0.999), "params": [0], "fused": None, "lr": 1e-3}],
            "python": (3, (1, 2**32 - 1), None), "__tuple__": "a key that looks like a tag"}
    train_checkpoint.write_tree(tmp_path, "tree", tree)
    back = train_checkpoint.read_tree(tmp_path, "tree")
    assert back["state"][0]["step"].item() == 3.0 and torch.equal(back["state"][0]["exp_avg"], torch.arange(4.0))
    assert back["param_groups"][0]["betas"] == (0.9, 0.999) and back["python"] == (3, (1, 2**32 - 1), None)
    assert back["__tuple__"] == tree["__tuple__"] and list(back["state"]) == [0]
    with pytest.raises(TypeError, match="cannot be written without pickling"):
        train_checkpoint.write_tree(tmp_path, "bad", {"x": object()})
    (tmp_path / "tree.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match=r"tree\.safetensors.*cannot be read"):
        train_checkpoint.read_tree(tmp_path, "tree")


def test_an_old_pickled_checkpoint_is_refused_without_unpickling(tmp_path, monkeypatch):
    ckpt = tmp_path / "run" / "checkpoint"
    ckpt.mkdir(parents=True)
    (tmp_path / "run" / "train_state.json").write_text(json.dumps({"step": 2, "epoch": 0, "batch_in_epoch": 2,
                                                                    "loss_history": [], "val_history": []}))
    (ckpt / "random_states_0.pkl").write_bytes(pickle.dumps(_RunsCode(str(tmp_path / "ran"))))
    settings = TrainSettings(epochs=1, batch_size=2, max_steps=1)
    with pytest.raises(DataError, match=r"random_states_0\.pkl: a pickled training state(.|\n)*it is not opened"
                                        r"(.|\n)*fix: delete the folder .*checkpoint and run the training again"):
        _run(tmp_path / "run", settings, monkeypatch)
    for name in ("optimizer.bin", "scheduler.bin"):  # the whole set accelerate's save_state wrote
        (ckpt / name).write_bytes(pickle.dumps(_RunsCode(str(tmp_path / "ran"))))
    with pytest.raises(DataError, match=r"optimizer\.bin: .*\(also random_states_0\.pkl, scheduler\.bin\)"):
        _run(tmp_path / "run", settings, monkeypatch)
    assert not (tmp_path / "ran").exists()
    shutil.rmtree(ckpt)  # the fix
    _, result = _run(tmp_path / "run", settings, monkeypatch)
    assert result["steps"] == 1 and result["resumed_from"] is None
    _assert_no_pickle(tmp_path / "run")


def test_a_checkpoint_of_another_model_or_an_incomplete_one_is_named(tmp_path, monkeypatch):
    settings = TrainSettings(epochs=1, batch_size=2, max_steps=1)
    _run(tmp_path / "run", settings, monkeypatch)
    with pytest.raises(DataError, match=r"model\.safetensors: does not fit this run"):
        _run(tmp_path / "run", TrainSettings(epochs=1, batch_size=2, max_steps=2), monkeypatch, hidden=16)
    (tmp_path / "run" / "checkpoint" / "state.json").unlink()
    with pytest.raises(DataError, match=r"state\.json: not found: the folder is not a complete training checkpoint"):
        _run(tmp_path / "run", settings, monkeypatch)


def test_deepspeed_is_refused_before_training(tmp_path, monkeypatch):
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    monkeypatch.setattr(Accelerator, "distributed_type", property(lambda self: DistributedType.DEEPSPEED))
    with pytest.raises(ParameterError, match="DeepSpeed.*pickles.*--multi_gpu"):
        train(_tiny_lm(), _examples(), 0, tmp_path, TrainSettings(max_steps=1))
    assert not (tmp_path / "checkpoint").exists()
