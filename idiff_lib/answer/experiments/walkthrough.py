"""One pair through a member network, step by step (notebook 02's teaching section).

The member sees four central crops (global A, global B, local A, local B), turns each into a
feature vector with the shared backbone, and feeds each stream's pair of vectors to its
difference-aware head as ``[f_L, f_R, f_L - f_R, |f_L - f_R|]``. The head's MLP ``g`` scores both
orders; the stream logit is ``g(L, R) - g(R, L)``, and the pair's logit is the sum of the global
and the local stream's. `walk_pair` keeps every intermediate so a figure can show them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from idiff_lib.answer.model.inputs import crop_views, crops_to_tensor, prepare_views
from idiff_lib.answer.model.member_config import MemberConfig
from idiff_lib.answer.model.network import DiffHead, PairwiseModel, build_model
from idiff_lib.core.errors import ParameterError
from idiff_lib.data.pairs import Pair
from idiff_lib.data.views import load_views

VIEW_LABELS = ("global A", "global B", "local A", "local B")  # the order of the network's four views
STREAMS = ("global", "local")  # stream k reads views 2k (A, left) and 2k + 1 (B, right)


@dataclass
class StreamStep:
    """One stream's pass through its difference head.

    Attributes:
        head_input: ``[f_L, f_R, f_L - f_R, |f_L - f_R|]``, shape (4 * D,).
        g_lr: the head's MLP on that input, ``g(L, R)``.
        g_rl: the same MLP with the sides exchanged, ``g(R, L)``.
        logit: ``g(L, R) - g(R, L)``, this stream's share of the pair's logit.
    """

    head_input: np.ndarray
    g_lr: float
    g_rl: float
    logit: float


@dataclass
class Walkthrough:
    """Every intermediate of one pair through one member (eval mode, central crops).

    Attributes:
        pair_id: the pair's id.
        crops: (4, S, S, 3) uint8 central crops, in `VIEW_LABELS` order.
        features: (4, D) backbone feature vectors, one per view.
        streams: the global and the local `StreamStep`.
        logit: the network's logit of "A is better" (global + local stream).
        p: sigmoid(logit), the probability that A is better.
        swapped_logit: the logit of the same pair with A and B exchanged (exactly ``-logit``).
    """

    pair_id: str
    crops: np.ndarray
    features: np.ndarray
    streams: dict[str, StreamStep]
    logit: float
    p: float
    swapped_logit: float

    def summary(self) -> pd.DataFrame:
        """One row per step: what it is, its shape and, for the scalars, its value."""
        d = self.features.shape[1]
        rows = [("crops (global A, global B, local A, local B)", str(tuple(self.crops.shape)), None),
                ("backbone features f per view", str(tuple(self.features.shape)), None)]
        for name, s in self.streams.items():
            rows += [(f"{name} head input [f_L, f_R, f_L-f_R, |f_L-f_R|]", f"({4 * d},) = 4 x {d}", None),
                     (f"{name} g(L, R)", "()", s.g_lr), (f"{name} g(R, L)", "()", s.g_rl),
                     (f"{name} stream logit g(L,R) - g(R,L)", "()", s.logit)]
        rows += [("logit (global + local)", "()", self.logit), ("p = sigmoid(logit)", "()", self.p),
                 ("logit of the swapped pair (B, A)", "()", self.swapped_logit)]
        return pd.DataFrame(rows, columns=["step", "shape", "value"])


def _stream(head: DiffHead, f_l: torch.Tensor, f_r: torch.Tensor) -> StreamStep:
    """The head's input and both orders of its MLP for one stream of one pair (rows of shape (1, D))."""
    head_input = torch.cat([f_l, f_r, f_l - f_r, (f_l - f_r).abs()], 1)
    g_lr = float(head.mlp(head_input).squeeze())
    g_rl = float(head.mlp(torch.cat([f_r, f_l, f_r - f_l, (f_r - f_l).abs()], 1)).squeeze())
    return StreamStep(head_input[0].cpu().numpy(), g_lr, g_rl, float(head(f_l, f_r)[0]))


def untrained_member(cfg: MemberConfig) -> PairwiseModel:
    """A member's network before training (`build_model`: ImageNet weights when `cfg.pretrained`), in eval mode.

    Its random initialisation is drawn from ``cfg.seed`` inside a forked RNG, so it is the same on
    every run and leaves the global generators (and so the training after it) untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_model(cfg).eval()


@torch.no_grad()
def walk_pair(model: PairwiseModel, pair: Pair) -> Walkthrough:
    """Walk one pair through a split-mode member: crops, features, head inputs, stream logits, p, the swap.

    The model is put in eval mode (no dropout) and sees the pair's central crops on its own device.

    Raises:
        ParameterError: when the member is in "merged" mode (it has no per-view features).
        DataError: naming the pair's file when an image is missing or unreadable.
    """
    if model.cfg.mode != "split":
        raise ParameterError(f"member {model.cfg.name}: the walkthrough needs a 'split' member (four views), "
                             f"got mode {model.cfg.mode!r}. fix: build it with mode='split'")
    model = model.eval()
    device = next(model.parameters()).device
    crops = crop_views(prepare_views(load_views(pair), model.cfg), model.cfg.img_size, None)
    x = crops_to_tensor(crops[None]).to(device)
    f = model.features(model.normalise(x.flatten(0, 1)))
    streams = {name: _stream(getattr(model, f"{name}_head"), f[2 * k:2 * k + 1], f[2 * k + 1:2 * k + 2])
               for k, name in enumerate(STREAMS)}
    logit = float(model(x)[0])
    swapped = float(model(x[:, [1, 0, 3, 2]])[0])
    return Walkthrough(pair.id, crops, f.cpu().numpy(), streams, logit, float(torch.sigmoid(torch.tensor(logit))), swapped)
