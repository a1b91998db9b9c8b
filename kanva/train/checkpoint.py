"""Resumable checkpoints: `STAGE/checkpoints/step-NNNNNNN/`.

Each holds accelerate's `save_state` output (model weights, optimizer, per-process RNG states; on
FSDP/DeepSpeed their sharded formats) plus `trainer_state.json` (step, tokens, elapsed time, skip
counts), written last: a folder without it is an interrupted save and is ignored. The data order
needs no state: it is a function of (seed, step) (sampler.py).

Only trainable weights are written (a hook filters the state dict): frozen weights equal the
stage's starting model, which a resumed run loads first anyway. A projector-only stage of the
smol preset then checkpoints a few MB, not the whole model.
"""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from pathlib import Path

STATE_FILE = "trainer_state.json"


def checkpoint_dir(stage_dir: Path, step: int) -> Path:
    return stage_dir / "checkpoints" / f"step-{step:07d}"


def list_checkpoints(stage_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    root = stage_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if d.is_dir() and d.name.startswith("step-") and (d / STATE_FILE).is_file():
            found.append((json.loads((d / STATE_FILE).read_text())["step"], d))
    return sorted(found)


def latest_checkpoint(stage_dir: Path) -> Path | None:
    found = list_checkpoints(stage_dir)
    return found[-1][1] if found else None


def prune_checkpoints(stage_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (and any incomplete leftovers)."""
    done = list_checkpoints(stage_dir)
    keep_dirs = {d for _, d in done[-keep:]}
    root = stage_dir / "checkpoints"
    for d in root.iterdir() if root.is_dir() else []:
        if d.is_dir() and d not in keep_dirs:
            shutil.rmtree(d, ignore_errors=True)


def write_state(ckpt: Path, state: dict) -> None:
    (ckpt / STATE_FILE).write_text(json.dumps(state, indent=1))


def read_state(ckpt: Path) -> dict:
    return json.loads((ckpt / STATE_FILE).read_text())


def register_trainable_only(accelerator):
    """Make `accelerator.save_state` write only parameters with `requires_grad` (names taken from
    the prepared model itself, so DDP's `module.` prefix matches). Loading then needs `strict=False`.
    Returns the hook handle; remove it when the stage ends."""

    def on_save(models, weights, output_dir):
        for i, sd in enumerate(weights):
            names = {n for n, p in models[i].named_parameters() if p.requires_grad}
            weights[i] = OrderedDict((k, v) for k, v in sd.items() if k in names)

    return accelerator.register_save_state_pre_hook(on_save)
