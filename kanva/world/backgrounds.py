"""Procedural scene backgrounds: sky, ground, walls and floors from numpy gradients, shapes and soft noise.

Each style is a function `(rng, size) -> Background`. Besides pixels it says where objects may stand
(`zones`: bands of the image, as fractions of its height, that an object's bottom edge falls in) and
where a sign may hang (`wall`, indoors) or stand on a post (`horizon`, outdoors). Objects in a zone the
style lacks stand in its "ground" zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Background:
    image: np.ndarray  # float32 [size, size, 3], 0..255
    horizon: float  # fraction of the height where sky/wall meets ground/floor
    zones: dict[str, tuple[float, float]]  # zone -> (top, bottom) band for objects' bottom edges
    indoor: bool


Color = tuple[float, float, float]


def _jitter(rng: np.random.Generator, c: Color, amount: float = 10.0) -> np.ndarray:
    return np.clip(np.asarray(c, np.float32) + rng.normal(0.0, amount, 3).astype(np.float32), 0, 255)


def _vgrad(img: np.ndarray, y0: int, y1: int, top: np.ndarray, bottom: np.ndarray) -> None:
    """Fill rows y0..y1 with a vertical gradient from `top` to `bottom`."""
    n = max(y1 - y0, 1)
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None, None]
    img[y0:y1] = top * (1 - t) + bottom * t


def _soft_noise(rng: np.random.Generator, size: int, cell: int, amp: float) -> np.ndarray:
    """Smooth blotchy noise [size, size, 1]: random values on a coarse grid, bilinearly enlarged."""
    from PIL import Image

    n = size // cell + 2
    small = rng.normal(0.0, amp, (n, n)).astype(np.float32)
    big = np.asarray(Image.fromarray(small, "F").resize((n * cell, n * cell), Image.Resampling.BILINEAR))
    return big[:size, :size, None]


def _ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, color: np.ndarray) -> None:
    s = img.shape[0]
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, s)
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, s)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = ((xx - cx) / max(rx, 1e-3)) ** 2 + ((yy - cy) / max(ry, 1e-3)) ** 2 <= 1.0
    img[y0:y1, x0:x1][inside] = color


def _rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: np.ndarray) -> None:
    s = img.shape[0]
    img[max(int(y0), 0) : min(int(y1), s), max(int(x0), 0) : min(int(x1), s)] = color


def _triangle(img: np.ndarray, cx: float, top: float, half: float, base: float, color: np.ndarray) -> None:
    """An upright triangle (mountain, pine) with apex (cx, top) and base half-width `half` at row `base`."""
    s = img.shape[0]
    y0, y1 = max(int(top), 0), min(int(base), s)
    if y0 >= y1:
        return
    x0, x1 = max(int(cx - half), 0), min(int(cx + half) + 1, s)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    w = half * (yy - top) / max(base - top, 1e-3)
    img[y0:y1, x0:x1][np.abs(xx - cx) <= w] = color


def _sky(rng: np.random.Generator, img: np.ndarray, h: int, warm: bool = False) -> None:
    top = _jitter(rng, (120, 170, 230) if not warm else (140, 180, 230))
    low = _jitter(rng, (205, 228, 245) if not warm else (250, 225, 180))
    _vgrad(img, 0, h, top, low)
    s = img.shape[0]
    for _ in range(rng.integers(0, 3)):  # a few flat clouds
        cx, cy = rng.uniform(0, s), rng.uniform(0.05 * s, max(0.3 * h, 0.06 * s))
        w = rng.uniform(0.08, 0.16) * s
        white = np.array([250, 250, 252], np.float32)
        for dx in (-0.5, 0.0, 0.5):
            _ellipse(img, cx + dx * w, cy + (0.15 * w if dx else 0.0), 0.45 * w, 0.22 * w, white)


def _ground(rng: np.random.Generator, img: np.ndarray, h: int, near: Color, far: Color, amp: float) -> None:
    s = img.shape[0]
    _vgrad(img, h, s, _jitter(rng, far), _jitter(rng, near))
    img[h:] += _soft_noise(rng, s, max(s // 24, 2), amp)[h:]


def _horizon(rng: np.random.Generator, lo: float, hi: float, s: int) -> tuple[float, int]:
    f = float(rng.uniform(lo, hi))
    return f, int(f * s)


# ---- outdoor styles -------------------------------------------------------------------------------


def street(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.38, 0.48, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    x = -rng.uniform(0, 0.1) * s
    while x < s:  # a row of buildings with window grids
        w = rng.uniform(0.14, 0.28) * s
        top = h - rng.uniform(0.12, 0.3) * s
        wall = _jitter(rng, (rng.choice([170, 190, 150]), 150, 140), 20)
        _rect(img, x, top, x + w, h, wall)
        win = np.array([225, 235, 245], np.float32) * 0.9
        for wy in np.arange(top + 0.03 * s, h - 0.04 * s, 0.06 * s):
            for wx in np.arange(x + 0.025 * s, x + w - 0.04 * s, 0.06 * s):
                _rect(img, wx, wy, wx + 0.025 * s, wy + 0.03 * s, win)
        x += w + rng.uniform(0, 0.02) * s
    walk = int(h + 0.07 * s)
    _vgrad(img, h, walk, _jitter(rng, (185, 185, 180)), _jitter(rng, (175, 175, 170)))
    _ground(rng, img, walk, (95, 95, 100), (120, 120, 125), 4.0)
    y = int(walk + 0.5 * (s - walk))
    for dx in np.arange(rng.uniform(0, 0.1) * s, s, 0.18 * s):  # dashed centre line
        _rect(img, dx, y, dx + 0.09 * s, y + max(2, s // 112), np.array([240, 240, 235], np.float32))
    return Background(img, f, {"ground": (f + 0.1, 1.0), "sky": (0.1, f - 0.05)}, indoor=False)


def farm(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.35, 0.45, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    xs = np.arange(s)
    hill = h - (0.04 + 0.03 * np.sin(xs / s * rng.uniform(3, 6) + rng.uniform(0, 6))) * s
    far = _jitter(rng, (120, 170, 90))
    for x in xs:
        img[int(hill[x]) : h, x] = far
    _ground(rng, img, h, (95, 165, 70), (135, 185, 95), 6.0)
    if rng.random() < 0.6:  # a red barn on the skyline
        bx = rng.uniform(0.05, 0.8) * s
        _rect(img, bx, h - 0.12 * s, bx + 0.14 * s, h, _jitter(rng, (170, 50, 45)))
        _triangle(img, bx + 0.07 * s, h - 0.18 * s, 0.08 * s, h - 0.12 * s, _jitter(rng, (120, 40, 40)))
    wood = _jitter(rng, (140, 100, 60))
    fy = h + 0.03 * s
    _rect(img, 0, fy, s, fy + 0.012 * s, wood)
    _rect(img, 0, fy + 0.035 * s, s, fy + 0.047 * s, wood)
    for px in np.arange(rng.uniform(0, 0.1) * s, s, 0.12 * s):
        _rect(img, px, fy - 0.015 * s, px + 0.015 * s, fy + 0.06 * s, wood)
    return Background(img, f, {"ground": (f + 0.14, 1.0), "sky": (0.1, f - 0.08)}, indoor=False)


def savanna(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.35, 0.45, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h, warm=True)
    _ground(rng, img, h, (200, 165, 90), (215, 190, 120), 7.0)
    for _ in range(rng.integers(1, 4)):  # flat-topped acacias
        tx = rng.uniform(0, s)
        th = rng.uniform(0.08, 0.15) * s
        dark = _jitter(rng, (95, 110, 55))
        _rect(img, tx - 0.008 * s, h - th, tx + 0.008 * s, h + 0.01 * s, _jitter(rng, (90, 70, 50)))
        _ellipse(img, tx, h - th, rng.uniform(0.07, 0.12) * s, 0.03 * s, dark)
    return Background(img, f, {"ground": (f + 0.12, 1.0), "sky": (0.1, f - 0.08)}, indoor=False)


def forest(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.4, 0.5, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    _ground(rng, img, h, (70, 120, 55), (90, 130, 70), 7.0)
    for _ in range(int(rng.integers(8, 14))):  # pines along the horizon
        cx = rng.uniform(0, s)
        th = rng.uniform(0.15, 0.3) * s
        _triangle(img, cx, h - th, rng.uniform(0.04, 0.07) * s, h + 0.01 * s, _jitter(rng, (40, 100, 60), 12))
    return Background(img, f, {"ground": (f + 0.12, 1.0), "sky": (0.08, f - 0.2)}, indoor=False)


def park(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.35, 0.45, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    for _ in range(int(rng.integers(2, 5))):  # round trees
        cx = rng.uniform(0, s)
        r = rng.uniform(0.05, 0.09) * s
        _rect(img, cx - 0.01 * s, h - r, cx + 0.01 * s, h + 0.01 * s, _jitter(rng, (110, 80, 55)))
        _ellipse(img, cx, h - 1.4 * r, r, r, _jitter(rng, (80, 150, 70), 12))
    _ground(rng, img, h, (110, 180, 80), (140, 195, 105), 5.0)
    stripe = np.arange(s) // max(s // 10, 1) % 2 == 0  # mowed lawn stripes
    img[h:, stripe] *= 1.05
    return Background(img, f, {"ground": (f + 0.1, 1.0), "sky": (0.1, f - 0.15)}, indoor=False)


def beach(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.3, 0.38, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    shore = int(h + rng.uniform(0.17, 0.22) * s)
    _vgrad(img, h, shore, _jitter(rng, (40, 110, 180)), _jitter(rng, (90, 170, 205)))
    for wy in np.arange(h + 0.04 * s, shore - 0.01 * s, 0.05 * s):  # wave lines
        for wx in np.arange(rng.uniform(0, 0.1) * s, s, 0.2 * s):
            _rect(img, wx, wy, wx + 0.07 * s, wy + max(1, s // 160), np.array([225, 240, 250], np.float32))
    _ground(rng, img, shore, (235, 210, 160), (225, 205, 160), 5.0)
    zf = shore / s
    return Background(
        img, f, {"ground": (zf + 0.08, 1.0), "water": (f + 0.06, zf + 0.02), "sky": (0.1, f - 0.04)}, indoor=False
    )


def harbor(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.3, 0.38, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    _rect(img, 0, h - 0.025 * s, s, h, _jitter(rng, (100, 130, 100)))  # far shore
    pier = int(rng.uniform(0.84, 0.88) * s)
    _vgrad(img, h, pier, _jitter(rng, (50, 100, 160)), _jitter(rng, (35, 85, 140)))
    img[h:pier] += _soft_noise(rng, s, max(s // 32, 2), 6.0)[h:pier]
    _ground(rng, img, pier, (150, 110, 70), (165, 125, 80), 4.0)
    for py in range(pier, s, max(s // 28, 2)):  # planks
        img[py] *= 0.8
    pf = pier / s
    return Background(img, f, {"ground": (pf + 0.08, 1.0), "water": (f + 0.12, pf), "sky": (0.1, f - 0.04)}, indoor=False)


def snow(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.38, 0.46, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    for _ in range(int(rng.integers(2, 4))):  # mountains with snow caps
        cx = rng.uniform(0, s)
        top = h - rng.uniform(0.18, 0.3) * s
        half = rng.uniform(0.2, 0.3) * s
        _triangle(img, cx, top, half, h + 1, _jitter(rng, (130, 135, 150)))
        _triangle(img, cx, top, half * 0.3, top + 0.3 * (h - top), np.array([245, 248, 252], np.float32))
    _ground(rng, img, h, (235, 240, 248), (215, 225, 240), 5.0)
    return Background(img, f, {"ground": (f + 0.1, 1.0), "sky": (0.08, f - 0.2)}, indoor=False)


def airport(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.35, 0.45, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    tx = rng.uniform(-0.2, 0.4) * s  # the terminal: a long low building with a glass front
    _rect(img, tx, h - 0.1 * s, tx + 0.7 * s, h, _jitter(rng, (190, 190, 195)))
    _rect(img, tx + 0.02 * s, h - 0.08 * s, tx + 0.68 * s, h - 0.03 * s, _jitter(rng, (120, 160, 190)))
    _ground(rng, img, h, (120, 120, 125), (150, 150, 150), 4.0)
    y = h + 0.3 * (s - h)
    for dx in np.arange(rng.uniform(0, 0.1) * s, s, 0.2 * s):
        _rect(img, dx, y, dx + 0.1 * s, y + max(2, s // 100), np.array([245, 245, 240], np.float32))
    _rect(img, 0, h + 0.6 * (s - h), s, h + 0.6 * (s - h) + max(2, s // 110), np.array([235, 200, 60], np.float32))
    return Background(img, f, {"ground": (f + 0.1, 1.0), "sky": (0.12, f - 0.08)}, indoor=False)


def station(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.35, 0.42, s)
    img = np.zeros((s, s, 3), np.float32)
    _sky(rng, img, h)
    _rect(img, 0, 0, s, 0.06 * s, _jitter(rng, (90, 95, 105)))  # the platform roof's edge
    _ground(rng, img, h, (175, 170, 165), (150, 145, 140), 4.0)
    for ry in (h + 0.06 * s, h + 0.1 * s):  # rails behind the platform edge
        _rect(img, 0, ry, s, ry + max(2, s // 110), np.array([90, 80, 75], np.float32))
    edge = h + 0.16 * s
    _rect(img, 0, edge, s, edge + 0.02 * s, np.array([235, 200, 50], np.float32))
    return Background(img, f, {"ground": (f + 0.22, 1.0)}, indoor=False)


# ---- indoor styles --------------------------------------------------------------------------------


def _wall(rng: np.random.Generator, img: np.ndarray, h: int, color: Color, pattern: str) -> None:
    s = img.shape[0]
    base = _jitter(rng, color, 12)
    _vgrad(img, 0, h, base * 1.03, base * 0.95)
    if pattern == "tiles":
        step = max(s // 14, 4)
        img[:h, ::step] *= 0.88
        img[:h][::step] *= 0.88
    elif pattern == "stripes":
        band = max(s // 16, 2)
        img[:h, (np.arange(s) // band) % 2 == 0] *= 0.94
    img[max(h - max(s // 60, 1), 0) : h] *= 0.75  # skirting / counter edge shadow


def kitchen(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.45, 0.55, s)
    img = np.zeros((s, s, 3), np.float32)
    _wall(rng, img, h, (235, 232, 220), "tiles")
    top = _jitter(rng, [(200, 170, 130), (150, 150, 158), (185, 140, 95)][rng.integers(3)], 8)  # wood or stone
    _vgrad(img, h, s, top * 0.95, top)
    img[h:] += _soft_noise(rng, s, max(s // 40, 2), 4.0)[h:]
    img[h : h + max(s // 50, 2)] *= 1.12  # the counter's front edge catches the light
    return Background(img, f, {"ground": (f + 0.08, 1.0)}, indoor=True)


def office(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.45, 0.55, s)
    img = np.zeros((s, s, 3), np.float32)
    _wall(rng, img, h, [(220, 225, 230), (230, 225, 210), (210, 225, 215)][rng.integers(3)], "plain")
    _ground(rng, img, h, (160, 120, 85), (175, 135, 95), 4.0)  # a wooden desk
    return Background(img, f, {"ground": (f + 0.08, 1.0)}, indoor=True)


def living_room(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.45, 0.55, s)
    img = np.zeros((s, s, 3), np.float32)
    _wall(rng, img, h, [(225, 210, 190), (200, 215, 225), (230, 220, 200)][rng.integers(3)], "stripes")
    _ground(rng, img, h, (170, 120, 80), (150, 105, 70), 3.0)
    plank = max(s // 18, 3)
    for i, py in enumerate(range(h, s, plank)):  # floor planks, seams staggered
        img[py] *= 0.8
        for sx in np.arange((i % 3) * s / 9, s, s / 3):
            img[py : py + plank, int(sx)] *= 0.8
    return Background(img, f, {"ground": (f + 0.1, 1.0)}, indoor=True)


def bedroom(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.45, 0.55, s)
    img = np.zeros((s, s, 3), np.float32)
    _wall(rng, img, h, [(215, 200, 230), (200, 220, 235), (235, 215, 210)][rng.integers(3)], "plain")
    _ground(rng, img, h, (150, 130, 160), (170, 150, 175), 8.0)  # carpet
    return Background(img, f, {"ground": (f + 0.1, 1.0)}, indoor=True)


def bathroom(rng: np.random.Generator, s: int) -> Background:
    f, h = _horizon(rng, 0.45, 0.55, s)
    img = np.zeros((s, s, 3), np.float32)
    _wall(rng, img, h, [(200, 225, 235), (235, 235, 235)][rng.integers(2)], "tiles")
    _ground(rng, img, h, (200, 200, 205), (185, 185, 190), 2.0)
    tile = max(s // 10, 4)
    yy, xx = np.mgrid[0 : s - h, 0:s]
    img[h:][((yy // tile) + (xx // tile)) % 2 == 0] *= 0.85  # checkered floor
    return Background(img, f, {"ground": (f + 0.1, 1.0)}, indoor=True)


STYLES: dict[str, Callable[[np.random.Generator, int], Background]] = {
    "street": street,
    "farm": farm,
    "savanna": savanna,
    "forest": forest,
    "park": park,
    "beach": beach,
    "harbor": harbor,
    "snow": snow,
    "airport": airport,
    "station": station,
    "kitchen": kitchen,
    "office": office,
    "living_room": living_room,
    "bedroom": bedroom,
    "bathroom": bathroom,
}
