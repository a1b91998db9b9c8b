"""Spatial facts that hold clearly enough to ask about: image regions, pairwise relations, extreme objects.

Every test has a margin, because a question whose answer flips with a few pixels teaches noise: objects in
relation must not overlap much along the axis in question, and a region is named only when the object's centre
is not near a region border.
"""

from __future__ import annotations

from kanva.data.coco import ImageRec, Obj

# Row-major 3x3 grid of region names.
REGIONS = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)
ALL_REGIONS = tuple(r for row in REGIONS for r in row)
RELATIONS = {  # relation -> its opposite
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}
_BORDER_MARGIN = 0.04  # of the image size
_OVERLAP_TOL = 0.1  # of the smaller object's size


def _third(v: float, size: float) -> int | None:
    t = v / size
    for edge in (1 / 3, 2 / 3):
        if abs(t - edge) < _BORDER_MARGIN:
            return None
    return 0 if t < 1 / 3 else (1 if t < 2 / 3 else 2)


def region(o: Obj, rec: ImageRec) -> str | None:
    """The 3x3 region holding the object's centre, or None when the centre is near a border."""
    cx, cy = o.center
    col, row = _third(cx, rec.width), _third(cy, rec.height)
    if col is None or row is None:
        return None
    return REGIONS[row][col]


def region_phrase(name: str) -> str:
    return "the center of the image" if name == "center" else f"the {name} part of the image"


def relations(a: Obj, b: Obj) -> list[str]:
    """Relations of a to b that clearly hold (boxes separated along that axis, up to a small overlap)."""
    ax, ay, aw, ah = a.bbox
    bx, by, bw, bh = b.bbox
    out = []
    tol_x = _OVERLAP_TOL * min(aw, bw)
    tol_y = _OVERLAP_TOL * min(ah, bh)
    if ax + aw <= bx + tol_x:
        out.append("to the left of")
    elif bx + bw <= ax + tol_x:
        out.append("to the right of")
    if ay + ah <= by + tol_y:
        out.append("above")
    elif by + bh <= ay + tol_y:
        out.append("below")
    return out


def extremes(rec: ImageRec, min_visible: float) -> dict[str, Obj]:
    """'far left'/'far right'/'top'/'bottom' -> the one object clearly beyond all others on that side.

    "Clearly": its box ends before the centre of every other object along that axis. Only images with at
    least two objects have extremes; crowd regions never count as "the object".
    """
    objs = rec.objects
    if len(objs) < 2:
        return {}
    out: dict[str, Obj] = {}
    for side in ("far left", "far right", "top", "bottom"):
        for o in objs:
            if not o.usable(min_visible):
                continue
            x, y, w, h = o.bbox
            ok = True
            for p in objs:
                if p is o:
                    continue
                px, py = p.center
                if side == "far left":
                    ok = x + w <= px
                elif side == "far right":
                    ok = x >= px
                elif side == "top":
                    ok = y + h <= py
                else:
                    ok = y >= py
                if not ok:
                    break
            if ok:
                out[side] = o
                break
    return out


def extreme_phrase(side: str) -> str:
    return {"far left": "the object on the far left", "far right": "the object on the far right",
            "top": "the object at the top", "bottom": "the object at the bottom"}[side]


def norm_box(o_bbox: tuple[float, float, float, float], rec: ImageRec) -> tuple[float, float, float, float]:
    """[x1, y1, x2, y2] in 0..1, rounded to 3 decimals: the box format shown to LLMs (and checked back)."""
    x, y, w, h = o_bbox
    return (round(x / rec.width, 3), round(y / rec.height, 3), round((x + w) / rec.width, 3),
            round((y + h) / rec.height, 3))
