"""A small vision-language model made of pretrained parts (the LLaVA recipe), as a ``transformers`` model.

Reference: Liu et al., "Visual Instruction Tuning" (LLaVA), NeurIPS 2023, arXiv:2304.08485; the
MLP projector of Liu et al., "Improved Baselines with Visual Instruction Tuning", CVPR 2024,
arXiv:2310.03744.

A timm vision backbone (EfficientNet-Lite0 with ImageNet weights by default) gives its last
feature map, adaptively average-pooled to a g x g grid of visual tokens; a Linear-GELU-Linear
projector maps them to the language model's width; they replace the embeddings at the image-token
positions of the prompt, and a ``LlamaForCausalLM`` (SmolLM2-135M-Instruct) reads the sequence.
Config, model and processor are registered with transformers' Auto classes when this module is
imported, so ``checkpoints.load_model(folder)`` loads a saved folder through
``AutoModelForImageTextToText`` / ``AutoProcessor`` without ``trust_remote_code``. The vision
backbone is built with ``pretrained=False`` from the config (no network, no wheel); ImageNet
weights enter only in `idiff_lib.thinking.model.small_vlm_build.build_small_vlm`, and a saved folder carries every weight itself.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForImageTextToText, AutoProcessor, GenerationMixin, LlamaForCausalLM,
                          PreTrainedConfig, PreTrainedModel)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import CausalLMOutputWithPast

from idiff_lib.answer.model.weights import create_pretrained
from idiff_lib.core.errors import ParameterError
from idiff_lib.thinking.model.small_vlm_processor import (IMAGE_TOKEN, RAIM_VIEW_NAMES, SMALL_VLM_CHAT_TEMPLATE,
                                                          SmallVlmProcessor, add_image_token)

MODEL_TYPE = "idiff_small_vlm"
DEFAULT_BACKBONE = "tf_efficientnet_lite0"
# Visual tokens per view: the encoder's 7 x 7 last map pooled to 4 x 4, so the four views take 64
# tokens (a 7 x 7 grid takes 196, about 40% of an S0 training sequence of ~500 tokens).
VISION_GRID = 4


class SmallVlmConfig(PreTrainedConfig):
    """Configuration of `SmallVlmForConditionalGeneration`.

    Attributes:
        vision_backbone: timm model name of the vision encoder.
        image_size: square input side of the vision encoder.
        grid: the last feature map is pooled to grid x grid visual tokens per image.
        projector_hidden: hidden width of the Linear-GELU-Linear projector.
        image_token_id: the token id whose embeddings the visual tokens replace.
        text_config: the language model's ``LlamaConfig``.
    """

    model_type = MODEL_TYPE
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    vision_backbone: str = DEFAULT_BACKBONE
    image_size: int = 224
    grid: int = VISION_GRID
    projector_hidden: int = 1024
    image_token_id: int = 0
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True

    @property
    def num_image_tokens(self) -> int:
        return self.grid * self.grid


def create_vision_backbone(name: str, pretrained_weights: bool = False, **kwargs) -> nn.Module:
    """The timm backbone without classifier or pooling; ImageNet weights via `answer.weights` when asked."""
    import timm  # deferred: heavy

    if pretrained_weights:
        return create_pretrained(name, num_classes=0, global_pool="", **kwargs)

    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="")


class _SmallVlmBody:
    """The small VLM without its LM head, which ``PreTrainedModel.base_model`` names: visual tokens merged
    into the text embeddings, then the Llama decoder, returning its last hidden states.

    TRL's GRPO trainer scores tokens with a fused LM head over ``model.base_model(...)``; this is
    that body. A plain object (not a registered submodule), so the model's module tree is unchanged.
    """

    _tp_plan = None
    _pp_plan = None

    def __init__(self, vlm: "SmallVlmForConditionalGeneration"):
        self.vlm = vlm

    def __call__(self, input_ids=None, pixel_values=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                 **kwargs):
        vlm = self.vlm
        if inputs_embeds is None:
            inputs_embeds = vlm.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            inputs_embeds = vlm.merge_image_features(input_ids, inputs_embeds, pixel_values)
        return vlm.language_model.model(attention_mask=attention_mask, position_ids=position_ids,
                                        inputs_embeds=inputs_embeds, **kwargs)


class SmallVlmForConditionalGeneration(PreTrainedModel, GenerationMixin):
    """timm vision encoder -> pooled grid tokens -> MLP projector -> image-token embeddings -> Llama.

    The vision encoder always runs in eval mode (batch-norm running statistics stay as loaded).
    """

    config_class = SmallVlmConfig
    base_model_prefix = "vlm"
    input_modalities = ("image", "text")
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["LlamaDecoderLayer"]
    _tied_weights_keys = {"language_model.lm_head.weight": "language_model.model.embed_tokens.weight"}
    # trained in full under LoRA (`LoraSettings.to_peft`): the projector starts from random init
    lora_modules_to_save = ("multi_modal_projector",)

    def __init__(self, config: SmallVlmConfig):
        super().__init__(config)

        self.vision_tower = create_vision_backbone(config.vision_backbone)
        width = int(self.vision_tower.num_features)
        hidden = config.text_config.hidden_size
        self.multi_modal_projector = nn.Sequential(nn.Linear(width, config.projector_hidden), nn.GELU(),
                                                   nn.Linear(config.projector_hidden, hidden))
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Projector layers get the usual normal init; the backbone and the language model keep their own."""
        projector = getattr(self, "multi_modal_projector", ())
        if isinstance(module, nn.Linear) and any(module is m for m in projector):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vision_tower.eval()
        return self

    @property
    def base_model(self) -> _SmallVlmBody:
        """The model without its LM head (`_SmallVlmBody`): what TRL's fused LM head runs."""
        return _SmallVlmBody(self)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(n_images, grid * grid, hidden): pooled last feature map, projected to the language model's width."""
        dtype = next(self.vision_tower.parameters()).dtype
        feats = self.vision_tower.forward_features(pixel_values.to(dtype))
        grid = self.config.grid
        feats = nn.functional.adaptive_avg_pool2d(feats, (grid, grid)).flatten(2).transpose(1, 2)
        return self.multi_modal_projector(feats.to(self.get_input_embeddings().weight.dtype))

    def merge_image_features(self, input_ids: torch.Tensor, inputs_embeds: torch.Tensor,
                             pixel_values: torch.Tensor) -> torch.Tensor:
        """`inputs_embeds` with the image-token positions replaced by the images' visual tokens, in order."""
        feats = self.get_image_features(pixel_values)
        mask = input_ids == self.config.image_token_id
        if int(mask.sum()) != feats.shape[0] * feats.shape[1]:
            raise ParameterError(f"SmallVlm: {int(mask.sum())} image tokens in input_ids but {feats.shape[0]} images x "
                                 f"{feats.shape[1]} tokens. fix: encode prompts with the model's own processor")
        mask = mask.unsqueeze(-1).expand_as(inputs_embeds)
        return inputs_embeds.masked_scatter(mask, feats.to(inputs_embeds.dtype).reshape(-1))

    def forward(self, input_ids: torch.LongTensor | None = None, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, position_ids: torch.LongTensor | None = None,
                cache=None, inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int | torch.Tensor = 0,
                **kwargs) -> CausalLMOutputWithPast:
        """Language-model forward on the text embeddings with the visual tokens merged in.

        `pixel_values` is used only when given (generate passes it on the prefill step alone);
        other keyword arguments go to ``LlamaForCausalLM.forward``.
        """
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            if input_ids is None:
                raise ParameterError("SmallVlm: pixel_values need input_ids (to find the image tokens)")
            inputs_embeds = self.merge_image_features(input_ids, inputs_embeds, pixel_values)
        return self.language_model(attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                                   inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache,
                                   logits_to_keep=logits_to_keep, **kwargs)


AutoConfig.register(MODEL_TYPE, SmallVlmConfig, exist_ok=True)
AutoModelForImageTextToText.register(SmallVlmConfig, SmallVlmForConditionalGeneration, exist_ok=True)
AutoProcessor.register(SmallVlmConfig, SmallVlmProcessor, exist_ok=True)


def compose(language_model, tokenizer, *, vision_backbone: str = DEFAULT_BACKBONE, image_size: int = 224,
            grid: int = VISION_GRID, projector_hidden: int = 1024, vision: nn.Module | None = None, seed: int = 0,
            view_names: tuple[str, ...] | None = RAIM_VIEW_NAMES):
    """(model, processor) from a ``LlamaForCausalLM``, its tokenizer and a vision backbone.

    The tokenizer gains the ``<image>`` token (its embedding row is the mean of the others), and the
    chat template that renders image items. `vision` = a built timm backbone whose weights are
    copied in (None = random init); the projector is random (seeded). `view_names`: see
    `SmallVlmProcessor` (None = each merged image is one block of visual tokens).
    """
    image_token_id = add_image_token(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    text_config = language_model.config.to_dict()
    text_config["vocab_size"] = max(len(tokenizer), language_model.config.vocab_size)
    config = SmallVlmConfig(text_config=text_config, vision_backbone=vision_backbone, image_size=image_size,
                            grid=grid, projector_hidden=projector_hidden, image_token_id=image_token_id)
    torch.manual_seed(seed)
    model = SmallVlmForConditionalGeneration(config)
    state = dict(language_model.state_dict())
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        old = state.get(key)
        if old is not None and old.shape[0] < config.text_config.vocab_size:
            extra = old.mean(0, keepdim=True).expand(config.text_config.vocab_size - old.shape[0], -1)
            state[key] = torch.cat([old, extra])
    model.language_model.load_state_dict(state, strict=False)
    if vision is not None:
        model.vision_tower.load_state_dict(vision.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    cfg = model.vision_tower.pretrained_cfg
    processor = SmallVlmProcessor(tokenizer, image_size=image_size, num_image_tokens=config.num_image_tokens,
                                  image_mean=cfg.get("mean", (0.5, 0.5, 0.5)), image_std=cfg.get("std", (0.5, 0.5, 0.5)),
                                  image_token=IMAGE_TOKEN, chat_template=SMALL_VLM_CHAT_TEMPLATE,
                                  view_names=view_names)
    return model.eval(), processor
