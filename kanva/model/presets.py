"""Model presets: named `ModelSpec`s, resolved with optional `key=value` overrides.

A spec names the parts (vision encoder, projector, LM) and the LLaVA settings; `kanva.model.build`
turns it into a checkpoint. Overrides use dotted keys into the spec (`vision_config.num_hidden_layers=6`,
`system_prompt=null`) and are type-checked like any config.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from kanva.config import from_dict
from kanva.errors import KanvaError
from kanva.model.templates import VICUNA_SYSTEM


# image_aspect_ratio per architecture, the first the default. llava: LLaVA-1.5's "pad" to a square with the
# mean colour, or "resize" (squash) to the encoder's square. onevision: "anyres" (its image processor tiles).
ASPECT_RATIOS = {"llava": ("pad", "resize"), "onevision": ("anyres",)}


@dataclass
class ModelSpec:
    """How to assemble a LLaVA model. Exactly one of `vision` / `vision_config` is set."""

    # "llava": LLaVA-1.5 (LlavaForConditionalGeneration, one view per image). "onevision": LLaVA-OneVision
    # (LlavaOnevisionForConditionalGeneration: AnyRes crops + base view per single image, base view per image
    # of a multi-image sample, videos as frames pooled 2x2).
    architecture: Literal["llava", "onevision"] = "llava"

    # Vision encoder: a CLIP or SigLIP checkpoint (hub id or local dir) ...
    vision: str | None = None
    # ... or SiglipVisionConfig kwargs for a small encoder trained from scratch.
    vision_config: dict[str, Any] | None = None
    # LLaVA-1.5 takes the penultimate layer of a pretrained contrastive encoder (its last layer is tuned to
    # the CLIP objective). A from-scratch encoder has no such layer, so its presets use -1 (all layers).
    vision_feature_layer: int = -2
    # "default" drops the CLS token (CLIP), "full" keeps all tokens (SigLIP has no CLS); None picks by family.
    vision_feature_select_strategy: Literal["default", "full"] | None = None
    # Drop the encoder layers after the feature layer at build time, so a frozen encoder never runs them.
    truncate_vision: bool = True
    projector: Literal["linear", "mlp2x_gelu"] = "mlp2x_gelu"
    # "smollm2" (embedded GGUF, converted once), "tiny" (random Llama + tiny BPE), a .gguf path, dir or hub id.
    lm: str = "smollm2"
    # LlamaConfig kwargs when lm == "tiny".
    lm_config: dict[str, Any] | None = None
    tokenizer_vocab: int = 768  # vocabulary of the tiny BPE (lm == "tiny")
    # How an image meets the encoder's square: one of ASPECT_RATIOS[architecture].
    image_aspect_ratio: Literal["pad", "resize", "anyres"] = "pad"
    # onevision only. The (height, width) grids AnyRes may tile an image into, in pixels (multiples of the
    # encoder's image size); None: every grid of 1..6 x 1..6 crops, as LLaVA-OneVision uses.
    image_grid_pinpoints: list[list[int]] | None = None
    # onevision only. "anyres_max_N": a tiled image's features are interpolated down to about N crops' worth.
    vision_aspect_ratio: str = "anyres_max_9"
    max_frames: int = 32  # onevision only: frames sampled from every video
    chat_template: Literal["chatml", "vicuna_v1"] = "chatml"
    system_prompt: str | None = None
    # Init scale of the random parts (tiny LM); larger than HF's 0.02 so a random model's greedy choices
    # are decisive rather than near-ties, which keeps batched-vs-single comparisons meaningful.
    initializer_range: float = 0.02
    notes: str = ""


PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8,  # 4x4 patches -> 16 image tokens
        ),
        vision_feature_layer=-1,
        lm="tiny",
        lm_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        ),
        initializer_range=0.2,
        notes="random 2-layer SigLIP (32 px, 16 tokens) + random 2-layer Llama with a 768-token BPE; for tests",
    ),
    "smol": ModelSpec(
        vision_config=dict(
            hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3,
            image_size=96, patch_size=16,  # 6x6 patches -> 36 image tokens
        ),
        vision_feature_layer=-1,
        lm="smollm2",
        system_prompt="You are a helpful assistant.",  # 6 tokens; SmolLM2 answers well with it
        notes="SmolLM2-135M-Instruct (embedded GGUF) + a 4-layer SigLIP-shaped encoder from scratch",
    ),
    "tiny-ov": ModelSpec(
        architecture="onevision",
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8,  # 4x4 patches: 16 tokens per view, 4 per video frame
        ),
        vision_feature_layer=-1,
        image_aspect_ratio="anyres",
        image_grid_pinpoints=[[32 * h, 32 * w] for h in (1, 2, 3) for w in (1, 2, 3)],
        vision_aspect_ratio="anyres_max_4",
        max_frames=8,
        lm="tiny",
        lm_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        ),
        initializer_range=0.2,
        notes="OneVision layout at test size: random SigLIP (32 px views, grids up to 3x3, anyres_max_4) + "
              "random 2-layer Llama; for tests",
    ),
    "smol-ov": ModelSpec(
        architecture="onevision",
        vision_config=dict(
            hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3,
            image_size=96, patch_size=16,  # 6x6 patches: 36 tokens per view, 9 per video frame
        ),
        vision_feature_layer=-1,
        image_aspect_ratio="anyres",
        image_grid_pinpoints=[[96 * h, 96 * w] for h in (1, 2, 3) for w in (1, 2, 3)],
        vision_aspect_ratio="anyres_max_4",
        max_frames=8,
        lm="smollm2",
        system_prompt="You are a helpful assistant.",
        notes="SmolLM2-135M-Instruct (embedded GGUF) + a 4-layer SigLIP-shaped encoder from scratch, OneVision "
              "layout (96 px views, grids up to 3x3, anyres_max_4, 8 frames per video)",
    ),
    "llava-onevision-0.5b": ModelSpec(
        architecture="onevision",
        vision="google/siglip-so400m-patch14-384",
        vision_feature_layer=-1,
        image_aspect_ratio="anyres",
        lm="Qwen/Qwen2-0.5B-Instruct",
        system_prompt="You are a helpful assistant.",
        notes="LLaVA-OneVision-0.5B layout: SigLIP-so400m/14-384 (729 tokens per view, grids up to 6x6, "
              "anyres_max_9, 32 frames) + Qwen2-0.5B-Instruct; needs the hub",
    ),
    "llava-onevision-7b": ModelSpec(
        architecture="onevision",
        vision="google/siglip-so400m-patch14-384",
        vision_feature_layer=-1,
        image_aspect_ratio="anyres",
        lm="Qwen/Qwen2-7B-Instruct",
        system_prompt="You are a helpful assistant.",
        notes="LLaVA-OneVision-7B layout: SigLIP-so400m/14-384 + Qwen2-7B-Instruct; needs the hub",
    ),
    "llava-1.5-7b": ModelSpec(
        vision="openai/clip-vit-large-patch14-336",
        lm="lmsys/vicuna-7b-v1.5",
        chat_template="vicuna_v1",
        system_prompt=VICUNA_SYSTEM,
        notes="LLaVA-1.5 recipe: CLIP ViT-L/14-336 (576 tokens, layer -2) + Vicuna-7B v1.5; needs the hub",
    ),
}


def _set_dotted(data: dict, key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        data[head] = value
        return
    if data.get(head) is None:
        data[head] = {}
    if not isinstance(data[head], dict):
        raise KanvaError(f"override {key!r}: {head!r} is not a mapping")
    _set_dotted(data[head], rest, value)


def resolve_preset(name: str, overrides: dict[str, Any] | None = None) -> ModelSpec:
    """The spec of preset `name` with dotted-key `overrides` applied (unknown keys are errors)."""
    if name not in PRESETS:
        raise KanvaError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    data = copy.deepcopy(dataclasses.asdict(PRESETS[name]))
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    spec = from_dict(ModelSpec, data, where=f"preset {name}")
    if (spec.vision is None) == (spec.vision_config is None):
        raise KanvaError(f"preset {name}: set exactly one of 'vision' (checkpoint) or 'vision_config' (from scratch)")
    if spec.lm == "tiny" and spec.lm_config is None:
        raise KanvaError(f"preset {name}: lm 'tiny' needs lm_config")
    allowed = ASPECT_RATIOS[spec.architecture]
    if spec.image_aspect_ratio not in allowed:
        hint = (" ('anyres' needs architecture 'onevision': --preset tiny-ov, smol-ov, llava-onevision-0.5b or "
                "llava-onevision-7b)" if spec.image_aspect_ratio == "anyres" else "")
        raise KanvaError(f"preset {name}: architecture {spec.architecture!r} takes image_aspect_ratio "
                         f"{' or '.join(map(repr, allowed))}, got {spec.image_aspect_ratio!r}{hint}")
    if not re.fullmatch(r"anyres_max_[1-9][0-9]*", spec.vision_aspect_ratio):
        raise KanvaError(f"preset {name}: vision_aspect_ratio must be anyres_max_N (N >= 1), got "
                         f"{spec.vision_aspect_ratio!r}")
    if spec.max_frames < 1:
        raise KanvaError(f"preset {name}: max_frames must be >= 1, got {spec.max_frames}")
    return spec
