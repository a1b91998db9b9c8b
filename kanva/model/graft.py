"""`kanva model graft`: one model's language model joined to another's vision tower and projector.

A reading stage trains the LM alone on scene text (docs/train.md) and never calls the vision tower or the
projector, so its updates do not depend on them: it can start from the base model while the vision stage trains
the encoder, and the trained LM be joined to the grounded encoder and projector afterwards. The result has the
tensors of the model the stage would have made starting from the vision stage's output. The same join swaps a
retrained encoder into models whose LM is already trained.

Tensors are taken by the layout transformers saves Llava and LlavaOnevision checkpoints in: `language_model.*`
from the LM's folder, everything else (vision tower, projector, OneVision's image newline) from the vision
model's. Both must be the same architecture with the same LM and vision configs and the same tensor names and
shapes; the error names the folder and the field that differ. The grafted folder is the LM's folder (tokenizer,
chat template, training record) with the vision model's config, processor config and patch label file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kanva.errors import KanvaError
from kanva.jsonfile import read_json
from kanva.model.convert import read_weights

LM_PREFIX = "language_model."
# What describes the vision side (the processor holds the image and video normalisation the vision stage set).
VISION_FILES = ("config.json", "processor_config.json", "patch_labels.json")
# Config fields that record how a folder was saved, not what the model is.
IGNORED = {"dtype", "torch_dtype", "_name_or_path", "transformers_version"}


def check_compatible(lm_dir: Path, vision_dir: Path) -> None:
    a, b = (read_json(d / "config.json", "model config") for d in (lm_dir, vision_dir))
    for field in ("model_type", "image_token_index", "image_token_id", "video_token_index", "video_token_id"):
        if a.get(field) != b.get(field):
            raise KanvaError(f"{lm_dir} and {vision_dir}: config.json `{field}` differs ({a.get(field)!r} against "
                             f"{b.get(field)!r}); graft joins two models of one architecture")
    for field in ("text_config", "vision_config"):
        x, y = a.get(field) or {}, b.get(field) or {}
        diff = sorted(k for k in {**x, **y} if k not in IGNORED and x.get(k) != y.get(k))
        if diff:
            raise KanvaError(f"{lm_dir} and {vision_dir}: config.json `{field}` differs in {diff}")


def graft(lm_dir: str | Path, vision_dir: str | Path, out: str | Path, force: bool = False) -> Path:
    """Write OUT: LM_DIR's language model with VISION_DIR's vision tower and projector (see the module doc)."""
    from safetensors.torch import save_file

    lm_dir, vision_dir, out = Path(lm_dir), Path(vision_dir), Path(out)
    if out.exists() and not force:
        raise KanvaError(f"{out}: exists (use --force to replace it)")
    check_compatible(lm_dir, vision_dir)
    lm, vision = read_weights(lm_dir), read_weights(vision_dir)
    if not any(k.startswith(LM_PREFIX) for k in lm):
        raise KanvaError(f"{lm_dir}: no `{LM_PREFIX}*` tensors: not a Llava or LlavaOnevision checkpoint")
    if set(lm) != set(vision):
        odd = sorted(set(lm) ^ set(vision))
        raise KanvaError(f"{lm_dir} and {vision_dir}: the checkpoints hold different tensors ({len(odd)}, e.g. {odd[:3]})")
    shapes = [k for k in lm if lm[k].shape != vision[k].shape or lm[k].dtype != vision[k].dtype]
    if shapes:
        raise KanvaError(f"{lm_dir} and {vision_dir}: tensors differ in shape or dtype, e.g. {shapes[:3]}")
    joined = {k: (lm[k] if k.startswith(LM_PREFIX) else vision[k]) for k in lm}
    # Written into a temporary sibling, then renamed (as `kanva model build`): an interrupted graft leaves no model.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.graft-"))
    try:
        shutil.copytree(lm_dir, tmp, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json", "*.bin"))
        for name in VISION_FILES:
            if (vision_dir / name).is_file():
                shutil.copyfile(vision_dir / name, tmp / name)
        save_file(joined, tmp / "model.safetensors", metadata={"format": "pt"})
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
