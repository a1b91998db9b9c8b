"""Where a OneVision model puts each image token, written as scene text (scene_text.py).

A Llava model's image is its grid's cells. transformers' LlavaOnevision (kanva/model/onevision.py) lays tokens
out by how many images a sample holds, and the scene text follows it token for token, so that a reading stage
over the text carries over to the images as it does for Llava:

- one image in a sample: the base view's cells, then the AnyRes crops' rows, each followed by the newline
  feature. The scene text needs `image_grid_pinpoints` [[S, S]] (S the encoder's input size): the one crop is the
  base view again and is written as the same cells row by row. Larger grids are refused, because the crops'
  features are unpadded and interpolated down to the `anyres_max_N` budget (bilinear), which mixes neighbouring
  words into tokens no text can write; on 2 CPU cores they would also multiply the LM's image tokens;
- each image of a multi-image sample: its cells, then the newline feature;
- a video: each sampled frame's pooled cells (2x2 block means; kanva/grounding/frames.py labels frames per
  block so that each is one word), then one newline feature after the last frame.

The newline feature is the LM embedding of the word the vision stage chose (`onevision.newline` in
patch_labels.json, " |" by default), so the text writes that word wherever transformers inserts the feature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kanva.errors import KanvaError


@dataclass(frozen=True)
class OnevisionLayout:
    grid: int  # the encoder's patches per side
    newline: str
    max_frames: int  # frames sampled from every video (the processor's count)
    frames: bool  # whether the vision stage labelled video frames (else a video has no scene text)

    @classmethod
    def of(cls, model_dir: str | Path, labels: dict) -> OnevisionLayout | None:
        """The layout of a grounded model directory; None for a Llava model."""
        d = Path(model_dir)
        try:
            config = json.loads((d / "config.json").read_text())
            if config.get("model_type") != "llava_onevision":
                return None
            vc = config["vision_config"]
            size, grid = int(vc["image_size"]), int(vc["image_size"]) // int(vc["patch_size"])
            pins = [list(p) for p in config.get("image_grid_pinpoints") or []]
            record = json.loads((d / "kanva.json").read_text()) if (d / "kanva.json").is_file() else {}
        except (OSError, KeyError, TypeError, ValueError) as e:
            raise KanvaError(f"{d}: cannot read the OneVision config: {e}") from None
        if pins != [[size, size]]:
            raise KanvaError(f"{d}: scene text needs image_grid_pinpoints [[{size}, {size}]] (no AnyRes tiles: their "
                             f"features are unpadded and interpolated, which mixes words), got {pins}; build the "
                             f"model with --set 'image_grid_pinpoints=[[{size},{size}]]'")
        ov = labels.get("onevision")
        if not isinstance(ov, dict) or not ov.get("newline"):
            raise KanvaError(f"{d}: patch_labels.json has no `onevision.newline`; ground the model with this "
                             "version of `kanva grounding pretrain`")
        return cls(grid, str(ov["newline"]), int(record.get("max_frames") or 32), bool(ov.get("frames")))

    # Each returns one cell per image token (a cell holds the words of one token); the scene text joins them.
    def single(self, cells: list[str]) -> list[str]:
        """One image in a sample: base view, then the (same) crop row by row, each row ending in the newline."""
        g = self.grid
        return [*cells, *(c for r in range(g) for c in [*cells[r * g : (r + 1) * g], self.newline])]

    def multi(self, cells: list[str]) -> list[str]:
        """An image of a multi-image sample: its base view, then the newline."""
        return [*cells, self.newline]

    def video(self, frames: list[list[str]]) -> list[str]:
        """A video: every sampled frame's pooled cells, then one newline."""
        if not self.frames:
            raise KanvaError("this model's vision stage labelled no video frames (onevision.frames_per_step 0), so a "
                             "video has no scene text")
        return [*(c for cells in frames for c in cells), self.newline]
