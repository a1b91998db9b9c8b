"""Per-patch targets: which labels each patch of the encoder's grid carries, from the COCO boxes.

Images are squashed to the encoder's square input (the image processor's "resize"), so each box is scaled
per axis and laid over the grid; a patch carries a box's words when the box covers `min_cover` of it
(`object_cells` "cover"), or only the patch holding the box centre does ("center"). Printed words label the
patches their text box covers. Where the colour and the count go under `color_cells` "around": labels.py.
"""

from __future__ import annotations

import numpy as np

from kanva.data.coco import CocoSet
from kanva.grounding.labels import PatchLabelSpace, side_of
from kanva.words import number_word

AROUND_COVER = 0.5  # "around": the colour on the patches the object covers at least this much of


def _box_cover(box, scale_x: float, scale_y: float, grid: int, patch: float, center_only: bool = False) -> np.ndarray:
    """Share of each grid cell covered by the box (after scaling to the model's input size); with
    `center_only`, 1 on the cell holding the box centre and 0 elsewhere."""
    x, y, w, h = box
    x0, x1 = x * scale_x, (x + w) * scale_x
    y0, y1 = y * scale_y, (y + h) * scale_y
    edges = np.arange(grid + 1) * patch
    ox = np.clip(np.minimum(x1, edges[1:]) - np.maximum(x0, edges[:-1]), 0, None) / patch
    oy = np.clip(np.minimum(y1, edges[1:]) - np.maximum(y0, edges[:-1]), 0, None) / patch
    cover = np.zeros((grid, grid)) if center_only else np.outer(oy, ox)  # [row, col]
    # The cell holding the box centre is always labelled: small objects still get a patch.
    cx = min(int((x0 + x1) / 2 // patch), grid - 1)
    cy = min(int((y0 + y1) / 2 // patch), grid - 1)
    cover[cy, cx] = max(cover[cy, cx], 1.0)
    return cover


def _cell_before(c: int) -> int:
    """The column a colour takes beside an object centred in column `c` (an object within one patch, under
    "around"): the one before it (after it in the first column), so the row reads "purple umbrella"."""
    return c - 1 if c > 0 else c + 1


def _cells_after(c: int, grid: int, skip: int | None) -> list[int]:
    """The columns of the words written after an object centred in column `c` ("bird left two"): the next
    columns, then, past the row's end, the nearest ones before it, leaving out `skip` (the colour's cell)."""
    return [cc for cc in [*range(c + 1, grid), *range(c - 1, -1, -1)] if cc != skip]


def patch_targets(coco: CocoSet, space: PatchLabelSpace, image_size: int, patch: int,
                  mirror: bool = False) -> dict[int, np.ndarray]:
    """Per image id: a [grid*grid, n_labels] uint8 multi-hot array in the encoder's raster order.

    `mirror`: the targets of the horizontally flipped images (object boxes mirrored; printed words are not,
    since images with text are never flipped). Not simply the flipped targets under "around": the colour
    beside an object and its side and number after it keep their side of the object, and its side word flips."""
    grid = image_size // patch
    index = {(k, w): i for i, (k, w) in enumerate(zip(space.kinds, space.words))}
    targets = {iid: np.zeros((grid, grid, len(space)), dtype=np.uint8) for iid in coco.images}
    center_only = space.object_cells == "center"
    for im in coco.images.values():
        t = targets[im.id]
        sx, sy = image_size / im.width, image_size / im.height
        for o in im.objects:
            bbox = list(o.bbox)
            if mirror:
                bbox = [im.width - bbox[0] - bbox[2], *bbox[1:]]
            on = _box_cover(bbox, sx, sy, grid, patch, center_only=center_only) >= space.min_cover
            cat, col = index.get(("category", o.category)), index.get(("color", o.color))
            count = index.get(("count", number_word(im.counts[o.category])))
            side = index.get(("side", side_of(bbox, im.width)))
            if space.color_cells == "around":  # one word per token: side, number and colour get cells of their own
                after = np.zeros_like(on)
                words = [i for i in (side, count) if i is not None]
                if words:
                    for r, c in np.argwhere(on):  # the one centre cell
                        # A coloured object keeps the cell before it free, for its colour if it goes beside.
                        skip = _cell_before(c) if col is not None else None
                        for i, cc in zip(words, _cells_after(c, grid, skip)):
                            t[r, cc, i] = 1
                            after[r, cc] = True
                    count = side = None
                if col is not None:
                    ring = (_box_cover(bbox, sx, sy, grid, patch) >= AROUND_COVER) & ~on & ~after
                    if ring.any():
                        t[ring, col] = 1
                    else:  # an object within one patch: its colour on the cell beside it
                        for r, c in np.argwhere(on):
                            t[r, _cell_before(c), col] = 1
                    col = None
            for i in (cat, col, count, side):  # "shared": all the object's words on its patches
                if i is not None:
                    t[on, i] = 1
        for tx in im.texts if not mirror else ():  # flipped images never have text
            i = index.get(("text", tx.text))
            if i is not None:
                t[_box_cover(tx.bbox, sx, sy, grid, patch) >= space.min_cover, i] = 1
    return {iid: t.reshape(grid * grid, -1) for iid, t in targets.items()}
