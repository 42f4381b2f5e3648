"""TensorBoard curves of a member's training: tags, step counts, and no repeated steps after a resume."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from answer_fixtures import make_pairs_file, tiny_member_cfg
from idiff_lib.answer.model import inputs
from idiff_lib.answer.train import training
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.core.curves import TENSORBOARD_DIR
from idiff_lib.data.pairs import read_pairs



def tiny_cfg(**kw) -> MemberConfig:
    return tiny_member_cfg(**{"batch_size": 2, "hidden": 8, **kw})


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    pairs = read_pairs(make_pairs_file(tmp_path_factory.mktemp("pairs"), n=6, side=64))
    return inputs.load_items(pairs, tiny_cfg())


def _scalars(member_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(member_dir / TENSORBOARD_DIR), purge_orphaned_data=True)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_curves_hold_every_step_and_epoch(items, tmp_path):
    result = training.train_member(tiny_cfg(), items[:4], items[4:], tmp_path / "m", progress=False)
    curves = _scalars(tmp_path / "m")
    assert set(curves) == {"train/loss", "train/lr"} | {f"epoch/{k}" for k in training.EPOCH_METRICS}
    assert [s for s, _ in curves["train/loss"]] == [1, 2, 3, 4]  # 4 training pairs, batches of 2, 2 epochs
    assert [s for s, _ in curves["epoch/val_acc"]] == [2, 4]  # at the step where each epoch ended
    assert [v for _, v in curves["epoch/train_loss"]] == pytest.approx([h["train_loss"] for h in result.history])
    # A second call on a finished member trains nothing and writes no new event file.
    files = sorted((tmp_path / "m" / TENSORBOARD_DIR).iterdir())
    training.train_member(tiny_cfg(), items[:4], items[4:], tmp_path / "m", progress=False)
    assert sorted((tmp_path / "m" / TENSORBOARD_DIR).iterdir()) == files


def test_resumed_run_continues_the_step_numbering(items, tmp_path):
    def crash(epoch, step):
        if epoch == 1 and step == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train_member(tiny_cfg(epochs=3), items[:4], (), tmp_path / "m", on_step=crash, progress=False)
    crashed = _scalars(tmp_path / "m")
    assert [s for s, _ in crashed["train/loss"]] == [1, 2, 3]  # the writer was closed (flushed) on the exception
    full = training.train_member(tiny_cfg(epochs=3), items[:4], (), tmp_path / "full", progress=False)
    training.train_member(tiny_cfg(epochs=3), items[:4], (), tmp_path / "m", progress=False)
    resumed = _scalars(tmp_path / "m")
    assert [s for s, _ in resumed["train/loss"]] == [1, 2, 3, 4, 5, 6]  # step 3 of the crashed run purged, no repeats
    assert [s for s, _ in resumed["epoch/train_loss"]] == [2, 4, 6]
    assert [v for _, v in resumed["train/loss"]] == pytest.approx([v for _, v in _scalars(tmp_path / "full")["train/loss"]])
    assert [h["train_loss"] for h in full.history] == pytest.approx([v for _, v in resumed["epoch/train_loss"]])
