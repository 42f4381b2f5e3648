"""The degradation pretext task and the on-the-fly pair stream, on tiny images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from answer_fixtures import bare_member, make_pairs_file
from idiff_lib.answer.model import network
from idiff_lib.answer.train import pretext, synthetic
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.train.splits import load_splits
from idiff_lib.answer.train.training_photos import training_photos



@pytest.fixture(scope="module")
def train_split(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for i, name in enumerate(("train", "val", "test")):
        make_pairs_file(folder, n=4, side=96, seed=i, name=f"{name}_sft.jsonl")
    return folder, load_splits(folder)["train"]


def test_training_photos_fall_back_to_the_better_rendition(train_split):
    folder, split = train_split
    photos = training_photos(split, folder)
    assert [p.id for p in photos] == [p.id for p in split.pairs]
    for photo, pair in zip(photos, split.pairs):
        from idiff_lib.data.views import load_views

        views = load_views(pair)
        better = views.global_left if pair.answer == "A" else views.global_right
        assert np.array_equal(photo.rgb, better)
        assert "global" in photo.masks


def test_training_photos_use_catalogue_photos_named_in_meta(train_split, tmp_path):
    from idiff_lib.demo_data import photos as catalogue  # alias: 'photos' names photo lists here
    from idiff_lib.core import storage

    folder, split = train_split
    (tmp_path / "meta").mkdir()
    storage.write_jsonl(tmp_path / "meta" / "train.jsonl", [{"id": p.id, "photo": "chelsea"} for p in split.pairs])
    photos = training_photos(split, tmp_path)
    assert len(photos) == 1 and photos[0].id == "chelsea"
    assert photos[0].rgb.shape == catalogue.load_photo("chelsea").rgb.shape


def test_pretext_batch_labels(train_split):
    folder, split = train_split
    photos = training_photos(split, folder)
    x, y = pretext.pretext_batch(photos, 12, 32, np.random.default_rng(0))
    assert x.shape == (12, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert y["kind"].shape == (12,) and int(y["kind"].max()) < len(pretext.KINDS)
    clean = y["kind"] == 0
    assert torch.all(y["severity"][clean] == 0)
    assert torch.all((y["coverage"] >= 0) & (y["coverage"] <= 1))
    assert torch.all(y["severity"][~clean] >= 0.2)


def test_pretrain_writes_a_backbone_that_members_load_and_resumes(train_split, tmp_path):
    folder, split = train_split
    photos = training_photos(split, folder)
    cfg = bare_member(name="r", backbone="resnet10t", img_size=32, resize=40, local_resize=40)
    path = pretext.pretrain(cfg, photos, 2, tmp_path / "r.pt", batch=4, crop=32, save_every=1, progress=False)
    saved = torch.load(path, weights_only=True)["backbone"]
    member = network.build_model(MemberConfig(**{**cfg.to_dict(), "init": str(path)}))
    assert all(torch.equal(member.backbone.state_dict()[k], v) for k, v in saved.items())
    mtime = path.stat().st_mtime_ns
    assert pretext.pretrain(cfg, photos, 2, tmp_path / "r.pt", batch=4, crop=32, progress=False) == path
    assert path.stat().st_mtime_ns == mtime  # finished: not trained again
    table = pretext.summary(tmp_path)
    assert list(table.backbone) == ["resnet10t"] and table.steps.iloc[0] == 2


def test_synthetic_stream_gives_fresh_labelled_items(train_split):
    folder, split = train_split
    factory = synthetic.synthetic_factory(split, folder)
    cfg = bare_member(name="r", backbone="resnet10t", img_size=32, resize=40, local_resize=40)
    draw = factory(cfg)
    a = draw(3, np.random.default_rng(1))
    b = draw(3, np.random.default_rng(2))
    assert len(a) == 3 and all(it.label in (0.0, 1.0) for it in a)
    assert all(len(it.views) == 4 and it.views[0].shape == it.views[1].shape for it in a)
    assert not all(np.array_equal(x.views[0], y.views[0]) for x, y in zip(a, b))
    again = draw(3, np.random.default_rng(1))
    assert all(np.array_equal(x.views[2], y.views[2]) and x.label == y.label for x, y in zip(a, again))


def test_synthetic_source_draws_only_the_named_catalogue_photos(train_split):
    from idiff_lib.core.errors import ParameterError

    folder, split = train_split
    source = synthetic.SyntheticSource(split, folder, catalogue_names=["kodim19", "chelsea"])
    assert source.names == ["chelsea", "kodim19"] and not source.photos
    with pytest.raises(ParameterError, match="kodim"):
        synthetic.SyntheticSource(split, folder, catalogue_names=["kodim99"])
