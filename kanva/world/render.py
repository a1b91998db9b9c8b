"""Render one planned image to pixels and its annotation record.

`WorldRenderer.render(seed, ...)` is a pure function of the seed (and the config): the plan, the pixels and
the captions all draw from `numpy.random.default_rng(seed)`. A record holds what the COCO export needs:
objects with tight boxes of their visible pixels, visible-mask RLE, area, colour and visible fraction;
the printed words with their boxes; the scene; the captions.
"""

from __future__ import annotations

import math

import numpy as np

from kanva.world.captions import CaptionObject, Captioner, CaptionText
from kanva.world.config import WorldConfig
from kanva.world.glyphs import GLYPHS, GlyphCache, sign_font_path
from kanva.world.layout import Pair, PlacedObject, Plan, Planner, window


class WorldRenderer:
    """Everything one process needs to render images of one world at one size (fonts, glyph cache)."""

    def __init__(self, cfg: WorldConfig, size: int):
        self.cfg = cfg
        self.size = size
        self.palette = {k: tuple(int(v) for v in rgb) for k, rgb in cfg.palette.items()}
        master = max(64, math.ceil(size * cfg.size_range[1] * 1.15))
        self.glyphs = GlyphCache(self.palette, master_px=master)
        self.planner = Planner(cfg, size, self.glyphs, str(sign_font_path()))

    def render(
        self, seed: int, forbidden: set[Pair], novel_pairs: list[tuple[str, str]] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Pixels (uint8 [size, size, 3]) and the annotation record of the image with this seed.

        forbidden: category pairs that must not appear together. novel_pairs: for the novel split, the
        held-out pairs; the image shows one of them (and no other held-out pair).
        """
        rng = np.random.default_rng(seed)
        pair = None
        if novel_pairs:
            pair = novel_pairs[int(rng.integers(len(novel_pairs)))]
            forbidden = forbidden - {frozenset(pair)}
        plan = self.planner.plan(rng, forbidden, pair)
        return self.paint(plan), self.record(plan, seed, rng)

    def paint(self, plan: Plan) -> np.ndarray:
        """Pixels (uint8) of the plan: background, sign, objects far to near; `plan.background` is not changed,
        so the sets and clips paint many object lists over one background."""
        img = plan.background.image.copy()
        if plan.sign is not None:
            self._draw_sign(img, plan)
        for o in plan.objects:
            win = window(o, self.size)
            if win is None:
                continue
            h, w = o.glyph.shape
            if o.zone == "ground":
                _shadow(img, o.x + w / 2, o.y + h, 0.42 * w, max(2.0, 0.05 * h))
            region = img[win[0]]
            rgba = o.glyph.rgba[win[1]]
            a = rgba[..., 3:4] * np.float32(1 / 255)
            region *= 1.0 - a
            region += rgba[..., :3] * a
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def _draw_sign(self, img: np.ndarray, plan: Plan) -> None:
        from PIL import Image, ImageDraw

        sign = plan.sign
        rgb = np.array(self.palette[sign.color], np.float32)
        if sign.post is not None:
            px0, py0, px1, py1 = sign.post
            img[py0:py1, px0:px1] = (110, 110, 115)
        x0, y0, x1, y1 = sign.board
        b = max(1, self.size // 112)
        img[y0:y1, x0:x1] = rgb * 0.55  # border
        img[y0 + b : y1 - b, x0 + b : x1 - b] = rgb
        ink = (20.0, 20.0, 20.0) if float(rgb @ np.array([0.299, 0.587, 0.114])) > 150 else (250.0, 250.0, 250.0)
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(mask).text(
            (sign.text_xy[0] - x0, sign.text_xy[1] - y0), sign.word, fill=255, font=self.planner.sign_font(sign.font_size), anchor="lt"
        )
        a = np.asarray(mask, np.float32)[..., None] / 255.0
        region = img[y0:y1, x0:x1]
        region *= 1.0 - a
        region += np.array(ink, np.float32) * a

    def record(self, plan: Plan, seed: int, rng: np.random.Generator) -> dict:
        """The image's annotation record (objects, texts, scene, captions drawn from `rng`)."""
        objects, texts, cap_objs, cap_texts = [], [], [], []
        if plan.sign is not None:
            texts.append({"text": plan.sign.word, "bbox": list(plan.sign.text_box), "color": plan.sign.color})
            cap_texts.append(CaptionText(plan.sign.word, plan.sign.color, "sign"))
        for i, o in enumerate(plan.objects):
            bbox, area, rle = visible_pixels(plan.idmap, i, o)
            objects.append(
                {
                    "category": o.category,
                    "bbox": bbox,
                    "area": area,
                    "segmentation": rle,
                    "color": o.color,
                    "visible": round(plan.visible[i], 4),
                }
            )
            cap_objs.append(CaptionObject(o.category, bbox, o.color))
            if o.glyph.text_box is not None:
                tx, ty, tw, th = o.glyph.text_box
                texts.append({"text": GLYPHS[o.category].text, "bbox": [o.x + tx, o.y + ty, tw, th], "color": o.color})
                cap_texts.append(CaptionText(GLYPHS[o.category].text, o.color, o.category))
        captions = Captioner(plan.scene, cap_objs, cap_texts, self.size, rng).captions(self.cfg.captions_per_image)
        return {
            "width": self.size,
            "height": self.size,
            "scene": plan.scene,
            "seed": seed,
            "texts": texts,
            "objects": objects,
            "captions": captions,
        }


def visible_pixels(idmap: np.ndarray, i: int, o: PlacedObject) -> tuple[list[int], int, dict] | None:
    """COCO bbox (tight box of the visible pixels), area and RLE mask of object `i` of a painted `idmap`;
    None when none of it is visible (a clip's object hidden or gone)."""
    from pycocotools import mask as mask_utils

    size = idmap.shape[0]
    win = window(o, size)
    if win is None:
        return None
    local = idmap[win[0]] == i
    ys, xs = np.nonzero(local)
    if len(ys) == 0:
        return None
    y0, x0 = win[0][0].start, win[0][1].start
    bbox = [int(x0 + xs.min()), int(y0 + ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    seen = np.zeros((size, size), np.uint8, order="F")
    seen[win[0]] = local
    rle = mask_utils.encode(seen)
    return bbox, int(len(ys)), {"size": [size, size], "counts": rle["counts"].decode("ascii")}


def _shadow(img: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> None:
    """Darken a soft ellipse under an object so it stands on the ground instead of floating."""
    s = img.shape[0]
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, s)
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, s)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    img[y0:y1, x0:x1] *= (1.0 - 0.3 * np.clip(1.0 - d, 0.0, 1.0))[..., None]
