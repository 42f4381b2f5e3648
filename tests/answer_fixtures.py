"""Tiny labelled pairs made from scikit-image sample photos, for the answer-model and ensemble tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from idiff_lib.data.pairs import format_completion, make_pair, write_pairs
from idiff_lib.data.views import merge_side_by_side

PHOTOS = {"p": ("astronaut",), "s": ("chelsea", "coffee", "rocket")}


def _photo(name: str, side: int) -> np.ndarray:
    img = getattr(data, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.LANCZOS))


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = img.astype(np.float32) + rng.normal(0, 18, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_pairs_file(folder: Path, n: int = 8, side: int = 96, seed: int = 0, labelled: bool = True,
                    name: str = "pairs.jsonl") -> Path:
    """`n` pairs (half person ``p_``, half scene ``s_``); the clean side is the better one."""
    rng = np.random.default_rng(seed)
    img_dir = folder / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        prefix = "p" if i % 2 == 0 else "s"
        photo = _photo(PHOTOS[prefix][i // 2 % len(PHOTOS[prefix])], side)
        bad = _degrade(photo, rng)
        a_better = bool(rng.random() < 0.5)
        left, right = (photo, bad) if a_better else (bad, photo)
        pid = f"{prefix}_{seed:02d}{i:03d}"
        c = side // 2
        Image.fromarray(merge_side_by_side(left, right)).save(img_dir / f"{pid}_merged_c0.png")
        Image.fromarray(merge_side_by_side(left[c // 2:c // 2 + c, c // 2:c // 2 + c],
                                           right[c // 2:c // 2 + c, c // 2:c // 2 + c])).save(img_dir / f"{pid}_merged_c1.png")
        refs = [f"images/{pid}_merged_c0.png", f"images/{pid}_merged_c1.png"]
        completion = format_completion("Region Attribute: noise\nA is cleaner." if a_better else
                                       "Region Attribute: noise\nB is cleaner.", "A" if a_better else "B") if labelled else None
        pairs.append(make_pair(refs, completion, base_dir=folder))
    path = folder / name
    write_pairs(pairs, path)
    return path


def train_tiny_answer_run(step_dir: Path, pairs: list) -> Path:
    """A notebook-02 step folder holding a one-member network ensemble (resnet10t, 32 px, one epoch)."""
    from idiff_lib.answer.model import inputs
    from idiff_lib.answer.experiments import ensemble, ensemblers, run_store
    from idiff_lib.answer.train import training

    cfg = bare_member(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40, epochs=1,
                      batch_size=4, hidden=8)
    training.train_member(cfg, inputs.load_items(pairs, cfg), (), step_dir / "members" / "m", progress=False)
    run_store.save_answer_run(step_dir, [ensemble.network_member("m", {"": step_dir / "members" / "m"})],
                              ensemblers.make_ensembler("mean"))
    return step_dir


# A hand-built member as these tests were written: random weights, the paper's pooling and optimiser
# shape (MemberConfig's own defaults are notebook 02's cpu profile: ImageNet weights, stats pooling, ...).
BARE_MEMBER = dict(pretrained=False, pooling="avg", frozen_stages=0, head_lr_mult=1.0, epochs=10, batch_size=32,
                   img_size=224, resize=256, local_resize=256)


def bare_member(**kw):
    """A `MemberConfig` with `BARE_MEMBER`'s settings, `kw` on top."""
    from idiff_lib.answer.model.member_config import MemberConfig

    return MemberConfig(**{**BARE_MEMBER, **kw})


def tiny_member_cfg(**kw):
    """A resnet10t member at 32 px, two epochs: the tests' smallest trainable member (``kw`` overrides)."""
    base = dict(name="m", backbone="resnet10t", img_size=32, resize=40, local_resize=40, epochs=2,
                batch_size=4, lr=1e-3, hidden=16, seed=3)
    base.update(kw)
    return bare_member(**base)


def drop_chat_template(folder: Path) -> None:
    """Remove every chat template a saved tokenizer folder holds (file or tokenizer_config entry)."""
    import json

    for name in ("chat_template.jinja", "chat_template.json"):
        (folder / name).unlink(missing_ok=True)
    config = folder / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
