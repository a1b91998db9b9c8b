"""`kanva train --plan`: the memory of each stage per GPU, before a run.

Per stage and per process the plan adds up, from the parameter counts of the model (instantiated on
the meta device: no weights read) and the stage's settings:

- **weights**: trainable ones in float32 (AdamW's master weights; under DeepSpeed in the compute dtype,
  its float32 copies counted with the optimizer), frozen ones in the compute dtype (stage_model.py),
  4-bit for a QLoRA LM; divided over the processes under FSDP and ZeRO-3;
- **gradients**: float32, one per trainable weight (DDP: twice, its all-reduce buckets are a copy);
  divided under FSDP, ZeRO-2 and ZeRO-3;
- **optimizer**: AdamW's two float32 moments (plus DeepSpeed's float32 master copy in mixed
  precision); divided under FSDP, ZeRO-2 and ZeRO-3;
- **activations** of one micro-batch (every process holds its own): what autograd keeps for backward,
  per token and layer `4 I + 10 h` elements in a Llama decoder layer and `2 I + 8 h` in a CLIP/SigLIP
  encoder layer (h hidden size, I MLP width; counted from the tensors transformers' layers save, with
  `sdpa`, so no attention-score matrices), LoRA's dropout adding a copy of each targeted linear's
  input and its mask, plus the float32 logits and their log-softmax at the
  supervised positions only (loss.py). With activation checkpointing a tower keeps only each layer's
  input (`h` per token and layer) plus one layer's full set while it is recomputed. The vision tower
  stores activations only when it trains;
- **engine buffers**: FSDP and ZeRO-3 gather two layers at a time (the running one and the
  prefetched one); ZeRO-2 keeps its reduce and all-gather buckets (DeepSpeed's default 5e8 elements
  each); and a fixed allowance for the CUDA context and allocator slack on a GPU.

The micro-batch is planned at its worst: `batch_size` samples of `max_length` tokens, half of them
supervised, one image each. Peak memory is taken as the sum (with gradient accumulation the
gradients of earlier micro-steps are alive while the next one's activations build up). A test checks
the estimate against peaks measured on small CPU runs (tests/test_train_plan.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from kanva.errors import KanvaError
from kanva.train.recipe import LoraSpec, Recipe, Stage

GiB = 1024**3
ENGINES = ("single", "ddp", "fsdp", "zero2", "zero3")
SHARD_WEIGHTS = {"fsdp", "zero3"}
SHARD_STATES = {"fsdp", "zero2", "zero3"}  # gradients and optimizer states
ZERO_BUCKET = 5e8  # elements: DeepSpeed's default reduce_bucket_size and allgather_bucket_size
CUDA_OVERHEAD = 2 * GiB  # CUDA context, cuBLAS workspaces and caching-allocator slack per GPU, typical
SUPERVISED_SHARE = 0.5  # worst-case planning assumption: half of a micro-batch's tokens carry a label
QLORA_BYTES = 0.53  # NF4: 4 bits a weight plus double-quantised block constants (bitsandbytes)
PRESET_GPUS = (24, 40, 80)  # the usual card sizes (nominal GB, taken as GiB as the cards report them)

# Architecture facts of the hub checkpoints the presets name, for planning without the hub.
KNOWN_CONFIGS = {
    "openai/clip-vit-large-patch14-336": ("clip_vision_model", dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=336, patch_size=14, projection_dim=768)),
    "google/siglip-so400m-patch14-384": ("siglip_vision_model", dict(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
        image_size=384, patch_size=14)),
    "Qwen/Qwen2-0.5B-Instruct": ("qwen2", dict(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)),
    "Qwen/Qwen2-7B-Instruct": ("qwen2", dict(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)),
    "lmsys/vicuna-7b-v1.5": ("llama", dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, tie_word_embeddings=False)),
}


@dataclass(frozen=True)
class Arch:
    """The numbers of a Llava model the plan needs (parameter counts exact, from the meta model)."""

    params: dict[str, int]  # per recipe module group: vision, projector, lm (tied head counted once)
    h: int  # LM hidden size
    inter: int  # LM MLP width
    kv: int  # LM key/value width (grouped-query attention)
    layers: int
    vocab: int
    vh: int  # vision hidden size
    vinter: int
    vlayers: int
    vtokens: int  # vision tokens per image (patches, plus CLS for CLIP; OneVision: every AnyRes view)
    image_tokens: int  # tokens per image in the LM (OneVision: at most, before anyres_max pooling)
    layer_params: int  # the largest transformer layer (what FSDP/ZeRO-3 gather at once)

    def _shapes(self, spec: LoraSpec) -> list[tuple[int, int]]:
        """(in, out) features of the LoRA-targeted linears of one decoder layer."""
        shapes = {"q_proj": (self.h, self.h), "k_proj": (self.h, self.kv), "v_proj": (self.h, self.kv),
                  "o_proj": (self.h, self.h), "gate_proj": (self.h, self.inter), "up_proj": (self.h, self.inter),
                  "down_proj": (self.inter, self.h)}  # fmt: skip
        return [shapes[t] for t in spec.target_modules if t in shapes]

    def lora_params(self, spec: LoraSpec) -> int:
        return self.layers * sum(spec.r * (i + o) for i, o in self._shapes(spec))

    def lora_inputs(self, spec: LoraSpec) -> int:
        """Elements per token and layer that LoRA's dropout keeps: a copy of each targeted linear's input."""
        return sum(i for i, _ in self._shapes(spec)) if spec.dropout > 0 else 0


def arch_of_config(config) -> Arch:
    """Parameter counts and sizes of the Llava model `config` describes (a meta model: nothing allocated)."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaOnevisionForConditionalGeneration

    from kanva.model import expected_image_tokens
    from kanva.train.modules import module_parts

    onevision = config.model_type == "llava_onevision"
    with torch.device("meta"):
        model = (LlavaOnevisionForConditionalGeneration if onevision else LlavaForConditionalGeneration)(config)
    counts = {}
    for name, mods in module_parts(model).items():
        params = [p for m in mods for p in ([m] if isinstance(m, torch.nn.Parameter) else m.parameters())]
        counts[name] = sum(p.numel() for p in {id(p): p for p in params}.values())  # a part may be a bare Parameter
    t, v = config.text_config, config.vision_config
    lm_layer = sum(p.numel() for p in model.model.language_model.layers[0].parameters())
    v_layers = next(m for n, m in model.model.vision_tower.named_modules() if n.endswith("encoder.layers"))
    v_layer = sum(p.numel() for p in v_layers[0].parameters())
    grid = v.image_size // v.patch_size
    # OneVision encodes the base view plus the tiles of its largest AnyRes grid.
    views = 1 + max(h * w for h, w in config.image_grid_pinpoints) // v.image_size**2 if onevision else 1
    per_image = grid * grid * views if onevision else expected_image_tokens(config)
    heads_kv = getattr(t, "num_key_value_heads", None) or t.num_attention_heads
    return Arch(
        params=counts, h=t.hidden_size, inter=t.intermediate_size, kv=t.hidden_size // t.num_attention_heads * heads_kv,
        layers=t.num_hidden_layers, vocab=t.vocab_size, vh=v.hidden_size, vinter=v.intermediate_size,
        vlayers=v.num_hidden_layers, vtokens=(grid * grid + (1 if v.model_type == "clip_vision_model" else 0)) * views,
        image_tokens=per_image, layer_params=max(lm_layer, v_layer),
    )  # fmt: skip


def _hub_config(name: str):
    """A part's config: a folder or the local hub cache, else KNOWN_CONFIGS (planning works offline),
    else the hub."""
    from transformers import CONFIG_MAPPING, AutoConfig

    try:
        return AutoConfig.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        pass
    if name in KNOWN_CONFIGS:
        model_type, kw = KNOWN_CONFIGS[name]
        return CONFIG_MAPPING[model_type](**kw)
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise KanvaError(f"{name}: cannot read its config to plan memory ({e})") from None


def preset_config(preset: str):
    """The LlavaConfig (or LlavaOnevisionConfig) `kanva model build --preset` would write, from the parts'
    configs only."""
    from transformers import LlamaConfig, LlavaConfig, SiglipVisionConfig

    from kanva.model.presets import resolve_preset

    spec = resolve_preset(preset)
    if spec.vision_config is not None:
        vision, family = SiglipVisionConfig(**spec.vision_config), "siglip"
    else:
        vision = _hub_config(spec.vision)
        vision = getattr(vision, "vision_config", vision)
        family = "clip" if vision.model_type == "clip_vision_model" else "siglip"
    if spec.truncate_vision:  # build.py keeps the layers up to the feature layer
        layer = spec.vision_feature_layer
        vision.num_hidden_layers = vision.num_hidden_layers + 1 + layer if layer < 0 else layer
    if spec.lm == "tiny":
        text = LlamaConfig(vocab_size=spec.tokenizer_vocab, **spec.lm_config)
    else:
        from kanva.model.lm import prepared_smollm2_dir

        text = _hub_config(str(prepared_smollm2_dir()) if spec.lm == "smollm2" else spec.lm)
    text.vocab_size += 1  # <image>
    strategy = spec.vision_feature_select_strategy or ("default" if family == "clip" else "full")
    if spec.architecture == "onevision":
        from transformers import LlavaOnevisionConfig

        from kanva.model.onevision import default_pinpoints

        return LlavaOnevisionConfig(
            vision_config=vision.to_dict(), text_config=text.to_dict(), vision_feature_select_strategy=strategy,
            vision_feature_layer=-1 if spec.truncate_vision else spec.vision_feature_layer,
            image_grid_pinpoints=spec.image_grid_pinpoints or default_pinpoints(vision.image_size),
            tie_word_embeddings=bool(text.tie_word_embeddings), image_token_index=text.vocab_size - 1,
        )  # fmt: skip
    return LlavaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), vision_feature_select_strategy=strategy,
                       vision_feature_layer=-1 if spec.truncate_vision else spec.vision_feature_layer,
                       projector_hidden_act="gelu" if spec.projector == "mlp2x_gelu" else "linear",
                       tie_word_embeddings=bool(text.tie_word_embeddings), image_token_index=text.vocab_size - 1)  # fmt: skip


def recipe_arch(recipe: Recipe) -> Arch:
    if recipe.model.hub is not None:
        return arch_of_config(_hub_config(recipe.model.hub))
    if recipe.model.path is not None:
        from transformers import AutoConfig

        p = Path(recipe.model.path)
        if not (p / "config.json").is_file():
            raise KanvaError(f"{recipe.source}.model.path: {p} is not a model directory (no config.json)")
        return arch_of_config(AutoConfig.from_pretrained(p))
    return arch_of_config(preset_config(recipe.model.preset))


@dataclass(frozen=True)
class Engine:
    kind: str  # one of ENGINES
    processes: int
    mixed_precision: str  # no | bf16 | fp16
    source: str  # where it was read from, for the printout


def engine_from_accelerate(path: str | Path | None, gpus: int | None, mixed_precision: str | None) -> Engine:
    """The engine an accelerate config file describes (DDP when none; --gpus overrides num_processes)."""
    import yaml

    cfg, source = {}, "no accelerate config: DDP"
    if path is None:
        default = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "accelerate" / "default_config.yaml"
        path = default if default.is_file() else None
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise KanvaError(f"--accelerate-config: {p}: no such file")
        cfg, source = yaml.safe_load(p.read_text()) or {}, str(p)
    dist = cfg.get("distributed_type", "MULTI_GPU")
    n = gpus or int(cfg.get("num_processes", 1))
    if dist == "DEEPSPEED":
        stage = int((cfg.get("deepspeed_config") or {}).get("zero_stage", 2))
        if stage not in (2, 3):
            raise KanvaError(f"{source}: deepspeed_config.zero_stage {stage}: the plan knows ZeRO-2 and ZeRO-3")
        kind = f"zero{stage}"
    elif dist == "FSDP":
        kind = "fsdp"
    elif dist in ("MULTI_GPU", "NO", "MULTI_CPU"):
        kind = "ddp" if n > 1 else "single"
    else:
        raise KanvaError(f"{source}: distributed_type {dist!r}: the plan knows NO, MULTI_GPU, FSDP and DEEPSPEED")
    mp = mixed_precision or cfg.get("mixed_precision") or "no"
    return Engine(kind, n, mp, source)


@dataclass(frozen=True)
class Memory:
    """Bytes per process of one stage."""

    weights: float
    grads: float
    optimizer: float
    activations: float  # with the stage's gradient_checkpointing
    activations_none: float  # no checkpointing
    activations_all: float  # both towers checkpointed
    buffers: float  # engine buffers + CUDA allowance

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations + self.buffers


def _tower(tokens: float, layers: int, per_layer: float, h: int, checkpointed: bool) -> float:
    """Elements autograd keeps for a tower: all layers' activations, or (checkpointed) each layer's input
    plus one layer's full set while it is recomputed."""
    return tokens * (layers * h + per_layer if checkpointed else layers * per_layer)


def activation_bytes(arch: Arch, stage: Stage, mp: str, checkpointed: set[str], tokens: float | None = None,
                     supervised: float | None = None, images: int | None = None) -> float:
    """Bytes autograd keeps for one micro-batch of `tokens` positions (padding included)."""
    a = 2 if mp in ("bf16", "fp16") else 4
    T = stage.batch_size * stage.max_length if tokens is None else tokens
    S = T * SUPERVISED_SHARE if supervised is None else supervised
    n_img = stage.batch_size if images is None else images
    per_layer = 4 * arch.inter + 10 * arch.h
    if "lm_lora" in stage.trainable:  # the dropped-out input copies, plus their masks (1 byte an element)
        per_layer += arch.lora_inputs(stage.lora or LoraSpec()) * (1 + 1 / a)
    lm = _tower(T, arch.layers, per_layer, arch.h, "lm" in checkpointed) + 2 * T * arch.h
    vision = 0.0
    if "vision" in stage.trainable:
        vision = _tower(n_img * arch.vtokens, arch.vlayers, 2 * arch.vinter + 8 * arch.vh, arch.vh, "vision" in checkpointed)
    projector = n_img * arch.image_tokens * (arch.vh + 2 * arch.h)
    head = S * arch.vocab * (a + 8)  # logits in the compute dtype, their float32 copy and log-softmax
    return (lm + vision + projector) * a + head


def stage_memory(arch: Arch, stage: Stage, engine: Engine, gpu: bool = True, qlora: bool = False, **batch) -> Memory:
    """Bytes per process of `stage` under `engine` (`batch`: tokens/supervised/images of a measured micro-batch)."""
    n = engine.processes
    mp = engine.mixed_precision
    wb = 2 if mp in ("bf16", "fp16") else 4
    ds = engine.kind.startswith("zero")
    trainable = sum(arch.params[m] for m in stage.trainable if m != "lm_lora")
    if "lm_lora" in stage.trainable:
        trainable += arch.lora_params(stage.lora or LoraSpec())
    frozen_lm = arch.params["lm"] if "lm" not in stage.trainable else 0
    frozen = sum(arch.params[m] for m in ("vision", "projector") if m not in stage.trainable) + frozen_lm
    frozen_bytes = (frozen - frozen_lm) * wb + frozen_lm * (QLORA_BYTES if qlora else wb)
    weights = trainable * (wb if ds else 4) + frozen_bytes
    grads = trainable * 4 * (2 if engine.kind == "ddp" else 1)
    optimizer = trainable * (8 + (4 if ds and wb < 4 else 0))
    if engine.kind in SHARD_WEIGHTS:
        weights /= n
    if engine.kind in SHARD_STATES:
        grads /= n
        optimizer /= n
    buffers = 0.0
    if engine.kind in SHARD_WEIGHTS:
        buffers += 2 * arch.layer_params * wb
    if engine.kind == "zero2":
        buffers += 2 * ZERO_BUCKET * wb
    if gpu:
        buffers += CUDA_OVERHEAD

    def act(ck):
        return activation_bytes(arch, stage, mp, ck, **batch)

    return Memory(weights, grads, optimizer, act(set(stage.gradient_checkpointing)), act(set()),
                  act({"vision", "lm"}), buffers)  # fmt: skip


def _gb(x: float) -> str:
    return f"{x / GiB:.1f}"


def format_plan(recipe: Recipe, engine: Engine, gpu_mem: float) -> str:
    """The plan as text: one table per stage, then full / LoRA / QLoRA at the usual GPU sizes."""
    arch = recipe_arch(recipe)
    p = arch.params
    lines = [
        f"{recipe.source}: {sum(p.values()) / 1e6:,.1f}M parameters (vision {p['vision'] / 1e6:,.1f}M, projector "
        f"{p['projector'] / 1e6:,.1f}M, LM {p['lm'] / 1e6:,.1f}M); engine {engine.kind} on {engine.processes} GPU(s) "
        f"({engine.source}), mixed precision {engine.mixed_precision}; GiB per GPU of {gpu_mem:g} GiB",
        f"micro-batch planned at its worst: batch_size x max_length tokens, {SUPERVISED_SHARE:.0%} supervised, one image per sample",
        "",
        "| stage | trainable | weights | grads | optimizer | activations (no ckpt / all ckpt) | buffers | total | fits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    limit = gpu_mem * GiB
    for st in recipe.stages:
        m = stage_memory(arch, st, engine)
        ck = ",".join(st.gradient_checkpointing) or "none"
        lines.append(
            f"| {st.name} | {'+'.join(st.trainable)} | {_gb(m.weights)} | {_gb(m.grads)} | {_gb(m.optimizer)} | "
            f"{_gb(m.activations)} ckpt {ck} ({_gb(m.activations_none)} / {_gb(m.activations_all)}) | {_gb(m.buffers)} | "
            f"{_gb(m.total)} | {'yes' if m.total <= limit else 'NO'} |"
        )
    tuned = [st for st in recipe.stages if {"lm", "lm_lora"} & set(st.trainable)]
    if tuned:
        st = tuned[-1]
        lines += ["", f"stage {st.name!r} with the LM trained three ways ({engine.kind}, {engine.processes} GPU(s), "
                  f"the stage's batch and checkpointing; QLoRA: lora.bits 4, a 4-bit LM, needs bitsandbytes and a GPU):",
                  "| GPU | full | LoRA | QLoRA |", "|---|---|---|---|"]  # fmt: skip
        others = [m for m in st.trainable if m not in ("lm", "lm_lora")]
        full = replace(st, trainable=[*others, "lm"], lora=None)
        lora = replace(st, trainable=[*others, "lm_lora"], lora=st.lora or LoraSpec())
        totals = [stage_memory(arch, full, engine).total, stage_memory(arch, lora, engine).total,
                  stage_memory(arch, lora, engine, qlora=True).total]  # fmt: skip
        for g in PRESET_GPUS:
            cells = [f"{'fits' if t <= g * GiB else 'no'} ({_gb(t)})" for t in totals]
            lines.append(f"| {g} GB | " + " | ".join(cells) + " |")
    return "\n".join(lines)
