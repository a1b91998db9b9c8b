"""Video frames for a OneVision model: labels on the grid transformers pools a frame to, and the cue that marks a
frame for the encoder.

LlavaOnevision pools each frame's *projected* tokens 2x2 (bilinear down to ceil(grid / 2), which for an even
grid is exactly the mean of each 2x2 block). The mean of four word embeddings is a word only when all four are
that word: the LM does not read a sum of words (docs/experiments/2026-11-26-sums-of-words.md). So a frame is
labelled per *block* of 2x2 patches, with one word per block: the category of the largest object shown
(`sequence_facts.shown_at`) whose box centre falls in the block, on all four of its patches. A pooled token is
then exactly that word's embedding, and the video's scene text is one cell per block (scene_text.py).

An encoder cannot label the same picture per patch when it is an image and per block when it is a frame unless
it can tell the two apart. Frames are therefore normalised with their own mean, `FRAME_SHIFT` below the
images' (the model directory's video processor carries it, so transformers does the same): a constant offset
of the input that the encoder learns to read as "this is a video frame".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kanva.data.sequence_facts import shown_at
from kanva.data.sequences import Clip, load_clips
from kanva.errors import KanvaError
from kanva.grounding.labels import PatchLabelSpace

FRAME_SHIFT = 0.5  # frames: mean = image mean - FRAME_SHIFT, so a frame's input is the image's + SHIFT / std


def frame_mean(image_mean: list[float]) -> list[float]:
    return [m - FRAME_SHIFT for m in image_mean]


def pooled_side(grid: int) -> int:
    """The side of a frame's pooled grid; an odd grid would pool unevenly (bilinear, not block means)."""
    if grid % 2:
        raise KanvaError(f"onevision grounding: the encoder's grid is {grid}x{grid}; frames are pooled 2x2, which "
                         "is a block mean only for an even grid")
    return grid // 2


def frame_blocks(clip: Clip, t: int, space: PatchLabelSpace, side: int, mirror: bool = False) -> list[int | None]:
    """Per block of frame `t` (raster order over side x side): the label index of the largest object shown whose
    box centre is in the block, or None. `mirror`: the blocks of the horizontally flipped frame."""
    index = {w: i for i, (k, w) in enumerate(zip(space.kinds, space.words)) if k == "category"}
    best: dict[int, tuple[float, int]] = {}
    for track in clip.tracks:
        box = track.bboxes[t]
        if box is None or track.category not in index or not shown_at(track, t):
            continue
        x, y, w, h = box
        cx = x + w / 2
        cx = clip.width - cx if mirror else cx
        col = min(int(cx / clip.width * side), side - 1)
        row = min(int((y + h / 2) / clip.height * side), side - 1)
        b = row * side + col
        if b not in best or w * h > best[b][0]:
            best[b] = (w * h, index[track.category])
    return [best[b][1] if b in best else None for b in range(side * side)]


def frame_targets(clip: Clip, t: int, space: PatchLabelSpace, grid: int, mirror: bool = False) -> np.ndarray:
    """[grid * grid, labels] uint8 targets of frame `t`: each block's label on its four patches."""
    side = pooled_side(grid)
    out = np.zeros((grid, grid, len(space)), dtype=np.uint8)
    for b, label in enumerate(frame_blocks(clip, t, space, side, mirror)):
        if label is not None:
            r, c = divmod(b, side)
            out[2 * r : 2 * r + 2, 2 * c : 2 * c + 2, label] = 1
    return out.reshape(grid * grid, -1)


def load_frames(world: str | Path, split: str, space: PatchLabelSpace, image_size: int, grid: int,
                max_clips: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every frame of the split's clips (the first `max_clips` by id when > 0): uint8 pixels [n, size, size, 3]
    at the encoder's input size, targets [n, grid * grid, labels] and those of the mirrored frames."""
    clips = [c for _, c in sorted(load_clips(world, split).clips.items())]
    if max_clips:
        clips = clips[:max_clips]
    if not clips:
        raise KanvaError(f"{world}: no clips in split {split!r}; `kanva world generate --clips {split}=N` writes them")
    pix, tgt, mir = [], [], []
    for clip in clips:
        for t, path in enumerate(clip.frames):
            try:
                with Image.open(path) as img:
                    pix.append(np.asarray(img.convert("RGB").resize((image_size, image_size), Image.BICUBIC)))
            except (OSError, ValueError) as e:
                raise KanvaError(f"{path}: cannot read frame {t} of clip {clip.id}: {e}") from None
            tgt.append(frame_targets(clip, t, space, grid))
            mir.append(frame_targets(clip, t, space, grid, mirror=True))
    return (torch.from_numpy(np.stack(pix)), torch.from_numpy(np.stack(tgt)), torch.from_numpy(np.stack(mir)))
