"""What vLLM's llava-onevision loader reads from an exported checkpoint, checked without vLLM (which needs a GPU).

vLLM builds `LlavaOnevisionForConditionalGeneration` from config.json: the architecture name picks the
model class; `vision_config` must be a SigLIP or CLIP vision config (its image_size, patch_size, hidden_size
and num_hidden_layers size the tower, cut after `vision_feature_layer`, an int); `vision_feature_select_strategy`
is "default" or "full"; `image_grid_pinpoints` tile images; the projector is two biased Linear layers
(`multimodal_projector_bias` true) with `projector_hidden_act`; `text_config` is built as the vLLM model its
`architectures` names; `image_token_index` / `video_token_index` mark placeholders; the weights hold
`image_newline` beside `vision_tower.*`, `multi_modal_projector.*` and `language_model.*`. Older vLLM releases
count AnyRes tokens with a fixed budget of 9 crops, so a model with another `anyres_max_N` is flagged (a
warning, not an error: current vLLM takes the count from transformers' processor).
"""

from __future__ import annotations

import re
from typing import Any

VISION_TYPES = ("siglip_vision_model", "clip_vision_model")
WEIGHT_PREFIXES = ("vision_tower.", "multi_modal_projector.linear_1.", "multi_modal_projector.linear_2.",
                   "language_model.")


def check_onevision_for_vllm(config: dict[str, Any], weight_names: list[str]) -> tuple[list[str], list[str]]:
    """(errors, warnings) for an exported onevision checkpoint's config.json and weight names."""
    errors: list[str] = []
    warnings: list[str] = []
    if config.get("architectures") != ["LlavaOnevisionForConditionalGeneration"]:
        errors.append(f"architectures is {config.get('architectures')}, not ['LlavaOnevisionForConditionalGeneration']")
    vision = config.get("vision_config") or {}
    if vision.get("model_type") not in VISION_TYPES:
        errors.append(f"vision_config.model_type {vision.get('model_type')!r} is not one of {VISION_TYPES}")
    for key in ("image_size", "patch_size", "hidden_size", "num_hidden_layers"):
        if not isinstance(vision.get(key), int):
            errors.append(f"vision_config.{key} is missing")
    layer = config.get("vision_feature_layer")
    if not isinstance(layer, int) or not -vision.get("num_hidden_layers", 0) - 1 <= layer <= vision.get(
            "num_hidden_layers", 0):
        errors.append(f"vision_feature_layer {layer!r} is not one layer of the tower")
    if config.get("vision_feature_select_strategy") not in ("default", "full"):
        errors.append(f"vision_feature_select_strategy {config.get('vision_feature_select_strategy')!r}")
    size = vision.get("image_size") or 1
    pins = config.get("image_grid_pinpoints")
    if not pins or any(len(p) != 2 or p[0] % size or p[1] % size for p in pins):
        errors.append(f"image_grid_pinpoints {pins!r} are not (height, width) multiples of {size}")
    if config.get("multimodal_projector_bias") is not True:
        errors.append("multimodal_projector_bias must be true (vLLM's projector has biases)")
    if not config.get("projector_hidden_act"):
        errors.append("projector_hidden_act is missing")
    text = config.get("text_config") or {}
    if not text.get("architectures"):
        errors.append("text_config.architectures is missing (vLLM builds the LM from it)")
    vocab = text.get("vocab_size", 0)
    for key in ("image_token_index", "video_token_index"):
        if not isinstance(config.get(key), int) or not 0 <= config[key] < vocab:
            errors.append(f"{key} {config.get(key)!r} is not a token of the {vocab}-token vocabulary")
    names = set(weight_names)
    if "image_newline" not in names:
        errors.append("the weights have no image_newline")
    for prefix in WEIGHT_PREFIXES:
        if not any(n.startswith(prefix) for n in names):
            errors.append(f"the weights have no {prefix}* tensors")
    aspect = config.get("vision_aspect_ratio", "anyres_max_9")
    if not re.fullmatch(r"anyres_max_\d+", str(aspect)):
        errors.append(f"vision_aspect_ratio {aspect!r} is not anyres_max_N")
    elif aspect != "anyres_max_9":
        warnings.append(f"vision_aspect_ratio is {aspect}: vLLM releases that count AnyRes tokens themselves assume "
                        "anyres_max_9 (current ones ask transformers' processor, which reads the saved value)")
    return errors, warnings
