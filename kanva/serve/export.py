"""`kanva export`: a model directory -> a plain transformers Llava (or LlavaOnevision) checkpoint that vLLM
serves unchanged (an onevision export is checked against the fields vLLM's loader reads: vllm_check.py).

A kanva model directory already is a transformers checkpoint; export makes that a guarantee for any
directory a user points at: a peft LoRA adapter found in it is merged into the weights (vLLM would
otherwise need LoRA flags and the base model), weights go to safetensors, and the processor (image
processor, tokenizer with `<image>`, chat template) and generation config are written beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError
from kanva.model.templates import recorded_template

ADAPTER_CONFIG = "adapter_config.json"
DTYPES = ("float32", "bfloat16", "float16")


def _base_dir(model_dir: Path) -> Path:
    """Where the base weights are: the directory itself, or the adapter's base_model_name_or_path."""
    if (model_dir / "config.json").is_file():
        return model_dir
    try:
        base = json.loads((model_dir / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as e:
        raise KanvaError(f"{model_dir / ADAPTER_CONFIG}: cannot read base_model_name_or_path ({e})") from None
    for candidate in (Path(base), model_dir / base):
        if (candidate / "config.json").is_file():
            return candidate
    raise KanvaError(f"{model_dir / ADAPTER_CONFIG}: base model {base!r} is not a local model directory")


def load_merged(model_dir: str | Path, dtype: str = "float32") -> tuple[Any, Any, bool]:
    """(Llava or LlavaOnevision model with any LoRA merged, processor, whether an adapter was merged)."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration, LlavaOnevisionForConditionalGeneration

    from kanva.model.processor import model_type

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise KanvaError(f"{model_dir}: no such model directory")
    if dtype not in DTYPES:
        raise KanvaError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    has_adapter = (model_dir / ADAPTER_CONFIG).is_file()
    if not has_adapter and not (model_dir / "config.json").is_file():
        raise KanvaError(f"{model_dir}: not a model directory (no config.json or {ADAPTER_CONFIG})")
    base = _base_dir(model_dir) if has_adapter else model_dir
    onevision = model_type(base) == "llava_onevision"
    cls = LlavaOnevisionForConditionalGeneration if onevision else LlavaForConditionalGeneration
    try:
        model = cls.from_pretrained(base, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise KanvaError(f"{base}: cannot load as {cls.__name__} ({e})") from None
    if has_adapter:
        from peft import PeftModel

        # Merge in float32, then cast: merging in half precision loses the adapter's small updates.
        model = PeftModel.from_pretrained(model, model_dir).merge_and_unload()
    has_processor = any((model_dir / f).is_file() for f in ("processor_config.json", "tokenizer_config.json"))
    if onevision:  # its processor files are copied as saved (they load without torchvision; see onevision.py)
        from kanva.model.onevision import OnevisionProcessor

        if model.config.text_config.architectures is None:  # vLLM builds the LM from this name
            model.config.text_config.architectures = [model.model.language_model.__class__.__name__.replace(
                "Model", "ForCausalLM")]
        return model.to(getattr(torch, dtype)).eval(), OnevisionProcessor.from_pretrained(
            model_dir if has_processor else base), has_adapter
    processor = AutoProcessor.from_pretrained(model_dir if has_processor else base)
    record_path = (model_dir if (model_dir / "kanva.json").is_file() else base) / "kanva.json"
    template = recorded_template(json.loads(record_path.read_text())) if record_path.is_file() else None
    if template is not None:  # the current rendering of the model's template (see recorded_template)
        processor.chat_template = processor.tokenizer.chat_template = template.jinja
    if not getattr(processor, "chat_template", None):
        raise KanvaError(f"{model_dir}: the processor has no chat template; vLLM's chat API would refuse it")
    return model.to(getattr(torch, dtype)).eval(), processor, has_adapter


def _check_for_vllm(out: Path) -> None:
    """Refuse to write an onevision checkpoint vLLM's loader would reject (see vllm_check.py)."""
    import sys

    from safetensors import safe_open

    from kanva.serve.vllm_check import check_onevision_for_vllm

    names: list[str] = []
    for f in sorted(out.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            names += list(st.keys())
    errors, warnings = check_onevision_for_vllm(json.loads((out / "config.json").read_text()), names)
    if errors:
        raise KanvaError("the exported config would not load in vLLM's llava-onevision loader: " + "; ".join(errors))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def export_model(model_dir: str | Path, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Write the merged checkpoint to `out_dir` (atomically: a sibling temp dir renamed at the end)."""
    model_dir, out = Path(model_dir), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KanvaError(f"{out}: exists and is not an empty directory")
    model, processor, merged = load_merged(model_dir, dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        model.save_pretrained(tmp)  # safetensors + config.json + generation_config.json
        processor.save_pretrained(tmp)  # image processor, tokenizer, chat template
        if model.config.model_type == "llava_onevision":
            _check_for_vllm(tmp)
        record: dict[str, Any] = {}
        if (model_dir / "kanva.json").is_file():
            record = json.loads((model_dir / "kanva.json").read_text())
        record["export"] = {"from": str(model_dir), "lora_merged": merged, "dtype": dtype}
        (tmp / "kanva.json").write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
