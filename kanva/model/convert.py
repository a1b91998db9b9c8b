"""`kanva model convert`: an original-format LLaVA checkpoint -> a Kanva (plain transformers Llava) one.

The original format (the LLaVA repository's `LlavaLlamaForCausalLM`, e.g. liuhaotian/llava-v1.5-7b) is
a causal-LM folder: a Llama config plus `mm_*` keys (`mm_vision_tower`: the CLIP checkpoint to load,
`mm_vision_select_layer`, `mm_vision_select_feature`, `mm_projector_type`, `image_aspect_ratio`), the
LM's weights under `model.*` / `lm_head.*`, the projector's under `model.mm_projector.*`, and, when the
vision tower was trained, its weights under `model.vision_tower.vision_tower.*`.

Conversion goes through `build_model`, the path every Kanva model takes: the LM part (config without
the `mm_*` keys, weights without the projector/vision ones, tokenizer) is written as a plain Llama
folder, the vision encoder is read from `mm_vision_tower`, the spec carries the original's feature
layer, feature selection (`patch` drops CLS: `default`; `cls_patch`: `full`), projector type and
aspect-ratio rule, with no vision-layer truncation; then the projector (and any vision tower) weights
of the original are put in place of the freshly built ones. Every tensor's destination is the table
below, by name: nothing depends on folder names.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from kanva.errors import KanvaError

# Original projector module index -> Llava projector layer (mlp2x_gelu: Linear, GELU, Linear).
PROJECTOR = {"mlp2x_gelu": {"0": "linear_1", "2": "linear_2"}, "linear": {"": "linear_1"}}
SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}
VISION_PREFIX = "model.vision_tower.vision_tower."  # original: CLIPVisionTower.vision_tower = CLIPVisionModel


def read_weights(src: Path) -> dict:
    """All tensors of a folder's safetensors or PyTorch shards."""
    import torch
    from safetensors.torch import load_file

    files = sorted(src.glob("*.safetensors")) or sorted(src.glob("pytorch_model*.bin"))
    if not files:
        raise KanvaError(f"{src}: no *.safetensors or pytorch_model*.bin weights")
    out = {}
    for f in files:
        out.update(load_file(str(f)) if f.suffix == ".safetensors" else torch.load(f, map_location="cpu", weights_only=True))
    return out


def projector_key(name: str, projector: str) -> str | None:
    """`model.mm_projector.<i>.<weight|bias>` -> `model.multi_modal_projector.<linear_k>.<...>` (None: not a projector key)."""
    m = re.fullmatch(r"model\.mm_projector\.(?:(\d+)\.)?(weight|bias)", name)
    if m is None:
        return None
    layer = PROJECTOR[projector].get(m.group(1) or "")
    if layer is None:
        raise KanvaError(f"projector weight {name!r} does not fit projector type {projector!r}")
    return f"model.multi_modal_projector.{layer}.{m.group(2)}"


def convert_original(src: str | Path, out: str | Path, vision: str | None = None, template: str = "vicuna_v1",
                     system_prompt: str | None = None, force: bool = False) -> Path:
    """Convert the original-format LLaVA folder `src` into a Kanva model directory `out`; returns it.

    `vision` overrides the config's `mm_vision_tower` (a local copy of the CLIP checkpoint)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from kanva.model.build import build_model
    from kanva.model.presets import ModelSpec
    from kanva.model.templates import VICUNA_SYSTEM

    src = Path(src)
    cfg_path = src / "config.json"
    if not cfg_path.is_file():
        raise KanvaError(f"{src}: not a model folder (no config.json)")
    cfg = json.loads(cfg_path.read_text())
    tower = vision or cfg.get("mm_vision_tower")
    if not tower:
        raise KanvaError(f"{cfg_path}: no mm_vision_tower: not an original-format LLaVA checkpoint")
    projector = cfg.get("mm_projector_type", "linear")
    feature = cfg.get("mm_vision_select_feature", "patch")
    for key, value, known in (("mm_projector_type", projector, PROJECTOR), ("mm_vision_select_feature", feature, SELECT_FEATURE)):
        if value not in known:
            raise KanvaError(f"{cfg_path}: {key} {value!r} is not one of {sorted(known)}")
    if cfg.get("mm_use_im_start_end"):
        raise KanvaError(f"{cfg_path}: mm_use_im_start_end is true (<im_start>/<im_end> around images): not supported")
    aspect = cfg.get("image_aspect_ratio", "pad")
    if aspect not in ("pad", "square", "resize"):
        raise KanvaError(f"{cfg_path}: image_aspect_ratio {aspect!r}: only pad and square (resize) are supported")

    weights = read_weights(src)
    lm_weights, mm, vis = {}, {}, {}
    for name, t in weights.items():
        if name.startswith(VISION_PREFIX):
            vis[name[len(VISION_PREFIX) :]] = t
        elif (dst := projector_key(name, projector)) is not None:
            mm[dst] = t
        else:
            lm_weights[name] = t
    if not mm:
        raise KanvaError(f"{src}: no model.mm_projector.* weights: not an original-format LLaVA checkpoint")

    with tempfile.TemporaryDirectory(prefix="kanva-convert-") as d:
        lm_dir = Path(d) / "lm"
        lm_dir.mkdir()
        from safetensors.torch import save_file

        lm_cfg = {k: v for k, v in cfg.items() if not k.startswith("mm_") and k not in (
            "image_aspect_ratio", "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter", "unfreeze_mm_vision_tower",
            "image_grid_pinpoints", "tokenizer_model_max_length", "tokenizer_padding_side")}  # fmt: skip
        lm_cfg.update(model_type="llama", architectures=["LlamaForCausalLM"])
        (lm_dir / "config.json").write_text(json.dumps(lm_cfg))
        save_file({k: v.contiguous() for k, v in lm_weights.items()}, str(lm_dir / "model.safetensors"))
        for f in src.iterdir():  # the tokenizer files
            if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens")) or f.suffix == ".model"):
                shutil.copy2(f, lm_dir / f.name)
        spec = ModelSpec(
            vision=tower, vision_feature_layer=int(cfg.get("mm_vision_select_layer", -2)),
            vision_feature_select_strategy=SELECT_FEATURE[feature], truncate_vision=False, projector=projector,
            lm=str(lm_dir), image_aspect_ratio="pad" if aspect == "pad" else "resize", chat_template=template,
            system_prompt=system_prompt if system_prompt is not None else (VICUNA_SYSTEM if template == "vicuna_v1" else None),
            notes=f"converted from the original-format LLaVA checkpoint {src}",
        )  # fmt: skip
        built = build_model(spec, Path(d) / "built", preset=None)
        model = LlavaForConditionalGeneration.from_pretrained(built, dtype=torch.float32)
        if projector == "linear":  # one affine map: linear_1 carries it, linear_2 is the identity
            h = model.config.text_config.hidden_size
            mm["model.multi_modal_projector.linear_2.weight"] = torch.eye(h)
            mm["model.multi_modal_projector.linear_2.bias"] = torch.zeros(h)
        # Original checkpoints name CLIP's weights `vision_model.*` (older transformers); today's CLIPVisionModel
        # may keep them one level up: take whichever name the tower has.
        own = set(model.model.vision_tower.state_dict())
        vis = {(k if k in own else k.removeprefix("vision_model.")): v for k, v in vis.items()}
        state = {**mm, **{f"model.vision_tower.{k}": v for k, v in vis.items()}}
        missing = [k for k in state if k not in model.state_dict()]
        if missing:
            raise KanvaError(f"{src}: weights with no place in the converted model: {missing[:5]}")
        model.load_state_dict(state, strict=False)
        record = json.loads((built / "kanva.json").read_text())
        record["converted_from"] = {"path": str(src), "vision_tower": tower, "vision_weights_in_checkpoint": bool(vis)}
        from kanva.model.build import _save_atomic
        from kanva.model.processor import KanvaProcessor

        out = Path(out)
        if out.exists() and any(out.iterdir()) and not force:
            raise KanvaError(f"{out}: exists and is not empty (use --force to replace it)")
        _save_atomic(model, KanvaProcessor.from_pretrained(built).processor, record, out)
    return out
