"""The facts that questions about multi-image sets and clips are built from: one set of rules, computed from
annotations only, shared by the training operators (kanva/data/ops/sets.py, ops/clips.py), the seeds
(kanva/data/sequence_seed.py) and the multi-image / video benchmarks. Nothing else may restate these rules.

Every function is pure and deterministic (same annotations -> same facts, in the same order), takes an
`ImageSet` or a `Clip` from kanva/data/sequences.py, and returns small frozen dataclasses or tuples. Images of
a set and frames/tracks of a clip are numbered from 0 (a question says "Image 1" for index 0).

Visibility is the single-image rule (`Obj.usable`, `kanva.data.config.MIN_VISIBLE`): an object counts as
shown when it is not a crowd region and at least `min_visible` of it is visible (or its visibility is not
recorded); a category is countable in an image only when every instance of it is shown and there are at most
`max_count` of them (a half-hidden instance makes a count a guess).

Sets (`ImageSet`):
- `shown_in(rec)` -> categories one image shows;  `showing(s, cat)` -> image indices where `cat` is shown;
  `shown_categories(s)` -> sorted categories shown in some image;  `mentioned_in(s, k)` -> categories
  annotated, captioned or printed in image k (anything a "not in image k" claim must avoid);
  `image_count(rec, cat)` -> instances in one image, None when not countable.
- `set_counts(s, cat)` -> `SetCount(category, per_image, total, tracks)`: per-image counts (None where not
  countable), their sum (None unless every image is countable) and the distinct tracks shown (None without
  tracks: the same object in two images of a `change` set has one track, so `total` counts it twice).
- `difference(s, i, j)` -> categories shown in image i that image j does not have at all (not annotated,
  captioned or printed there): "what does image i have that image j lacks".
- `changes(s)` -> the recorded `Change`s (world sets of kind `change`), in order.

Clips (`Clip`):
- `track_motions(clip)` -> one `TrackMotion(index, category, kind, direction, source)` per track: the
  recorded `motion` when there is one (world clips: kind static/move/enter/leave/cross/appear, direction
  left/right/None), else from the centres of the first and last boxes (kind "moving"/"static", direction
  left/right/up/down when the centre travels at least `MIN_SHIFT` of the frame side along its main axis).
- `first_seen(clip, index)` -> the first frame in which track `index` is shown, or None;
  `appearance_order(clip)` -> `(frame, index)` of every track shown at some point, by frame then index.
- `leaving(clip)` -> indices of tracks shown in the first frame and out of view in the last;
  `appearing(clip)` -> indices of tracks not in view in the first frame and shown in the last.
- `end_counts(clip)` -> {category: tracks shown in the last frame} for every category of the clip whose
  every track is shown or out of view there (0 when all left); categories with a half-hidden track are left
  out.
- `occlusions(clip)` -> `Occlusion(index, category, frames, by)`: frames in which a track is hidden (visible
  below the threshold) while shown both before and after them, and the categories of the tracks whose boxes
  cover its box then. Needs the world's per-frame `visible`; without it, none are known.
- `unique_movers(clip)` -> {category: track index} for categories with exactly one moving track.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from kanva.data.coco import ImageRec
from kanva.data.config import MAX_COUNT, MIN_VISIBLE
from kanva.data.sequences import Clip, ImageSet, Track
from kanva.data.vocab import mentioned

MIN_SHIFT = 0.1  # a track without a recorded motion moves when its centre travels this share of the side
DIRECTIONS = ("left", "right", "up", "down")


# -- sets ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetCount:
    category: str
    per_image: tuple[int | None, ...]  # count in each image (0 where absent), None where not countable
    total: int | None  # sum over the images, None if some image is not countable
    tracks: int | None  # distinct tracks shown over the set, None when the objects carry no track


@dataclass(frozen=True)
class Change:
    """One recorded change of a world set: image `image` differs from image `image - 1` by it."""

    image: int
    op: str  # add | remove | move | recolor
    category: str
    track: int | None = None
    color: str | None = None  # the object's colour (add, remove, move)
    direction: str | None = None  # move: left | right
    before: str | None = None  # recolor: the colour it had
    after: str | None = None  # recolor: the colour it has now


def shown_in(rec: ImageRec, min_visible: float = MIN_VISIBLE) -> set[str]:
    """The categories one image shows (at least one instance clear enough)."""
    return {o.category for o in rec.objects if o.usable(min_visible)}


def showing(s: ImageSet, category: str, min_visible: float = MIN_VISIBLE) -> tuple[int, ...]:
    """Indices of the images in which `category` is shown."""
    return tuple(k for k, rec in enumerate(s.images) if category in shown_in(rec, min_visible))


def shown_categories(s: ImageSet, min_visible: float = MIN_VISIBLE) -> list[str]:
    """Every category shown in at least one image of the set, sorted."""
    return sorted(set().union(*(shown_in(rec, min_visible) for rec in s.images)))


def mentioned_in(s: ImageSet, k: int) -> frozenset[str]:
    """Categories image k has in any way: annotated (even hidden), named by a caption, printed on a sign."""
    rec = s.images[k]
    printed = {c for t in rec.texts for c in mentioned(t.text)}
    return frozenset(rec.counts) | rec.caption_mentions | printed


def image_count(rec: ImageRec, category: str, min_visible: float = MIN_VISIBLE,
                max_count: int = MAX_COUNT) -> int | None:
    """Instances of `category` in one image (0 when absent), None when one of them is not shown or too many."""
    objs = [o for o in rec.objects if o.category == category]
    if any(not o.usable(min_visible) for o in objs) or len(objs) > max_count:
        return None
    return len(objs)


def set_counts(s: ImageSet, category: str, min_visible: float = MIN_VISIBLE, max_count: int = MAX_COUNT) -> SetCount:
    per = tuple(image_count(rec, category, min_visible, max_count) for rec in s.images)
    total = None if any(n is None for n in per) else sum(per)  # type: ignore[arg-type]
    objs = [o for rec in s.images for o in rec.objects if o.category == category and o.usable(min_visible)]
    tracks = None if any(o.track is None for o in objs) else len({o.track for o in objs})
    return SetCount(category, per, total, tracks)


def difference(s: ImageSet, i: int, j: int, min_visible: float = MIN_VISIBLE) -> list[str]:
    """Categories shown in image i that image j does not have at all, sorted."""
    return sorted(shown_in(s.images[i], min_visible) - mentioned_in(s, j))


def changes(s: ImageSet) -> list[Change]:
    out = []
    for c in s.changes:
        out.append(Change(int(c.get("image", 0)), str(c.get("op", "")), str(c.get("category", "")), c.get("track"),
                          c.get("color"), c.get("direction"), c.get("from"), c.get("to")))
    return out


# -- clips -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackMotion:
    index: int  # position in clip.tracks
    category: str
    kind: str  # recorded: static | move | enter | leave | cross | appear; from boxes: static | moving
    direction: str | None  # left | right | up | down; None when it does not move
    source: str  # "motion" (recorded) or "boxes"


@dataclass(frozen=True)
class Occlusion:
    index: int
    category: str
    frames: tuple[int, ...]  # frames in which it is hidden
    by: tuple[str, ...]  # categories of the tracks covering it then, sorted


def shown_at(track: Track, t: int, min_visible: float = MIN_VISIBLE) -> bool:
    """Whether the track is shown in frame t (some of it in view and, where recorded, visible enough)."""
    if track.bboxes[t] is None:
        return False
    v = track.visible[t] if track.visible is not None else None
    return v is None or v >= min_visible


def _centre(b: tuple[float, float, float, float]) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1] + b[3] / 2


def _motion_from_boxes(clip: Clip, track: Track) -> tuple[str, str | None]:
    boxes = [b for b in track.bboxes if b is not None]
    if len(boxes) < 2:
        return "static", None
    (x0, y0), (x1, y1) = _centre(boxes[0]), _centre(boxes[-1])
    dx, dy = (x1 - x0) / clip.width, (y1 - y0) / clip.height
    if max(abs(dx), abs(dy)) < MIN_SHIFT:
        return "static", None
    if abs(dx) >= abs(dy):
        return "moving", "right" if dx > 0 else "left"
    return "moving", "down" if dy > 0 else "up"


def track_motions(clip: Clip) -> list[TrackMotion]:
    out = []
    for i, tr in enumerate(clip.tracks):
        m = tr.motion if isinstance(tr.motion, dict) else None
        if m and isinstance(m.get("kind"), str):
            d = m.get("direction")
            out.append(TrackMotion(i, tr.category, m["kind"], d if d in DIRECTIONS else None, "motion"))
        else:
            kind, d = _motion_from_boxes(clip, tr)
            out.append(TrackMotion(i, tr.category, kind, d, "boxes"))
    return out


def unique_movers(clip: Clip) -> dict[str, int]:
    """category -> the index of its only moving track (a category with two moving tracks is left out)."""
    movers = [m for m in track_motions(clip) if m.direction is not None]
    n = Counter(m.category for m in movers)
    return {m.category: m.index for m in movers if n[m.category] == 1}


def first_seen(clip: Clip, index: int, min_visible: float = MIN_VISIBLE) -> int | None:
    tr = clip.tracks[index]
    return next((t for t in range(clip.length) if shown_at(tr, t, min_visible)), None)


def appearance_order(clip: Clip, min_visible: float = MIN_VISIBLE) -> list[tuple[int, int]]:
    out = [(f, i) for i in range(len(clip.tracks)) if (f := first_seen(clip, i, min_visible)) is not None]
    return sorted(out)


def order_question(first: dict[str, int], pick: float, absent_ok: bool) -> tuple[str, list[tuple[str, str]]] | None:
    """Which appearance-order question to ask of the objects first seen at `first` (category -> frame), as
    ("neither" | "same" | "ordered", the pairs to draw it from), `pick` a uniform draw; None when the clip has no
    two objects to order. A quarter ask about two objects the clip does not have (`absent_ok`: it has two such
    candidates), the next quarter about two first seen in the same frame where there is such a pair, the rest
    about two first seen in different frames (or the same frame when no pair differs). A clip with nothing to
    order asks nothing: asked "neither" instead, such clips would make it most of the answers."""
    pairs = [(a, b) for a in sorted(first) for b in sorted(first) if a < b]
    if not pairs:
        return None
    if pick < 0.25 and absent_ok:
        return "neither", []
    same = [(a, b) for a, b in pairs if first[a] == first[b]]
    ordered = [(a, b) for a, b in pairs if first[a] != first[b]]
    return ("same", same) if (pick < 0.5 and same) or not ordered else ("ordered", ordered)


def _touches_edge(clip: Clip, b: tuple[float, float, float, float], tol: float = 1.0) -> bool:
    x, y, w, h = b
    return x <= tol or y <= tol or x + w >= clip.width - tol or y + h >= clip.height - tol


def out_of_view(clip: Clip, index: int, t: int) -> bool:
    """Track `index` is out of the frame at t: before its recorded first frame, past an edge after a `leave`
    or `cross`, or (no motion recorded) absent after a box that touched the edge."""
    tr = clip.tracks[index]
    if tr.bboxes[t] is not None:
        return False
    m = tr.motion if isinstance(tr.motion, dict) else None
    if m and isinstance(m.get("kind"), str):
        if t < int(m.get("first") or 0) or (m["kind"] in ("enter", "cross") and not any(tr.bboxes[: t + 1])):
            return True
        return m["kind"] in ("leave", "cross") and not any(tr.bboxes[t:])
    before = [b for b in tr.bboxes[:t] if b is not None]
    after = [b for b in tr.bboxes[t:] if b is not None]
    return (not before and (not after or _touches_edge(clip, after[0]))) or (
        not after and bool(before) and _touches_edge(clip, before[-1]))


def leaving(clip: Clip, min_visible: float = MIN_VISIBLE) -> list[int]:
    """Tracks shown in the first frame and out of view in the last."""
    last = clip.length - 1
    return [i for i, tr in enumerate(clip.tracks) if shown_at(tr, 0, min_visible) and out_of_view(clip, i, last)]


def appearing(clip: Clip, min_visible: float = MIN_VISIBLE) -> list[int]:
    """Tracks out of view in the first frame and shown in the last."""
    last = clip.length - 1
    return [i for i, tr in enumerate(clip.tracks) if out_of_view(clip, i, 0) and shown_at(tr, last, min_visible)]


def end_counts(clip: Clip, min_visible: float = MIN_VISIBLE, max_count: int = MAX_COUNT) -> dict[str, int]:
    """category -> tracks shown in the last frame, for categories whose every track is shown or out of view."""
    last = clip.length - 1
    shown: Counter = Counter()
    unsure: set[str] = set()
    for i, tr in enumerate(clip.tracks):
        if shown_at(tr, last, min_visible):
            shown[tr.category] += 1
        elif not out_of_view(clip, i, last):
            unsure.add(tr.category)
    cats = sorted({tr.category for tr in clip.tracks} - unsure)
    return {c: shown[c] for c in cats if shown[c] <= max_count}


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def occlusions(clip: Clip, min_visible: float = MIN_VISIBLE) -> list[Occlusion]:
    out = []
    for i, tr in enumerate(clip.tracks):
        if tr.visible is None:
            continue
        ok = [shown_at(tr, t, min_visible) for t in range(clip.length)]
        hidden = [t for t in range(clip.length) if not ok[t] and tr.visible[t] is not None
                  and any(ok[:t]) and any(ok[t + 1:])]
        if not hidden:
            continue
        by: set[str] = set()
        for t in hidden:
            ref = next(tr.bboxes[u] for u in range(t - 1, -1, -1) if ok[u])  # its box when last seen whole
            by.update(o.category for j, o in enumerate(clip.tracks)
                      if j != i and o.bboxes[t] is not None and _overlap(ref, o.bboxes[t]))
        out.append(Occlusion(i, tr.category, tuple(hidden), tuple(sorted(by))))
    return out
