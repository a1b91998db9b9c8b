"""Plan one image: pick its scene, its objects (categories, colours, sizes, positions) and maybe a sign.

Objects are placed one by one; a placement is kept only if, with objects painted far-to-near (by the
y of their bottom edge), every object keeps at least `min_visible` of its mask pixels and no printed word
(a sign's, a stop sign's) is covered. An object that finds no such place in `placement_tries` tries is left
out of the plan (the annotations list exactly what is drawn). All randomness comes from the image's own
generator, so a plan depends only on the image seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kanva.errors import KanvaError
from kanva.world.backgrounds import STYLES, Background
from kanva.world.config import WorldConfig
from kanva.world.glyphs import GLYPHS, Glyph, GlyphCache, bucket

Pair = frozenset[str]


@dataclass
class PlacedObject:
    category: str
    color: str | None
    glyph: Glyph
    x: int  # top-left corner in pixels
    y: int
    zone: str
    order: int = 0  # placement order, breaks depth ties
    px: int = 0  # the glyph's size bucket and mirroring: what re-fetching it in another colour needs
    flip: bool = False

    @property
    def depth_key(self) -> tuple[int, int]:
        """Painter's order: objects whose bottom edge is lower in the image are nearer, drawn later."""
        return (self.y + self.glyph.shape[0], self.order)


@dataclass
class SignPlan:
    word: str
    color: str
    font_size: int
    board: tuple[int, int, int, int]  # x0, y0, x1, y1
    text_xy: tuple[int, int]  # where the text is drawn (PIL anchor "lt")
    text_box: tuple[int, int, int, int]  # x, y, w, h of the printed ink
    post: tuple[int, int, int, int] | None  # x0, y0, x1, y1 of the post, outdoors


@dataclass
class Plan:
    scene: str
    background: Background
    objects: list[PlacedObject]  # in painting order, far to near
    sign: SignPlan | None
    idmap: np.ndarray  # int16 [size, size]: index into `objects` of the object seen at each pixel, -1 none
    visible: list[float] = field(default_factory=list)


def window(o: PlacedObject, size: int) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """(image slices, glyph slices) of the part of `o` inside the image; None when it is wholly outside.
    Still images keep every object inside; a clip's objects may stand partly past an edge as they leave."""
    h, w = o.glyph.shape
    y0, x0 = max(o.y, 0), max(o.x, 0)
    y1, x1 = min(o.y + h, size), min(o.x + w, size)
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - o.y, y1 - o.y), slice(x0 - o.x, x1 - o.x))


def paint_ids(objects: list[PlacedObject], size: int) -> np.ndarray:
    """Which object (index in `objects`, which must be in painting order) owns each pixel; -1 for none."""
    idmap = np.full((size, size), -1, np.int16)
    for i, o in enumerate(objects):
        win = window(o, size)
        if win is not None:
            idmap[win[0]][o.glyph.mask[win[1]]] = i
    return idmap


def visibilities(objects: list[PlacedObject], idmap: np.ndarray) -> list[float]:
    """Fraction of each object's mask still on top: the pixels `idmap` gives it over its mask area."""
    counts = np.bincount((idmap + 1).ravel(), minlength=len(objects) + 1)[1:]
    return [float(counts[i]) / max(o.glyph.area, 1) for i, o in enumerate(objects)]


def _covers_text(objects: list[PlacedObject], idmap: np.ndarray, sign: SignPlan | None) -> bool:
    """True if any object hides part of a printed word: the sign's, or one on a glyph (stop sign)."""
    if sign is not None:
        x, y, w, h = sign.text_box
        if (idmap[y : y + h, x : x + w] >= 0).any():
            return True
    for i, o in enumerate(objects):
        if o.glyph.text_box is None:
            continue
        tx, ty, tw, th = o.glyph.text_box
        region = idmap[o.y + ty : o.y + ty + th, o.x + tx : o.x + tx + tw]
        if (region[o.glyph.mask[ty : ty + th, tx : tx + tw]] != i).any():
            return True
    return False


class Planner:
    """Plans images for one world config and image size; holds the per-process glyph cache and sign fonts."""

    def __init__(self, cfg: WorldConfig, size: int, glyphs: GlyphCache, sign_font_file: str):
        self.cfg = cfg
        self.size = size
        self.glyphs = glyphs
        self.sign_font_file = sign_font_file
        self._fonts: dict[int, object] = {}
        self.scene_names = [n for n, s in cfg.scenes.items() if s.weight > 0 and cfg.scene_priors(n)]
        w = np.array([cfg.scenes[n].weight for n in self.scene_names], np.float64)
        self.scene_p = w / w.sum()
        self.palette_names = list(cfg.palette)
        self.colored = set(cfg.colored_categories)

    # ---- objects ----------------------------------------------------------------------------------

    def _next_category(
        self, rng: np.random.Generator, priors: dict[str, float], chosen: list[str], forbidden: set[Pair]
    ) -> str | None:
        counts = {c: chosen.count(c) for c in set(chosen)}
        repeatable = sorted(c for c, k in counts.items() if k < self.cfg.max_instances)
        if repeatable and rng.random() < self.cfg.repeat_prob:
            return repeatable[int(rng.integers(len(repeatable)))]
        names = [
            c
            for c in priors
            if counts.get(c, 0) < self.cfg.max_instances and not any(frozenset((c, d)) in forbidden for d in counts)
        ]
        if not names:
            return None
        w = np.array([priors[c] for c in names], np.float64)
        return names[int(rng.choice(len(names), p=w / w.sum()))]

    def _try_place(
        self, rng: np.random.Generator, bg: Background, objects: list[PlacedObject], category: str, sign: SignPlan | None
    ) -> tuple[list[PlacedObject], np.ndarray] | None:
        cfg, s = self.cfg, self.size
        spec = GLYPHS[category]
        color = self.palette_names[int(rng.integers(len(self.palette_names)))] if category in self.colored else None
        flip = spec.text is None and bool(rng.random() < cfg.flip_prob)
        zone = spec.zone
        if zone == "any":
            zone = "sky" if rng.random() < 0.5 else "ground"
        if zone not in bg.zones:
            zone = "ground"
        top, bottom = bg.zones[zone]
        lo, hi = cfg.size_range
        u = min(1.0, 0.65 * spec.scale + 0.35 * float(rng.random()))
        for attempt in range(cfg.placement_tries):
            depth = float(rng.random())  # 0 = far (top of the zone), 1 = near
            shrink = 0.9 ** (attempt // 10)  # crowded image: try smaller after every 10 failures
            perspective = 0.75 + 0.25 * depth if zone == "ground" else 1.0
            frac = lo + (hi - lo) * u * perspective * shrink
            px = bucket(frac * s, s)
            glyph = self.glyphs.get(category, px, color, flip)
            h, w = glyph.shape
            if w > s or h > s:
                continue
            base = (top + (bottom - top) * depth) * s
            y = int(min(max(base - h, 0), s - h))
            x = int(rng.integers(0, s - w + 1))
            cand = PlacedObject(category, color, glyph, x, y, zone, order=len(objects), px=px, flip=flip)
            trial = sorted([*objects, cand], key=lambda o: o.depth_key)
            idmap = paint_ids(trial, s)
            if min(visibilities(trial, idmap)) < cfg.min_visible or _covers_text(trial, idmap, sign):
                continue
            return trial, idmap
        return None

    # ---- signs ------------------------------------------------------------------------------------

    def sign_font(self, size: int):
        from PIL import ImageFont

        if size not in self._fonts:
            self._fonts[size] = ImageFont.truetype(self.sign_font_file, size)
        return self._fonts[size]

    def _plan_sign(self, rng: np.random.Generator, scene: str, bg: Background) -> SignPlan:
        cfg, s = self.cfg, self.size
        words = cfg.scenes[scene].sign_words or cfg.sign_words
        word = words[int(rng.integers(len(words)))]
        color = cfg.sign_colors[int(rng.integers(len(cfg.sign_colors)))]
        # Font size as a share of the side (WorldConfig.sign_size); the board leaves room for the objects.
        fs = max(8, round(rng.uniform(*cfg.sign_size) * s))
        while True:
            x0, y0, x1, y1 = self.sign_font(fs).getbbox(word, anchor="lt")
            pad = max(2, round(0.35 * (y1 - y0)))
            bw, bh = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
            if bw <= 0.6 * s or fs <= 8:
                break
            fs -= 1
        horizon = int(bg.horizon * s)
        if bg.indoor:  # hung on the wall
            by = int(rng.integers(int(0.04 * s), max(int(0.04 * s) + 1, horizon - bh - int(0.04 * s))))
        else:  # on a post standing in the near ground
            by = int(rng.integers(int(0.05 * s), max(int(0.05 * s) + 1, horizon - bh // 2)))
        bx = int(rng.integers(0, max(1, s - bw)))
        board = (bx, by, bx + bw, by + bh)
        tx, ty = bx + pad - x0, by + pad - y0
        text_box = (bx + pad, by + pad, x1 - x0, y1 - y0)
        post = None
        if not bg.indoor:
            pw = max(2, s // 60)
            foot = min(s - 1, int(horizon + rng.uniform(0.04, 0.12) * s))
            post = (bx + bw // 2 - pw // 2, by + bh, bx + bw // 2 + pw - pw // 2, max(foot, by + bh + 1))
        return SignPlan(word, color, fs, board, (tx, ty), text_box, post)

    # ---- the plan ---------------------------------------------------------------------------------

    def _place_all(self, rng: np.random.Generator, scene: str, bg: Background, priors: dict, target: int,
                   pair: tuple[str, str] | None, forbidden: set[Pair], sign: SignPlan | None):
        """Objects placed one by one (the novel pair first) until `target` or the tries run out; None when the
        novel pair does not fit."""
        objects: list[PlacedObject] = []
        idmap = np.full((self.size, self.size), -1, np.int16)
        for category in pair or ():
            placed = self._try_place(rng, bg, objects, category, sign)
            if placed is None:
                return None
            objects, idmap = placed
        slots = 0
        while len(objects) < target and slots < 3 * target:
            slots += 1
            chosen = [o.category for o in objects]
            category = self._next_category(rng, priors, chosen, forbidden)
            if category is None:
                break
            placed = self._try_place(rng, bg, objects, category, sign)
            if placed is not None:
                objects, idmap = placed
        return objects, idmap

    def plan(self, rng: np.random.Generator, forbidden: set[Pair], pair: tuple[str, str] | None = None) -> Plan:
        """Plan an image. `pair`: two categories that must both appear (the novel split); the scene is then
        drawn among those whose priors hold both. `forbidden`: pairs that must not appear together."""
        cfg = self.cfg
        if pair is None:
            scene = self.scene_names[int(rng.choice(len(self.scene_names), p=self.scene_p))]
        else:
            fits = [i for i, n in enumerate(self.scene_names) if set(pair) <= set(cfg.scene_priors(n))]
            p = self.scene_p[fits] / self.scene_p[fits].sum()
            scene = self.scene_names[fits[int(rng.choice(len(fits), p=p))]]
        priors = cfg.scene_priors(scene)
        bg = STYLES[cfg.scenes[scene].background](rng, self.size)
        sign = self._plan_sign(rng, scene, bg) if rng.random() < cfg.text_sign_prob else None
        target = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        placed = self._place_all(rng, scene, bg, priors, target, pair, forbidden, sign)
        if (placed is None or len(placed[0]) < cfg.min_objects) and sign is not None:
            # A large board (sign_size) can leave no room for a large glyph (an airplane in the sky it hangs in,
            # or a novel pair of two sky objects): this image goes without its sign rather than failing the world.
            sign = None
            placed = self._place_all(rng, scene, bg, priors, target, pair, forbidden, sign)
        if placed is None:
            raise KanvaError(f"could not place the novel pair {pair} in an empty {scene} image; lower size_range")
        objects, idmap = placed
        if len(objects) < cfg.min_objects:
            raise KanvaError(
                f"placed only {len(objects)} of min_objects={cfg.min_objects} in a {scene} image; "
                "lower min_objects or size_range"
            )
        return Plan(scene, bg, objects, sign, idmap, visibilities(objects, idmap))
