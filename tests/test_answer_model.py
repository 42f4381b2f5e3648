"""Answer model: antisymmetry, shapes, save/load, resume, bad names, offline weights, safe checkpoints, the predict CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from answer_fixtures import make_pairs_file, tiny_member_cfg
from idiff_lib.answer.model import backbone_names, backbones, inputs, member_config, network, weights
from idiff_lib.answer.experiments import ensemble, ensemblers, run_store
from idiff_lib.answer.train import training
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.answer_settings import AnswerSettings
from idiff_lib.core.errors import DataError, OfflineError, ParameterError
from idiff_lib.data.pairs import read_pairs



def tiny_cfg(**kw) -> MemberConfig:
    return tiny_member_cfg(**{**kw})


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return make_pairs_file(tmp_path_factory.mktemp("pairs"), n=8, side=64)


@pytest.fixture(scope="module")
def items(pairs_file):
    return inputs.load_items(read_pairs(pairs_file), tiny_cfg())


@pytest.mark.parametrize("mode", member_config.MODES)
@pytest.mark.parametrize("backbone", ["resnet10t", "convnext_atto", "efficientnet_b0"])
def test_swap_negates_logit_exactly(mode, backbone):
    torch.manual_seed(0)
    model = network.PairwiseModel(tiny_cfg(backbone=backbone, mode=mode)).eval()
    v = 4 if mode == "split" else 2
    x = torch.rand(6, v, 3, 32, 32)
    swapped = x[:, [1, 0, 3, 2][:v]]
    mixed = x.clone()
    mixed[::2] = swapped[::2]  # swapping some pairs of a batch must not change the others
    with torch.no_grad():
        logit, logit_sw, logit_mix = model(x), model(swapped), model(mixed)
    assert torch.equal(logit_sw, -logit)
    assert torch.equal(logit_mix[1::2], logit[1::2]) and torch.equal(logit_mix[::2], -logit[::2])
    p, p_sw = torch.sigmoid(logit), torch.sigmoid(logit_sw)
    assert torch.allclose(p_sw, 1 - p, atol=1e-7)
    decided = logit != 0  # a pair with logit exactly 0 is a tie on both sides
    assert ((logit > 0) != (logit_sw > 0))[decided].all()


def test_identical_sides_give_one_half():
    model = network.PairwiseModel(tiny_cfg()).eval()
    x = torch.rand(2, 1, 3, 32, 32).repeat(1, 4, 1, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(x), torch.zeros(2))


def test_head_and_model_shapes():
    head = network.DiffHead(dim=12, hidden=8)
    a, b = torch.randn(5, 12), torch.randn(5, 12)
    assert head(a, b).shape == (5,)
    assert head.mlp[0].in_features == 48  # [a, b, a - b, |a - b|]
    model = network.PairwiseModel(tiny_cfg())
    assert model(torch.rand(3, 4, 3, 32, 32)).shape == (3,)
    assert model.global_head.mlp[0].in_features == 4 * model.backbone.num_features
    merged = network.PairwiseModel(tiny_cfg(mode="merged"))
    assert merged(torch.rand(3, 2, 3, 32, 32)).shape == (3,)


def test_normalisation_comes_from_timm():
    import timm

    model = network.PairwiseModel(tiny_cfg(backbone="convnext_atto"))
    cfg = timm.data.resolve_model_data_config(model.backbone)
    assert torch.allclose(model.mean.flatten(), torch.tensor(cfg["mean"]))
    assert torch.allclose(model.std.flatten(), torch.tensor(cfg["std"]))


def test_crops_are_aligned_between_sides():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)
    crops = inputs.crop_views((img, img.copy(), img, img.copy()), 32, rng)
    assert crops.shape == (4, 32, 32, 3)
    assert np.array_equal(crops[0], crops[1]) and np.array_equal(crops[2], crops[3])


def test_bad_backbone_name_suggests_close_matches():
    with pytest.raises(ParameterError, match="Did you mean.*resnet10t"):
        backbone_names.resolve_backbone("resnet10tt")
    with pytest.raises(ParameterError, match="convnext_atto"):
        AnswerSettings.from_params({"backbones": ["convnext_ato"]})
    assert backbone_names.resolve_backbone("swinv2_small") == "swinv2_cr_small_224"


def test_bad_settings_are_named():
    with pytest.raises(ParameterError, match="mode"):
        tiny_cfg(mode="stacked")
    with pytest.raises(ParameterError, match="Did you mean"):
        MemberConfig.from_dict({"name": "m", "backbone": "resnet10t", "img_sise": 3})


def test_paper_profile_settings():
    settings = AnswerSettings.for_profile("paper")
    cfgs = [settings.member(b) for b in settings.backbones]
    assert [backbone_names.resolve_backbone(c.backbone) for c in cfgs] == [
        "wide_resnet50_2", "efficientnet_b2", "convnext_small", "swinv2_cr_small_224", "maxvit_tiny_tf_224"]
    c = cfgs[0]
    assert (c.pretrained, c.resize, c.img_size, c.lr, c.weight_decay, c.batch_size, c.epochs, c.seed) == (
        True, 256, 224, 1e-4, 1e-4, 32, 10, 42)


def test_offline_pretrained_fails_fast_naming_the_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "pretrained_cached", lambda name: None)
    monkeypatch.delenv(weights.WEIGHTS_DIR_ENV, raising=False)
    cfg = tiny_cfg(pretrained=True)
    with pytest.raises(OfflineError, match=r"timm/resnet10t\.c3_in1k"):
        backbones.check_weights([cfg], online=False)
    with pytest.raises(ParameterError, match="checkpoint"):
        backbones.check_weights([tiny_cfg(checkpoint=str(tmp_path / "absent.pth"))])


def test_local_checkpoint_is_accepted_instead_of_download(tmp_path):
    import timm

    source = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    path = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), path)
    cfg = tiny_cfg(pretrained=True, checkpoint=str(path))
    backbones.check_weights([cfg], online=False)
    backbone = backbones.create_backbone(cfg)
    for k, v in source.state_dict().items():
        assert torch.equal(backbone.state_dict()[k], v)


def test_save_load_gives_identical_outputs(items, tmp_path):
    result = training.train_member(tiny_cfg(epochs=1), items[:6], items[6:], tmp_path / "m", progress=False)
    cfg, loaded = training.load_member(tmp_path / "m")
    p1 = training.predict_items(result.model, items)
    p2 = training.predict_items(loaded, items)
    assert np.array_equal(p1, p2)
    hist = json.loads((tmp_path / "m" / "history.json").read_text())
    assert len(hist) == 1 and {"train_loss", "val_acc", "lr"} <= set(hist[0])


def test_resume_after_interrupted_epoch_equals_uninterrupted(items, tmp_path):
    cfg = tiny_cfg(epochs=3)
    full = training.train_member(cfg, items[:6], items[6:], tmp_path / "full", progress=False)

    def crash(epoch, step):
        if epoch == 1 and step == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train_member(cfg, items[:6], items[6:], tmp_path / "cut", on_step=crash, progress=False)
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 0
    resumed = training.train_member(cfg, items[:6], items[6:], tmp_path / "cut", progress=False)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_settings_is_refused(items, tmp_path):
    training.train_member(tiny_cfg(epochs=1), items[:4], (), tmp_path / "m", progress=False)
    with pytest.raises(ParameterError, match="other settings"):
        training.train_member(tiny_cfg(epochs=1, lr=5e-3), items[:4], (), tmp_path / "m", progress=False)


def test_specialist_trains_on_its_category_only(items, tmp_path):
    result = training.train_member(tiny_cfg(epochs=1, category="scene", batch_size=2), items, (), tmp_path / "s", progress=False)
    n_scene = sum(it.category == "scene" for it in items)
    assert 0 < n_scene < len(items)
    assert result.history[0]["n_train"] == n_scene


def test_synthetic_stream_is_used(items, tmp_path):
    calls = []

    def stream(n, rng):
        calls.append(n)
        return [items[int(i)] for i in rng.integers(0, len(items), n)]

    result = training.train_member(tiny_cfg(epochs=2, synthetic_pairs=5), items[:2], (), tmp_path / "m", synthetic=stream,
                             progress=False)
    assert calls == [5, 5]
    assert [h["n_train"] for h in result.history] == [7, 7]


def test_predict_cli_writes_rows_on_unlabeled_file(items, pairs_file, tmp_path):
    from idiff_lib import cli

    training.train_member(tiny_cfg(epochs=1), items, (), tmp_path / "run" / "members" / "m", progress=False)
    member = ensemble.network_member("m", {"": tmp_path / "run" / "members" / "m"})
    run_store.save_answer_run(tmp_path / "run", [member], ensemblers.make_ensembler("mean"))
    unlabeled = make_pairs_file(tmp_path / "unl", n=4, side=64, seed=5, labelled=False)
    out = tmp_path / "preds.jsonl"
    assert cli.main(["answer", "predict", "--run", str(tmp_path / "run"), "--data", str(unlabeled), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [p.id for p in read_pairs(unlabeled)]
    for r in rows:
        assert r["answer"] in ("A", "B") and 0 <= r["p_left"] <= 1 and r["category"] in ("person", "scene")
        assert set(r["members"]) == {"m"} and "label" not in r
        assert (r["answer"] == "A") == (r["p_left"] > 0.5)


def test_predict_cli_reports_missing_run(tmp_path, capsys):
    from idiff_lib import cli

    code = cli.main(["answer", "predict", "--run", str(tmp_path), "--data", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "fix" in capsys.readouterr().err


# About 70 s on 2 cores: it must build the paper's five backbones at their real size (random weights),
# the only way to know the GPU check's setup works before a GPU session spends its minutes on it.
@pytest.mark.slow
def test_gpu_check_setup_runs_on_cpu_with_small_inputs(pairs_file, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_answer_check.py"
    spec = importlib.util.spec_from_file_location("gpu_answer_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--device", "cpu", "--img-size", "32", "--steps", "1", "--batch", "2", "--infer-pairs", "2",
                          "--infer-batch", "2", "--data", str(pairs_file), "--e2e-pairs", "3",
                          "--out", str(tmp_path / "r.json")])
    assert set(result["members"]) == {"wide_resnet50_2", "efficientnet_b2", "convnext_small", "swinv2_small", "maxvit_tiny"}
    assert result["ensemble_end_to_end"]["pairs"] == 3 and result["ensemble_end_to_end"]["pairs_per_s"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["paper_ensemble_pairs_per_s"] == 4.76


def test_checkpoints_load_with_weights_only_and_a_truncated_one_is_named(items, tmp_path):
    training.train_member(tiny_cfg(epochs=1), items[:4], (), tmp_path / "m", progress=False)
    for name in ("best.pt", "last.pt"):
        assert "model" in torch.load(tmp_path / "m" / name, weights_only=True)
    data = (tmp_path / "m" / "best.pt").read_bytes()
    (tmp_path / "m" / "best.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"best\.pt.*cannot be read"):
        training.load_member(tmp_path / "m")


class _RunsCode:
    """Unpickling this object would create a file: a stand-in for a crafted checkpoint."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_crafted_checkpoint_is_refused_without_running_it(tmp_path):
    torch.save({"config": tiny_cfg().to_dict(), "model": _RunsCode(str(tmp_path / "ran"))}, tmp_path / "best.pt")
    with pytest.raises(DataError, match=r"best\.pt.*cannot be read"):
        training.load_member(tmp_path)
    assert not (tmp_path / "ran").exists()
