"""One trained member's settings (`MemberConfig`), saved beside its checkpoints and in a run's spec.

A member is built from notebook 02's `idiff_lib.answer.answer_settings.AnswerSettings` (its
``member`` method). The training defaults are defined here, once: `AnswerSettings` reads its own
defaults from these fields, and the profile overlays (``configs/profiles/02_train_answer_model.yaml``)
change only what differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from idiff_lib.core.errors import ParameterError, suggest
from idiff_lib.core.ontology import CATEGORIES

# "split": the four views (the iDiff input); "merged": one image A|B (the ladder's first row).
MODES = ("split", "merged")
# "avg": the pooled last stage (the paper's); "stats": mean and std of the last four stages.
POOLINGS = ("avg", "stats")


@dataclass
class MemberConfig:
    """Everything that defines one trained member (saved beside its checkpoints).

    Attributes:
        name: the member's folder name inside the run (e.g. ``resnet10t``, ``resnet10t_person``).
        backbone: a key of ANSWER_BACKBONES or any timm model name.
        mode: "split" (four views, the iDiff input) or "merged" (one image A|B, ladder row 1).
        pretrained: load timm's ImageNet weights (needs them in the Hugging Face cache, or
            `checkpoint`).
        checkpoint: a local weights file to load into the backbone instead of downloading.
        init: a state dict of the backbone from the degradation pretext task (`idiff_lib.answer.train.pretext`),
            or a member's ``best.pt`` to fine-tune (specialists start from the generalist).
        category: "" for a generalist, "person" or "scene" for a specialist (trains on that
            category only).
        img_size: crop side fed to the backbone.
        resize: short side the global view is resized to before cropping.
        local_resize: short side the detail view is resized to; 0 keeps its native pixels, so
            noise and halos are seen at the resolution the expert saw them.
        epochs / batch_size / lr / weight_decay / warmup_frac: optimisation (AdamW + cosine).
        hidden / dropout: the difference-aware head.
        pooling: what each view's features are. "avg": the backbone's pooled last stage (the
            paper's); "stats": the mean and the standard deviation over space of each of the
            backbone's last four stages (quality lives in texture statistics at several scales,
            as in the frozen-features row; `idiff_lib.answer.model.backbones.StatsPool`).
        head_lr_mult: the difference heads' learning rate as a multiple of `lr`. The heads start
            from random weights while the backbone starts from ImageNet: a larger step for the heads
            lets them learn in a few hundred steps without moving the pretrained features too far
            (discriminative learning rates, Howard & Ruder, ACL 2018).
        frozen_stages: the backbone's earliest feature stages (timm's ``feature_info``) kept
            frozen; 0 fine-tunes every layer. The early, high-resolution stages cost most of a
            backward pass, and their ImageNet edge and texture filters are what quality needs.
        seed: seeds Python, NumPy and torch; each epoch reseeds from (seed, epoch).
        synthetic_pairs: fresh pairs per epoch drawn from the training photos by the degradation
            generator (0 = only the fixed training pairs).
        swap_aug: randomly exchange A and B (and the label) in training.
    """

    name: str
    backbone: str
    mode: str = "split"
    # The defaults below are notebook 02's (the cpu profile's): `AnswerSettings` reads them from here.
    pretrained: bool = True  # fine-tune ImageNet weights, as the paper does (idiff_lib.answer.model.weights finds them offline)
    checkpoint: str = ""
    init: str = ""
    category: str = ""
    img_size: int = 192  # crop side: the detail crops (about 208 px) stay nearly whole at native pixels
    resize: int = 240  # the global view's short side before the random 192 crop (keeps most of the frame)
    local_resize: int = 0  # 0: detail crops kept at native pixels, where noise, halos and smearing are visible
    epochs: int = 2  # finetune only: epochs per member (method = "heads" trains no backbone)
    batch_size: int = 16  # small batches: more updates per epoch on a small data set
    lr: float = 0.0001  # the paper's AdamW rate
    weight_decay: float = 0.0001  # the paper's value
    warmup_frac: float = 0.05  # share of the steps with a linear warm-up before the cosine decay
    hidden: int = 256  # width of the difference-aware head's hidden layer
    dropout: float = 0.1  # dropout in the difference-aware head
    pooling: str = "stats"  # mean and std of the last four stages (quality is texture statistics); "avg": the paper's
    frozen_stages: int = 2  # earliest backbone stages kept frozen: ImageNet's edge filters serve as they are
    head_lr_mult: float = 10.0  # the difference heads' learning rate as a multiple of lr (random heads on a pretrained backbone)
    seed: int = 42  # the paper's seed; every epoch reseeds from (seed, epoch) so resumed runs match
    synthetic_pairs: int = 0  # fresh pairs per epoch generated from the training photos (0: the fixed train split only)
    swap_aug: bool = True  # exchange A and B (and the label) at random in training

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParameterError(f"member {self.name}: mode {self.mode!r} is not one of {MODES}.{suggest(self.mode, MODES)}")
        if self.pooling not in POOLINGS:
            raise ParameterError(f"member {self.name}: pooling {self.pooling!r} is not one of {POOLINGS}."
                                 f"{suggest(self.pooling, POOLINGS)}")
        if self.category not in ("", *CATEGORIES):
            raise ParameterError(f"member {self.name}: category {self.category!r} must be '', 'person' or 'scene'")
        if self.head_lr_mult <= 0:
            raise ParameterError(f"member {self.name}: head_lr_mult must be > 0, got {self.head_lr_mult}")
        if self.frozen_stages < 0:
            raise ParameterError(f"member {self.name}: frozen_stages must be >= 0, got {self.frozen_stages}")
        for key in ("img_size", "resize", "epochs", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ParameterError(f"member {self.name}: {key} must be >= 1, got {getattr(self, key)}")
        if self.resize < self.img_size:
            raise ParameterError(f"member {self.name}: resize ({self.resize}) must be >= img_size ({self.img_size})")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemberConfig:
        """The config of a saved dict; an unknown key is refused with close matches."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            key = sorted(unknown)[0]
            raise ParameterError(f"unknown member setting {key!r}.{suggest(key, known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (saved in config.json, checkpoints and the run's spec)."""
        return asdict(self)
