"""A stage's model as it trains: loaded in the training dtype, frozen or trainable per module group,
LoRA injected, activations checkpointed where the stage says.

Dtypes. With `mixed_precision` bf16 (or fp16) the model is loaded in that dtype, so a frozen 7B LM
costs 2 bytes a weight, not 4; the *trainable* weights are then cast back to float32, because they are
AdamW's master weights (autocast computes the matmuls in bf16 either way). This is also what
accelerate's FSDP2 requires (uniform float32 trainable weights per sharded group) and what DeepSpeed's
bf16 mode does with its own float32 copies. Without mixed precision everything is float32.

Low-memory loading under FSDP and ZeRO-3 is transformers' own, switched on by the accelerate config:
with `fsdp_cpu_ram_efficient_loading` only local rank 0 reads the weights (the others hold meta
tensors until accelerate broadcasts the shards), with `zero3_init_flag` every weight is partitioned
as it is read (`deepspeed.zero.Init`). Both need the Accelerator to exist before `from_pretrained`
and the loaded model left where transformers put it (no `.to(device)`), which this module does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kanva.train.modules import add_lora, set_trainable
from kanva.train.recipe import Recipe, Stage

# accelerate's mixed_precision -> the dtype frozen weights are loaded and kept in.
LOAD_DTYPE = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class StageModel:
    llava: nn.Module  # the LlavaForConditionalGeneration (LoRA injected in place when the stage has lm_lora)
    peft_model: nn.Module | None  # peft's wrapper around `llava` for lm_lora stages
    proc: object  # KanvaProcessor
    groups: dict[str, list[nn.Parameter]]  # trainable parameters per recipe module group


def towers(llava: nn.Module) -> dict[str, nn.Module]:
    """The transformers models behind each checkpointable recipe name (recipe.CHECKPOINTABLE)."""
    return {"vision": llava.model.vision_tower, "lm": llava.model.language_model}


def enable_checkpointing(llava: nn.Module, names: list[str]) -> None:
    """Recompute the named towers' layer activations in backward (transformers' activation checkpointing,
    non-reentrant: it also works when only LoRA adapters or nothing inside the tower trains)."""
    for name in names:
        towers(llava)[name].activation_checkpointing_enable({"use_reentrant": False})


def load_stage_model(recipe: Recipe, stage: Stage, src: Path, mixed_precision: str = "no") -> StageModel:
    """Load `src` for `stage`: training dtype, trainable groups, LoRA, checkpointing, train mode."""
    from kanva.model import load_model

    dtype = LOAD_DTYPE[mixed_precision or "no"]
    attn = recipe.attn_implementation
    if stage.packing and attn == "sdpa":  # per-sample sdpa on packed rows (packed_attention.py)
        from kanva.train.packed_attention import register

        attn = register()
    quant = _qlora_config(stage) if stage.lora is not None and stage.lora.bits is not None else None
    llava, proc = load_model(src, dtype=dtype, device=None, attn_implementation=attn, quantization_config=quant)
    peft_model = add_lora(llava, stage.lora) if "lm_lora" in stage.trainable else None
    lora_params = [p for p in llava.parameters() if p.requires_grad] if peft_model is not None else []
    groups = set_trainable(llava, stage, lora_params)
    for params in groups.values():
        for p in params:
            # Meta shards (FSDP2 upcasts them) and ZeRO-3 partitions (DeepSpeed keeps its own copies) excepted.
            if p.dtype != torch.float32 and p.device.type != "meta" and not hasattr(p, "ds_id"):
                p.data = p.data.float()
    enable_checkpointing(llava, stage.gradient_checkpointing)
    llava.train()
    return StageModel(llava, peft_model, proc, groups)


def _qlora_config(stage: Stage):
    """bitsandbytes' 4-bit NF4 config for the LM (the vision tower, projector and head stay as loaded),
    or an error saying why it cannot run here."""
    import importlib.util

    from kanva.errors import KanvaError

    why = f"stage {stage.name!r}: lora.bits 4 (QLoRA) loads the LM in 4-bit through bitsandbytes"
    if not torch.cuda.is_available():
        raise KanvaError(f"{why}, which needs a CUDA GPU; this machine has none (drop lora.bits for plain LoRA)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise KanvaError(f"{why}: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16,
                              llm_int8_skip_modules=["vision_tower", "multi_modal_projector", "lm_head"])  # fmt: skip


def merged_lora_model(src: Path, stage: Stage, trained: dict) -> nn.Module:
    """The plain model a LoRA stage ends with, from its trained tensors (gathered under FSDP/ZeRO; for
    QLoRA, whose live base weights are 4-bit): a fresh float32 copy of `src` on CPU gets the same
    adapters and trainable groups, takes every trainable tensor from `trained` (peft's names; a missing
    one is an error, never the start value) and folds the adapters in. The frozen weights are `src`'s,
    as in training. What DDP's `merge_and_unload` on the live model gives; names come from the model's
    modules, never from folder names."""
    from kanva.model import load_model

    llava, _ = load_model(src, dtype=torch.float32, device="cpu")
    peft_model = add_lora(llava, stage.lora)
    set_trainable(llava, stage, [p for p in llava.parameters() if p.requires_grad])
    wanted = [n for n, p in llava.named_parameters() if p.requires_grad]
    missing = [n for n in wanted if n not in trained]
    if missing:
        raise RuntimeError(f"trained LoRA-stage weights are missing {len(missing)} tensor(s), e.g. {missing[:3]}")
    llava.load_state_dict({n: trained[n] for n in wanted}, strict=False)
    return peft_model.merge_and_unload()
