"""kanva.model: LLaVA assembly on transformers' LlavaForConditionalGeneration (`llava`) and
LlavaOnevisionForConditionalGeneration (`onevision`), presets, processor.

    from kanva.model import build_preset, load_model
    build_preset("tiny", "runs/tiny")                 # -> Path of a plain transformers checkpoint
    model, proc = load_model("runs/tiny")             # proc: KanvaProcessor
    enc = proc.encode(sample, image_root=..., max_length=2048, template="chat", source="file.json")

Importing this package is cheap (the CLI imports it for `--help`); torch and transformers load on first
use of the names below (PEP 562 module `__getattr__`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kanva.data.llava import SampleError
from kanva.errors import KanvaError

_LAZY = {
    "build_preset": "kanva.model.build",
    "build_model": "kanva.model.build",
    "ModelSpec": "kanva.model.presets",
    "PRESETS": "kanva.model.presets",
    "resolve_preset": "kanva.model.presets",
    "KanvaProcessor": "kanva.model.processor",
    "Encoded": "kanva.model.processor",
    "IGNORE": "kanva.model.processor",
    "prepared_smollm2_dir": "kanva.model.lm",
}

__all__ = ["load_model", "SampleError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kanva.model' has no attribute {name!r}")


def expected_image_tokens(config) -> int:
    """Image tokens per image that a LlavaConfig's vision tower + feature selection produce."""
    v = config.vision_config
    grid = v.image_size // v.patch_size
    cls = 1 if v.model_type == "clip_vision_model" else 0
    return grid * grid + cls - (1 if config.vision_feature_select_strategy == "default" else 0)


def load_model(model_dir: str | Path, dtype=None, device: str | None = "cpu", attn_implementation: str | None = None,
               quantization_config=None):
    """(model in eval mode, KanvaProcessor) from a model directory: LlavaForConditionalGeneration, or
    LlavaOnevisionForConditionalGeneration with an OnevisionProcessor for an onevision model.

    `device=None` leaves the weights where transformers put them: under FSDP's low-memory loading the
    processes other than rank 0 hold meta tensors, which cannot be moved (accelerate fills them in).
    """
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaOnevisionForConditionalGeneration

    from kanva.model.processor import KanvaProcessor, model_type

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise KanvaError(f"{model_dir}: not a model directory (no config.json); build one with `kanva model build`")
    proc = KanvaProcessor.from_pretrained(model_dir)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if quantization_config is not None:  # QLoRA: bitsandbytes places the weights on the GPU itself
        extra.update(quantization_config=quantization_config, device_map={"": torch.cuda.current_device()})
    onevision = model_type(model_dir) == "llava_onevision"
    cls = LlavaOnevisionForConditionalGeneration if onevision else LlavaForConditionalGeneration
    try:
        model = cls.from_pretrained(model_dir, dtype=dtype or torch.float32, **extra)
    except ImportError as e:  # flash_attention_2 without the flash-attn package
        raise KanvaError(f"attn_implementation {attn_implementation!r}: {e}") from None
    except (OSError, ValueError) as e:
        raise KanvaError(f"{model_dir}: cannot load the model ({e})") from None
    expected = (model.config.vision_config.image_size // model.config.vision_config.patch_size) ** 2 if onevision \
        else expected_image_tokens(model.config)
    if proc.num_image_tokens != expected:
        raise KanvaError(f"{model_dir}: the processor expands <image> to {proc.num_image_tokens} tokens but the "
                         f"vision tower produces {expected} features per image")
    if device is not None and quantization_config is None:
        model = model.to(device)
    return model.eval(), proc
