"""Recipe module names -> parts of a Llava (or LlavaOnevision) model: freezing, LoRA, optimizer groups.

`vision` is `model.vision_tower`, `projector` is `model.multi_modal_projector`, `lm` is
`model.language_model` plus `lm_head`, `lm_lora` the LoRA adapters peft injects into the LM's
linear layers. Everything not trainable gets `requires_grad=False`: a frozen vision tower whose
inputs need no gradient then builds no autograd graph and stores no activations.

The same holds inside the LM: with a stage's `lm_frozen_layers: N`, the input embeddings and the first N
decoder layers are frozen, so backward stops at layer N (the image tokens come from frozen modules too) and a
step costs the forward of the whole LM plus the backward of its top layers only. The embeddings staying put also
keeps the words a word-grounded projector maps patches to (kanva/grounding/projector.py) the words the LM reads.
"""

from __future__ import annotations

import torch
from torch import nn

from kanva.errors import KanvaError
from kanva.train.recipe import LoraSpec, Stage


def module_parts(llava: nn.Module) -> dict[str, list[nn.Module | nn.Parameter]]:
    """The modules (or lone parameters) behind each full-weight recipe group. A OneVision model's newline
    feature (`image_newline`, a parameter placed after each row of image features) belongs to the projector:
    both map vision features into the LM's input space."""
    newline = getattr(llava.model, "image_newline", None)
    return {
        "vision": [llava.model.vision_tower],
        "projector": [llava.model.multi_modal_projector] + ([newline] if newline is not None else []),
        "lm": [llava.model.language_model, llava.lm_head],
    }


def add_lora(llava: nn.Module, spec: LoraSpec):
    """Inject LoRA adapters into the language model only (never the vision tower, whose CLIP/SigLIP
    layers use the same `q_proj` names). Returns the peft wrapper, whose `merge_and_unload()` gives
    back the plain model; `llava` itself is modified in place."""
    from peft import LoraConfig, get_peft_model

    # A regex over full module names anchors the targets inside `model.language_model`.
    names = "|".join(spec.target_modules)
    cfg = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=rf".*\.language_model\..*\.({names})",
    )
    try:
        return get_peft_model(llava, cfg)
    except ValueError as e:  # peft: "Target modules ... not found in the base model"
        raise KanvaError(f"lora.target_modules {spec.target_modules}: {e}") from None


def frozen_lm_params(llava: nn.Module, stage: Stage) -> set[int]:
    """ids of the parameters the stage's `lm_frozen_layers: n` keeps frozen: the LM's input embeddings (with an
    `lm_head` tied to them) and its first n decoder layers."""
    n_layers, where = stage.lm_frozen_layers, f"stage {stage.name!r}: lm_frozen_layers"
    lm = llava.model.language_model
    layers = getattr(lm, "layers", None)
    if layers is None:
        raise KanvaError(f"{where}: {type(lm).__name__} has no `layers` list of decoder layers")
    if n_layers >= len(layers):
        raise KanvaError(f"{where}: {n_layers} would freeze all {len(layers)} decoder layers of the LM; "
                         f"use fewer, or leave `lm` out of trainable")
    frozen = [*lm.get_input_embeddings().parameters(), *(p for layer in layers[:n_layers] for p in layer.parameters())]
    return {id(p) for p in frozen}


def set_trainable(llava: nn.Module, stage: Stage, lora_params: list[nn.Parameter]) -> dict[str, list[nn.Parameter]]:
    """Freeze everything, then unfreeze the stage's modules. Returns the trainable params per group."""
    for p in llava.parameters():
        p.requires_grad_(False)
    parts = module_parts(llava)
    groups: dict[str, list[nn.Parameter]] = {}
    # Parameters already placed in a group, or kept out of every group: the frozen part of the LM starts here, so
    # the `lm` group below skips it as it skips a tied head it has already met.
    seen: set[int] = frozen_lm_params(llava, stage) if stage.lm_frozen_layers else set()
    for name in stage.trainable:
        params = lora_params if name == "lm_lora" else [
            p for m in parts[name] for p in (m.parameters() if isinstance(m, nn.Module) else [m])]
        uniq = []
        for p in params:  # tied weights (lm_head = embed_tokens) appear once
            if id(p) not in seen:
                seen.add(id(p))
                uniq.append(p)
        if not uniq:
            raise KanvaError(f"stage {stage.name!r}: trainable module {name!r} has no parameters in this model")
        for p in uniq:
            p.requires_grad_(True)
        groups[name] = uniq
    return groups


def param_groups(groups: dict[str, list[nn.Parameter]], stage: Stage) -> list[dict]:
    """AdamW groups: one lr per module group; weight decay only on matrices (not biases, norms)."""
    out = []
    for name, params in groups.items():
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        for ps, wd in ((decay, stage.weight_decay), (no_decay, 0.0)):
            if ps:
                out.append({"params": ps, "lr": stage.lr[name], "base_lr": stage.lr[name], "weight_decay": wd, "module": name})
    return out


def count_params(params: list[torch.Tensor]) -> int:
    """Elements of `params`; a ZeRO-3 partitioned parameter counts its full size (`ds_numel`)."""
    return sum(getattr(p, "ds_numel", p.numel()) for p in params)
