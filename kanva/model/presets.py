"""Model presets: named `ModelSpec`s, resolved with optional `key=value` overrides.

A spec names the parts (vision encoder, projector, LM) and the LLaVA settings; `kanva.model.build`
turns it into a checkpoint. Overrides use dotted keys into the spec (`vision_config.num_hidden_layers=6`,
`system_prompt=null`) and are type-checked like any config.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from kanva.config import from_dict
from kanva.errors import KanvaError
from kanva.model.templates import VICUNA_SYSTEM


@dataclass
class ModelSpec:
    """How to assemble a LLaVA model. Exactly one of `vision` / `vision_config` is set."""

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
    image_aspect_ratio: Literal["pad", "resize"] = "pad"
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
    return spec
