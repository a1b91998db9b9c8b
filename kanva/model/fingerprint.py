"""A model's identity by content: a hash of what decides its answers, not of where it is stored.

Every `kanva train` output ends in `.../final`, so a path names no model. The hash covers the files that
set its answers -- config, generation config, tokenizer, chat template, processor settings, adapter config
-- and each weight file's safetensors header (tensor names, dtypes, shapes, offsets) plus a few bytes from
the start, middle and end of every tensor. Training changes every element of a tensor it touches, so two
checkpoints that differ in any trained tensor differ in these samples, while reading them costs a few
hundred small reads even for a 7B model (hashing all its bytes would read 14 GB). Copies of one model,
wherever they are, hash the same; `kanva.json` (which records paths) is left out.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from kanva.errors import KanvaError

SETTINGS = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
            "processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json",
            "special_tokens_map.json", "adapter_config.json")
SAMPLE = 4096  # bytes read at each of a tensor's start, middle and end


def _safetensors(path: Path, h) -> None:
    with open(path, "rb") as f:
        try:
            (n,) = struct.unpack("<Q", f.read(8))
            header_bytes = f.read(n)
            header = json.loads(header_bytes)
        except (struct.error, ValueError) as e:
            raise KanvaError(f"{path}: not a safetensors file ({e})") from None
        h.update(header_bytes)
        base = 8 + n
        for name in sorted(k for k in header if k != "__metadata__"):
            start, end = header[name]["data_offsets"]
            for at in sorted({start, max(start, (start + end) // 2 - SAMPLE // 2), max(start, end - SAMPLE)}):
                f.seek(base + at)
                h.update(f.read(min(SAMPLE, end - at)))


def model_hash(model_dir: str | Path) -> str:
    """`sha256:<hex>` of the model in `model_dir` (see the module docstring for what it covers)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise KanvaError(f"{model_dir}: not a model directory")
    h = hashlib.sha256()
    for name in SETTINGS:
        path = model_dir / name
        if path.is_file():
            h.update(f"{name}\0".encode())
            h.update(path.read_bytes())
    for path in sorted(model_dir.glob("*.safetensors")):
        h.update(f"{path.name}\0".encode())
        _safetensors(path, h)
    return "sha256:" + h.hexdigest()
