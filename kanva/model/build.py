"""Assemble a `LlavaForConditionalGeneration` from parts and save it as a plain transformers checkpoint.

Parts: a vision encoder (CLIP/SigLIP checkpoint, or a SigLIP config from scratch), a projector, a causal LM.
LLaVA-1.5 settings: feature layer -2, CLS dropped for CLIP ("default"), all tokens kept for SigLIP
("full"); `<image>` added to the tokenizer as a special token and the LM embeddings resized.

Projectors: `mlp2x_gelu` is Linear-GELU-Linear (LLaVA-1.5). `linear` is the same module with
`projector_hidden_act="linear"`, i.e. identity between linear_1 and linear_2: the composition of two
linear maps is one affine map (as LLaVA-1's single Linear), stored as two matrices so the checkpoint
stays a stock `LlavaForConditionalGeneration`.

Truncation: LLaVA reads hidden_states[feature_layer]; every encoder layer after it runs for nothing.
With `truncate_vision`, the encoder keeps only the layers up to the feature layer
(num_hidden_layers = that count) and the config says vision_feature_layer = -1, which selects the very
same tensor (hidden states before the post-layernorm in CLIP and SigLIP alike). Unused pooling heads
(SigLIP's attention-pooling head) are dropped for the same reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from kanva import __version__
from kanva.data.llava import IMAGE_TOKEN, VIDEO_TOKEN
from kanva.errors import KanvaError
from kanva.model.presets import ModelSpec, resolve_preset
from kanva.model.templates import get_template

FAMILIES = {"clip_vision_model": "clip", "siglip_vision_model": "siglip"}


def _vision_part(spec: ModelSpec):
    """(vision model, image processor, family) from the spec."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, SiglipVisionConfig, SiglipVisionModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    if spec.vision_config is not None:
        try:
            config = SiglipVisionConfig(**{"vision_use_head": False, **spec.vision_config})
        except TypeError as e:
            raise KanvaError(f"vision_config: {e}") from None
        config.initializer_range = spec.initializer_range
        size = {"height": config.image_size, "width": config.image_size}
        # The PIL backend needs no torchvision; the saved JSON loads with either backend.
        processor = SiglipImageProcessorPil(size=size, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        return SiglipVisionModel(config), processor, "siglip"
    try:
        config = AutoConfig.from_pretrained(spec.vision)
        processor = AutoImageProcessor.from_pretrained(spec.vision)
    except OSError as e:
        raise KanvaError(f"vision encoder {spec.vision!r}: cannot load ({e})") from None
    config = getattr(config, "vision_config", config)  # a full CLIP/SigLIP checkpoint: take its vision half
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise KanvaError(f"vision encoder {spec.vision!r}: model type {config.model_type!r} is not CLIP or SigLIP")
    if family == "siglip":
        config.vision_use_head = False  # LLaVA never uses the pooled output
    model = AutoModel.from_pretrained(spec.vision, config=config)
    return model, processor, family


def _truncate(vision, feature_layer: int) -> tuple[int, int]:
    """Keep the layers up to `feature_layer` (hidden_states index); returns (layers before, layers after)."""
    layers = vision.encoder.layers
    total = len(layers)
    keep = total + 1 + feature_layer if feature_layer < 0 else feature_layer
    if not 1 <= keep <= total:
        raise KanvaError(f"vision_feature_layer {feature_layer} is outside an encoder of {total} layers")
    vision.encoder.layers = layers[:keep]
    vision.config.num_hidden_layers = keep
    return total, keep


def _tiny_lm(spec: ModelSpec):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from kanva.model.tiny_tokenizer import tiny_tokenizer

    tokenizer = tiny_tokenizer(spec.tokenizer_vocab)
    cfg = dict(spec.lm_config)
    try:
        config = LlamaConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None, initializer_range=spec.initializer_range, **cfg,
        )
    except TypeError as e:
        raise KanvaError(f"lm_config: {e}") from None
    return LlamaForCausalLM(config).to(torch.float32), tokenizer


def _assemble_llava(spec: ModelSpec, vision, lm, tokenizer, feature_layer: int, strategy: str, num_image_tokens: int):
    """A LlavaForConditionalGeneration from the parts (projector freshly initialised from the seeded RNG)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    config = LlavaConfig(
        vision_config=vision.config.to_dict(),
        text_config=lm.config.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=num_image_tokens,
        projector_hidden_act="gelu" if spec.projector == "mlp2x_gelu" else "linear",
        vision_feature_select_strategy=strategy,
        vision_feature_layer=feature_layer,
        tie_word_embeddings=bool(lm.config.tie_word_embeddings),
    )
    return install_parts(LlavaForConditionalGeneration, config, vision, lm, LlavaMultiModalProjector)


def install_parts(model_class, config, vision, lm, projector_class):
    """A `model_class` skeleton on the meta device (no wasted random init) with the built vision tower and LM
    put in and a fresh projector (seeded default Linear init); configs follow the parts."""
    import torch

    with torch.device("meta"):
        model = model_class(config)
    model.model.vision_tower = vision
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    model.model.multi_modal_projector = projector_class(config)
    model.config.text_config = lm.config
    model.config.vision_config = vision.config
    return model


def build_model(spec: ModelSpec, out_dir: str | Path, seed: int = 0, preset: str | None = None,
                force: bool = False) -> Path:
    """Assemble the model described by `spec` and save it (atomically) to `out_dir`; returns the dir."""
    import torch
    from transformers import GenerationConfig, LlavaProcessor

    from kanva.model.lm import load_lm

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise KanvaError(f"{out}: exists and is not empty (use --force to replace it)")

    with torch.random.fork_rng(devices=[]):  # seeded random parts, without touching the caller's RNG
        torch.manual_seed(seed)
        vision, image_processor, family = _vision_part(spec)
        if spec.lm == "tiny":
            lm, tokenizer = _tiny_lm(spec)
        else:
            lm, tokenizer = load_lm(spec.lm)

        template = get_template(spec.chat_template, spec.system_prompt)
        # <image> (and <video>) are special tokens: never split, never merged with neighbours.
        media_tokens = [IMAGE_TOKEN, VIDEO_TOKEN] if spec.architecture == "onevision" else [IMAGE_TOKEN]
        tokenizer.add_special_tokens({"additional_special_tokens": media_tokens}, replace_extra_special_tokens=False)
        if tokenizer.pad_token is None:  # Llama/Vicuna: pad with <unk> as LLaVA does, else with EOS
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        tokenizer.chat_template = template.jinja
        if template.end_of_turn not in tokenizer.get_vocab():
            raise KanvaError(f"template {template.name}: end-of-turn {template.end_of_turn!r} is not one token "
                             f"of the LM's tokenizer")
        if len(tokenizer) > lm.get_input_embeddings().num_embeddings:
            lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)

        feature_layer = spec.vision_feature_layer
        layers_total = layers_kept = len(vision.encoder.layers)
        if spec.truncate_vision:
            layers_total, layers_kept = _truncate(vision, feature_layer)
            feature_layer = -1
        strategy = spec.vision_feature_select_strategy or ("default" if family == "clip" else "full")
        vcfg = vision.config
        grid = vcfg.image_size // vcfg.patch_size
        num_image_tokens = grid * grid + (1 if family == "clip" else 0) - (1 if strategy == "default" else 0)

        generation_config = GenerationConfig(
            eos_token_id=tokenizer.convert_tokens_to_ids(template.end_of_turn),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
        )
        if spec.architecture == "onevision":
            from kanva.model.onevision import assemble_onevision

            model, processor, extra = assemble_onevision(spec, vision, lm, tokenizer, image_processor, template.jinja,
                                                         feature_layer, strategy, num_image_tokens)
        else:
            model = _assemble_llava(spec, vision, lm, tokenizer, feature_layer, strategy, num_image_tokens)
            processor = LlavaProcessor(
                image_processor=image_processor,
                tokenizer=tokenizer,
                patch_size=vcfg.patch_size,
                vision_feature_select_strategy=strategy,
                chat_template=template.jinja,
                num_additional_image_tokens=1 if family == "clip" else 0,
            )
            extra = {}
        model.generation_config = generation_config
    model.tie_weights()
    model = model.to(torch.float32).eval()

    record = {
        "kanva_version": __version__,
        "preset": preset,
        "seed": seed,
        "spec": dataclasses.asdict(spec),
        "parts": {
            "vision": spec.vision or "siglip (from scratch)",
            "vision_family": family,
            "vision_layers": {"total": layers_total, "kept": layers_kept,
                              "feature_layer_requested": spec.vision_feature_layer},
            "projector": spec.projector,
            "lm": spec.lm,
        },
        "architecture": spec.architecture,
        "num_image_tokens": num_image_tokens,
        "image_aspect_ratio": spec.image_aspect_ratio,
        **extra,
        "template": {"name": template.name, "end_of_turn": template.end_of_turn,
                     "system_prompt": template.system_prompt},
    }
    _save_atomic(model, processor, record, out)
    return out


def _save_atomic(model, processor, record: dict, out: Path) -> None:
    """Save into a temporary sibling folder, then rename: an interrupted build leaves no half checkpoint."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.build-"))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "kanva.json").write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_preset(name: str, out_dir: str | Path, seed: int = 0, overrides: dict | None = None,
                 force: bool = False) -> Path:
    """Build preset `name` (with dotted-key `overrides`) into `out_dir`; returns the model directory."""
    return build_model(resolve_preset(name, overrides), out_dir, seed=seed, preset=name, force=force)
