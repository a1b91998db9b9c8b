"""collate_vision: the vision inputs of one batch, from each encoded row's (KanvaProcessor.encode / encode_prompt).

Its own module because the padded collator (kanva/train/data.py), the packed collator (kanva/train/packing.py)
and generation (kanva/infer/generate.py) all batch rows this one way, and none of them needs the processor.
"""

from __future__ import annotations

import torch

from kanva.errors import KanvaError


def collate_vision(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One batch's vision inputs from each row's (`Encoded.vision` + pixel_values), in row order.

    transformers fills image (video) tokens with image (video) features left to right, row by row, so the
    rows' tensors are concatenated in order. AnyRes pixel values ([images, crops, 3, H, W]) differ in crop
    count between rows: they are zero-padded to the largest (the model reads only each image's own crops,
    from image_sizes). `batch_num_images` has one entry per row (0 for a row without images): it tells the
    model which rows are multi-image (no AnyRes crops)."""
    out: dict[str, torch.Tensor] = {}
    pix = [r["pixel_values"] for r in rows if r.get("pixel_values") is not None]
    if pix:
        if pix[0].dim() == 5:
            crops = max(p.shape[1] for p in pix)
            pix = [torch.nn.functional.pad(p, (0, 0, 0, 0, 0, 0, 0, crops - p.shape[1])) for p in pix]
        out["pixel_values"] = torch.cat(pix)
    for key in ("image_sizes", "pixel_values_videos"):
        parts = [r[key] for r in rows if r.get(key) is not None]
        if parts:
            if key == "pixel_values_videos" and len({p.shape[1] for p in parts}) > 1:
                raise KanvaError(f"videos of {sorted({p.shape[1] for p in parts})} frames cannot share a batch")
            out[key] = torch.cat(parts)
    if any("batch_num_images" in r for r in rows):
        out["batch_num_images"] = torch.tensor([int(r["batch_num_images"][0]) if "batch_num_images" in r else 0
                                                for r in rows], dtype=torch.long)
    return out
