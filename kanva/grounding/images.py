"""The stage's images: decoded once into a uint8 tensor at the encoder's input size, normalised per batch.

A few thousand 96 px images are ~100 MB, 20,000 at 224 px ~3 GB: cheaper than decoding JPEGs every step.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from kanva.data.coco import CocoSet, ImageRec
from kanva.errors import KanvaError


def load_images(coco: CocoSet, image_size: int, max_images: int = 0) -> tuple[list[ImageRec], torch.Tensor]:
    """The split's images by id (the first `max_images` when > 0) and a [n, size, size, 3] uint8 tensor."""
    images = sorted(coco.images.values(), key=lambda im: im.id)
    if max_images:
        images = images[:max_images]
    pix = np.zeros((len(images), image_size, image_size, 3), dtype=np.uint8)
    for i, im in enumerate(tqdm(images, desc=f"load {coco.split}", unit="img", leave=False)):
        path = coco.image_dir / im.file_name
        try:
            with Image.open(path) as img:
                pix[i] = np.asarray(img.convert("RGB").resize((image_size, image_size), Image.BICUBIC))
        except (OSError, ValueError) as e:
            raise KanvaError(f"{path}: cannot read image {im.id}: {e}") from None
    return images, torch.from_numpy(pix)


def normalize(pix_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [n, h, w, 3] -> the encoder's float input [n, 3, h, w] (the image processor's mean and std)."""
    x = pix_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def hflip_targets(t: torch.Tensor, grid: int) -> torch.Tensor:
    """The targets of horizontally flipped images, where they are the flipped targets (`color_cells` shared)."""
    return t.view(t.shape[0], grid, grid, -1).flip(2).reshape(t.shape)
