"""Short clips: 8-16 frames of one scene in which one or two objects move sideways along their row.

A clip starts from an ordinary planned image (`Planner.plan`: background, sign, static objects; the novel
split's held-out pair among them), then adds movers, each placed like any object (`Planner._try_place`:
size, zone, row) and given a path and a `motion`:
- `move`: from one place in view to another, at least MIN_TRAVEL of the side away;
- `enter`: from just past one edge into view;  `leave`: from in view to just past the other edge;
- `cross`: past one edge to past the other (it enters, then leaves);
- `appear`: absent from the first frames (1 to half the clip), then it moves in view.
Each motion has a `direction` (left or right). Depth follows the row as in a still image, so a mover passes
in front of farther objects and behind nearer ones: occlusion is computed from the masks, never assumed.
Per frame, every object gets its visible pixels' box, area and RLE (null when nothing of it shows) and its
visible fraction (null before an `appear`). A passing mover may hide the sign for a few frames.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kanva.errors import KanvaError
from kanva.world.layout import Pair, PlacedObject, Plan
from kanva.world.render import WorldRenderer, visible_pixels
from kanva.world.sets import _replan, allowed

CLIP_FRAMES = (8, 16)  # frames per clip, inclusive
CLIP_FPS = 4  # frame rate of the mp4 (2-4 s clips)
MOTIONS = ("move", "enter", "leave", "cross", "appear")
MOVER_PROB = 0.5  # chance of a second mover
# A scene whose priors are all present or held out, or with no room left for a mover, gives no moving object:
# the clip then draws a new base plan from the same generator (deterministic), and fails only after this many.
PLAN_ATTEMPTS = 20
MIN_TRAVEL = 0.3  # a `move` covers at least this fraction of the side


def _path(rng: np.random.Generator, o: PlacedObject, frames: int, size: int) -> tuple[dict, list[int | None]]:
    """The mover's motion record and its x per frame (None while absent)."""
    w = o.glyph.shape[1]
    kind = MOTIONS[int(rng.integers(len(MOTIONS)))]
    right = bool(rng.random() < 0.5)
    inside = size - w  # largest x fully in view
    travel = int(np.ceil(MIN_TRAVEL * size))
    if kind in ("move", "appear") and inside < travel:
        kind = "cross"  # too wide to travel far in view
    first = int(rng.integers(1, frames // 2 + 1)) if kind == "appear" else 0
    if kind in ("move", "appear"):
        a = int(rng.integers(0, inside - travel + 1))
        b = int(rng.integers(a + travel, inside + 1))
    elif kind == "enter":
        a, b = -w, int(rng.integers(0, inside + 1))
    elif kind == "leave":
        a, b = int(rng.integers(0, inside + 1)), size
    else:
        a, b = -w, size
    if not right:  # mirror the path: same shape, other way
        a, b = inside - a, inside - b
    span = frames - 1 - first
    xs = [None if t < first else int(round(a + (b - a) * (t - first) / span)) for t in range(frames)]
    return {"kind": kind, "direction": "right" if right else "left", "first": first}, xs


def plan_clip(renderer: WorldRenderer, rng: np.random.Generator, forbidden: set[Pair], pair):
    """The base plan (static objects), the movers with their motions and x paths, and the frame count."""
    for _ in range(PLAN_ATTEMPTS):
        base, movers, frames = _plan_once(renderer, rng, forbidden, pair)
        if movers:
            return base, movers, frames
    raise KanvaError(f"a {base.scene} clip got no moving object in {PLAN_ATTEMPTS} plans; lower size_range")


def _plan_once(renderer: WorldRenderer, rng: np.random.Generator, forbidden: set[Pair], pair):
    cfg, size = renderer.cfg, renderer.size
    base = renderer.planner.plan(rng, forbidden, pair)
    for k, o in enumerate(sorted(base.objects, key=lambda o: o.order)):
        o.order = k
    frames = int(rng.integers(CLIP_FRAMES[0], CLIP_FRAMES[1] + 1))
    present = {o.category for o in base.objects}
    n_movers = 1 + int(rng.random() < MOVER_PROB)
    movers = []
    for m in range(n_movers):
        priors = allowed(cfg.scene_priors(base.scene), present, forbidden)
        if not priors:
            break
        names = list(priors)
        w = np.array([priors[c] for c in names], np.float64)
        category = names[int(rng.choice(len(names), p=w / w.sum()))]
        placed = renderer.planner._try_place(rng, base.background, [], category, base.sign)
        if placed is None:
            continue
        o = placed[0][0]
        o.order = len(base.objects) + m
        present.add(category)
        motion, xs = _path(rng, o, frames, size)
        movers.append((o, motion, xs))
    return base, movers, frames


def render_clip(renderer: WorldRenderer, seed: int, forbidden: set[Pair], novel_pairs: list[tuple[str, str]] | None):
    """Frames (uint8 [size, size, 3] each) and the clip's record: scene, sign texts, and one track per
    object with its motion and per-frame boxes, areas, RLE masks and visible fractions."""
    rng = np.random.default_rng(seed)
    pair = None
    if novel_pairs:
        pair = novel_pairs[int(rng.integers(len(novel_pairs)))]
        forbidden = forbidden - {frozenset(pair)}
    base, movers, frames = plan_clip(renderer, rng, forbidden, pair)
    objects = sorted(base.objects, key=lambda o: o.order) + [o for o, _, _ in movers]
    motions = {o.order: m for o, m, _ in movers}
    paths = {o.order: xs for o, _, xs in movers}
    tracks = [
        {"category": o.category, "color": o.color, "track": o.order,
         "motion": motions.get(o.order, {"kind": "static", "direction": None, "first": 0}),
         "bboxes": [], "areas": [], "segmentations": [], "visible": []}
        for o in objects
    ]
    pixels = []
    for t in range(frames):
        now = [o if o.order not in paths else dataclasses.replace(o, x=paths[o.order][t])
               for o in objects if o.order not in paths or paths[o.order][t] is not None]
        plan: Plan = _replan(base, now, renderer.size)
        pixels.append(renderer.paint(plan))
        shown = {o.order: i for i, o in enumerate(plan.objects)}
        for tr, o in zip(tracks, objects):
            i = shown.get(o.order)
            seen = None if i is None else visible_pixels(plan.idmap, i, plan.objects[i])
            tr["bboxes"].append(None if seen is None else seen[0])
            tr["areas"].append(None if seen is None else seen[1])
            tr["segmentations"].append(None if seen is None else seen[2])
            tr["visible"].append(None if i is None else round((0 if seen is None else seen[1]) / max(o.glyph.area, 1), 4))
    texts = []
    if base.sign is not None:
        texts.append({"text": base.sign.word, "bbox": list(base.sign.text_box), "color": base.sign.color})
    return pixels, {"seed": seed, "scene": base.scene, "width": renderer.size, "height": renderer.size,
                    "length": frames, "fps": CLIP_FPS, "texts": texts, "tracks": tracks}


# BT.601 limited range (what decoders assume for an unflagged stream of this size): rows give Y, Cb, Cr from RGB.
_RGB_TO_YUV = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0


def to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """An RGB frame (uint8 [h, w, 3], even sides) as one yuv420p plane stack ([h * 3 / 2, w], Y then Cb then Cr,
    chroma averaged over 2x2 blocks). Done here in numpy, so what the encoder gets is fixed by the frame alone."""
    h, w, _ = rgb.shape
    yuv = rgb.astype(np.float64) @ _RGB_TO_YUV.T + (16.0, 128.0, 128.0)
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = [yuv[..., 0].ravel(), chroma[..., 0].ravel(), chroma[..., 1].ravel()]
    return np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(frames: list[np.ndarray], path: Path, fps: int = CLIP_FPS) -> None:
    """MPEG-4 Part 2 in an mp4 via PyAV: FFmpeg's own `mpeg4` encoder with bitexact flags on one thread, so the
    same frames give the same bytes in any process (libx264 did not: its bytes varied between processes and
    runs on the same frames, measured); constant quantiser 2, every 4th frame a keyframe. Written to a
    temporary name, then renamed."""
    import av

    tmp = path.with_name(path.name + ".tmp")
    h, w = frames[0].shape[:2]
    with av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"flags": "+bitexact+qscale", "global_quality": str(2 * 118), "g": "4"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(to_yuv420p(f), format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
