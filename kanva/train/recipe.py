"""Training recipes as data: a YAML file of stages, loaded strictly into these dataclasses.

A recipe names a starting model (a model directory or a preset to build) and a list of stages; each
stage says which modules train, with which learning rate, on which data mixture, for how long.
Stage `i+1` starts from stage `i`'s final model. Loading checks everything a typo could break
(unknown keys, unknown module names, a learning rate missing for a trainable module) and names the
file and field at fault, so a bad recipe fails before any model is loaded.

Relative paths (`model.path`, `data[].path`, `data[].image_root`) resolve against the recipe
file's folder, so a recipe works from any working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kanva.config import from_dict, load_yaml, to_dict
from kanva.errors import KanvaError

# The module groups a stage can train; each maps to a part of LlavaForConditionalGeneration (modules.py).
MODULES = ("vision", "projector", "lm", "lm_lora")
# The towers whose activations a stage may recompute in backward instead of storing (gradient checkpointing).
CHECKPOINTABLE = ("vision", "lm")


@dataclass
class ModelSpec:
    """Where stage 1 starts: exactly one of a model directory, a hub id, or a preset name to build."""

    path: str | None = None  # a model directory (plain transformers Llava/LlavaOnevision checkpoint + processor)
    # A released checkpoint in transformers' format on the Hugging Face hub, e.g. llava-hf/llava-1.5-7b-hf or
    # llava-hf/llava-onevision-qwen2-0.5b-ov-hf (downloaded once by the main process into the hub cache).
    hub: str | None = None
    preset: str | None = None  # a `kanva.model.build_preset` name, built into OUT/base


@dataclass
class DataSource:
    """One file of a stage's data mixture.

    `ratio` is how often the file is sampled per epoch, relative to its size: 1.0 takes every sample
    once, 0.5 a fresh random half each epoch, 2.0 every sample twice.
    """

    path: str
    image_root: str | None = None  # folder the samples' `image` paths are relative to; default: the file's folder
    ratio: float = 1.0


@dataclass
class LoraSpec:
    """LoRA on the language model (peft); merged into the LM at the end of the stage."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # Module names inside the LM's layers; only the language model is targeted, never the vision tower.
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # 4: QLoRA, the frozen LM loaded in 4-bit NF4 through bitsandbytes (a CUDA GPU); None: the LM as loaded.
    bits: Literal[4] | None = None


@dataclass
class Stage:
    name: str
    trainable: list[str]
    lr: dict[str, float]  # per module group in `trainable`, e.g. {projector: 1e-3, lm: 2e-5}
    data: list[DataSource]
    steps: int | None = None  # exactly one of steps / epochs
    epochs: float | None = None
    batch_size: int = 8  # per process, per micro-batch
    grad_accum: int = 1
    max_length: int = 2048
    template: Literal["chat", "plain"] = "chat"
    warmup_ratio: float = 0.03
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0  # null: no clipping
    save_every: int = 0  # optimizer steps between checkpoints; 0: only at the end
    keep_checkpoints: int = 2  # older checkpoints are deleted once a newer one is written
    lora: LoraSpec | None = None  # required when `lm_lora` is trainable
    # With `lm` trainable: the LM's input embeddings and its first N decoder layers stay frozen (modules.py).
    lm_frozen_layers: int = 0
    group_by_length: bool = True  # batch samples of similar length together (little padding)
    group_by_modality: bool = False  # with group_by_length: image and text-only samples in separate batches
    # Pack each micro-batch into one row without padding, position_ids restarting per sample (packing.py).
    packing: bool = False
    # Towers (`vision`, `lm`) whose layer activations are recomputed in backward instead of stored.
    gradient_checkpointing: list[str] = field(default_factory=list)
    num_workers: int = 0  # DataLoader workers that encode samples (images + tokens)
    log_every: int = 1  # steps between metrics lines


@dataclass
class Recipe:
    model: ModelSpec
    stages: list[Stage]
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] | None = None  # None: whatever `accelerate launch` sets
    # transformers' attention implementation; all three honour packed rows' position_ids; flash needs `flash-attn`.
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    tf32: bool = False  # allow TF32 matmuls for float32 work on CUDA (Ampere and later); no effect on CPU
    # Set by load_recipe, never read from YAML: the recipe file, for messages.
    source: str = field(default="", init=False)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KanvaError(f"{self.source}: no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def to_dict(self) -> dict:
        d = to_dict(self)
        d.pop("source")
        return d


def check_stage(stage: Stage, where: str) -> None:
    """The checks of one stage (also run on the quickstart's stage templates at load)."""
    for i, m in enumerate(stage.trainable):
        if m not in MODULES:
            raise KanvaError(f"{where}.trainable[{i}]: unknown module {m!r}; known: {list(MODULES)}")
    if not stage.trainable:
        raise KanvaError(f"{where}.trainable: empty; name at least one of {list(MODULES)}")
    if len(set(stage.trainable)) != len(stage.trainable):
        raise KanvaError(f"{where}.trainable: a module is listed twice: {stage.trainable}")
    if "lm" in stage.trainable and "lm_lora" in stage.trainable:
        raise KanvaError(f"{where}.trainable: `lm` (full) and `lm_lora` exclude each other")
    for k, v in stage.lr.items():
        if k not in MODULES:
            raise KanvaError(f"{where}.lr.{k}: unknown module {k!r}; known: {list(MODULES)}")
        if k not in stage.trainable:
            raise KanvaError(f"{where}.lr.{k}: module {k!r} is not in trainable {stage.trainable}")
        if not v > 0:
            raise KanvaError(f"{where}.lr.{k}: must be > 0, got {v}")
    missing = [m for m in stage.trainable if m not in stage.lr]
    if missing:
        raise KanvaError(f"{where}.lr: no learning rate for trainable module(s) {missing}")
    if "lm_lora" in stage.trainable and stage.lora is None:
        stage.lora = LoraSpec()  # the documented defaults
    if stage.lora is not None and "lm_lora" not in stage.trainable:
        raise KanvaError(f"{where}.lora: set, but `lm_lora` is not in trainable {stage.trainable}")
    for i, m in enumerate(stage.gradient_checkpointing):
        if m not in CHECKPOINTABLE:
            raise KanvaError(f"{where}.gradient_checkpointing[{i}]: {m!r} is not one of {list(CHECKPOINTABLE)}")
    if stage.lora is not None and (stage.lora.r < 1 or not stage.lora.target_modules):
        raise KanvaError(f"{where}.lora: r must be >= 1 and target_modules non-empty")
    if stage.lm_frozen_layers < 0:
        raise KanvaError(f"{where}.lm_frozen_layers: must be >= 0, got {stage.lm_frozen_layers}")
    if stage.lm_frozen_layers and "lm" not in stage.trainable:
        raise KanvaError(f"{where}.lm_frozen_layers: set, but `lm` is not in trainable {stage.trainable}")
    if (stage.steps is None) == (stage.epochs is None):
        raise KanvaError(f"{where}: set exactly one of `steps` or `epochs`")
    if stage.steps is not None and stage.steps < 1:
        raise KanvaError(f"{where}.steps: must be >= 1, got {stage.steps}")
    if stage.epochs is not None and not stage.epochs > 0:
        raise KanvaError(f"{where}.epochs: must be > 0, got {stage.epochs}")
    for name in ("batch_size", "grad_accum", "max_length", "keep_checkpoints", "log_every"):
        if getattr(stage, name) < 1:
            raise KanvaError(f"{where}.{name}: must be >= 1, got {getattr(stage, name)}")
    for name in ("save_every", "num_workers"):
        if getattr(stage, name) < 0:
            raise KanvaError(f"{where}.{name}: must be >= 0, got {getattr(stage, name)}")
    if not 0 <= stage.warmup_ratio < 1:
        raise KanvaError(f"{where}.warmup_ratio: must be in [0, 1), got {stage.warmup_ratio}")
    if stage.weight_decay < 0:
        raise KanvaError(f"{where}.weight_decay: must be >= 0, got {stage.weight_decay}")
    if stage.max_grad_norm is not None and not stage.max_grad_norm > 0:
        raise KanvaError(f"{where}.max_grad_norm: must be > 0 or null, got {stage.max_grad_norm}")
    if not stage.data:
        raise KanvaError(f"{where}.data: empty; list at least one {{path, image_root, ratio}}")
    for i, d in enumerate(stage.data):
        if not d.ratio > 0:
            raise KanvaError(f"{where}.data[{i}].ratio: must be > 0, got {d.ratio}")


def _resolve(base: Path, p: str | None) -> str | None:
    if p is None:
        return None
    q = Path(p).expanduser()
    return os.path.normpath(q if q.is_absolute() else (base / q))


def recipe_from_dict(data: dict, source: str = "recipe", base_dir: str | Path = ".") -> Recipe:
    """Build and check a Recipe from a mapping (as read from YAML); errors name `source` and the field."""
    if not isinstance(data, dict):
        raise KanvaError(f"{source}: expected a mapping at the top level")
    return _checked(from_dict(Recipe, data, where=source), source, base_dir)


def _checked(recipe: Recipe, source: str, base_dir: str | Path) -> Recipe:
    """Cross-field checks the types alone cannot express; resolves relative paths against `base_dir`."""
    recipe.source = source
    base = Path(base_dir)
    m = recipe.model
    if sum(x is not None for x in (m.path, m.hub, m.preset)) != 1:
        raise KanvaError(f"{source}.model: set exactly one of `path` (a model directory), `hub` (a hub id) or `preset`")
    m.path = _resolve(base, m.path)
    if not recipe.stages:
        raise KanvaError(f"{source}.stages: empty")
    names = [s.name for s in recipe.stages]
    for i, stage in enumerate(recipe.stages):
        where = f"{source}.stages[{i}]"
        if not stage.name or "/" in stage.name or stage.name == "base" or stage.name in names[:i]:
            raise KanvaError(f"{where}.name: {stage.name!r} must be unique, non-empty, not 'base', without '/'")
        check_stage(stage, where)
        for d in stage.data:
            d.path = _resolve(base, d.path)
            d.image_root = _resolve(base, d.image_root)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe YAML strictly (unknown keys, unknown module names -> KanvaError naming file and field)."""
    path = Path(path)
    return _checked(load_yaml(Recipe, path), str(path), path.resolve().parent)


def total_batch(stage: Stage, world_size: int) -> int:
    """Samples per optimizer step over all processes."""
    return stage.batch_size * stage.grad_accum * world_size
