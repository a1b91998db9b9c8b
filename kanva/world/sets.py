"""Multi-image sets: 2-4 images of one scene (one background, one sign), either re-arranged or changed in
one recorded way from each image to the next.

A set starts from an ordinary planned image (`Planner.plan`, so the novel split's held-out pair is in its
first image). Then, per `kind`:
- `change`: each next image is the previous one with one change, recorded in `changes`: an object `add`ed,
  `remove`d, `move`d sideways along its row, or `recolor`ed (a colour-varied category to another palette colour);
- `same_scene`: each next image is a fresh arrangement of objects over the same background.
Objects keep a `track` number across the set's images (the same object in two images has the same track).
Every image obeys the single-image rules (each object >= min_visible, no printed word covered), and no two
categories of a held-out pair appear anywhere in one set outside the novel split.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kanva.errors import KanvaError
from kanva.world.layout import Pair, PlacedObject, Plan, paint_ids, visibilities, _covers_text
from kanva.world.render import WorldRenderer

SET_IMAGES = (2, 4)  # images per set, inclusive
CHANGE_PROB = 0.6  # share of sets of kind `change` (the rest are `same_scene`)
CHANGE_OPS = ("add", "remove", "move", "recolor")
MIN_SHIFT = 0.2  # a move shifts an object by at least this fraction of the image side


def allowed(priors: dict[str, float], present: set[str], forbidden: set[Pair]) -> dict[str, float]:
    """The priors without categories that would complete a forbidden pair with one already in the set."""
    return {c: w for c, w in priors.items() if not any(frozenset((c, d)) in forbidden for d in present if d != c)}


def _replan(plan: Plan, objects: list[PlacedObject], size: int) -> Plan:
    objects = sorted(objects, key=lambda o: o.depth_key)
    idmap = paint_ids(objects, size)
    return dataclasses.replace(plan, objects=objects, idmap=idmap, visible=visibilities(objects, idmap))


def _fits(plan: Plan, min_visible: float) -> bool:
    return not plan.objects or (min(plan.visible) >= min_visible and not _covers_text(plan.objects, plan.idmap, plan.sign))


class SetMaker:
    """Plans the images of one set from its seed with a WorldRenderer's planner."""

    def __init__(self, renderer: WorldRenderer):
        self.r = renderer
        self.cfg = renderer.cfg
        self.size = renderer.size

    def _add(self, rng, plan: Plan, priors: dict, next_track: int):
        counts = {}
        for o in plan.objects:
            counts[o.category] = counts.get(o.category, 0) + 1
        names = [c for c in priors if counts.get(c, 0) < self.cfg.max_instances]
        if not names or len(plan.objects) >= self.cfg.max_objects:
            return None
        w = np.array([priors[c] for c in names], np.float64)
        category = names[int(rng.choice(len(names), p=w / w.sum()))]
        placed = self.r.planner._try_place(rng, plan.background, plan.objects, category, plan.sign)
        if placed is None:
            return None
        new = next(o for o in placed[0] if all(o is not p for p in plan.objects))
        new.order = next_track
        return _replan(plan, placed[0], self.size), {"op": "add", "category": category, "track": next_track, "color": new.color}

    def _remove(self, rng, plan: Plan):
        if len(plan.objects) < 2:
            return None
        i = int(rng.integers(len(plan.objects)))
        o = plan.objects[i]
        return _replan(plan, plan.objects[:i] + plan.objects[i + 1 :], self.size), {
            "op": "remove", "category": o.category, "track": o.order, "color": o.color}

    def _move(self, rng, plan: Plan):
        i = int(rng.integers(len(plan.objects)))
        o = plan.objects[i]
        w = o.glyph.shape[1]
        for _ in range(self.cfg.placement_tries):
            x = int(rng.integers(0, self.size - w + 1))
            if abs(x - o.x) < MIN_SHIFT * self.size:
                continue
            moved = dataclasses.replace(o, x=x)
            new = _replan(plan, [*plan.objects[:i], moved, *plan.objects[i + 1 :]], self.size)
            if _fits(new, self.cfg.min_visible):
                return new, {"op": "move", "category": o.category, "track": o.order, "color": o.color,
                             "direction": "right" if x > o.x else "left"}
        return None

    def _recolor(self, rng, plan: Plan):
        idx = [i for i, o in enumerate(plan.objects) if o.color is not None]
        palette = list(self.cfg.palette)
        if not idx or len(palette) < 2:
            return None
        i = idx[int(rng.integers(len(idx)))]
        o = plan.objects[i]
        others = [c for c in palette if c != o.color]
        color = others[int(rng.integers(len(others)))]
        glyph = self.r.glyphs.get(o.category, o.px, color, o.flip)
        new = _replan(plan, [*plan.objects[:i], dataclasses.replace(o, color=color, glyph=glyph), *plan.objects[i + 1 :]], self.size)
        if not _fits(new, self.cfg.min_visible):
            return None
        return new, {"op": "recolor", "category": o.category, "track": o.order, "from": o.color, "to": color}

    def _rearrange(self, rng, plan: Plan, priors: dict, forbidden: set[Pair], next_track: int):
        target = int(rng.integers(self.cfg.min_objects, self.cfg.max_objects + 1))
        objects, _ = self.r.planner._place_all(rng, plan.scene, plan.background, priors, target, None, forbidden, plan.sign)
        if not objects:
            raise KanvaError(f"a same-scene set image in a {plan.scene} scene placed no object; lower size_range")
        for k, o in enumerate(sorted(objects, key=lambda o: o.order)):
            o.order = next_track + k
        return _replan(plan, objects, self.size)

    def plans(self, rng: np.random.Generator, forbidden: set[Pair], pair: tuple[str, str] | None) -> tuple[list[Plan], str, list[dict]]:
        """The set's plans in order, its kind and its changes (each with the index `image` it leads to)."""
        first = self.r.planner.plan(rng, forbidden, pair)
        for k, o in enumerate(sorted(first.objects, key=lambda o: o.order)):
            o.order = k
        plans = [first]
        n = int(rng.integers(SET_IMAGES[0], SET_IMAGES[1] + 1))
        kind = "change" if rng.random() < CHANGE_PROB else "same_scene"
        present = {o.category for o in first.objects}
        next_track = len(first.objects)
        changes: list[dict] = []
        scene_priors = self.cfg.scene_priors(first.scene)
        for k in range(1, n):
            priors = allowed(scene_priors, present, forbidden)
            prev = plans[-1]
            if kind == "same_scene":
                new = self._rearrange(rng, prev, priors, forbidden, next_track)
            else:
                done = None
                for op in rng.permutation(len(CHANGE_OPS)):
                    name = CHANGE_OPS[int(op)]
                    if name == "add":
                        done = self._add(rng, prev, priors, next_track)
                    else:
                        done = getattr(self, f"_{name}")(rng, prev)
                    if done is not None:
                        break
                if done is None and k > 1:  # no change fits any more (a crowded image): the set ends here
                    break
                if done is None:  # not even a first change fits: the set becomes a same-scene set
                    kind = "same_scene"
                    new = self._rearrange(rng, prev, priors, forbidden, next_track)
                else:
                    new, change = done
                    changes.append({"image": k, **change})
            next_track = max(next_track, *(o.order + 1 for o in new.objects))
            present |= {o.category for o in new.objects}
            plans.append(new)
        return plans, kind, changes


def render_set(renderer: WorldRenderer, seed: int, forbidden: set[Pair], novel_pairs: list[tuple[str, str]] | None):
    """Pixels of the set's images and its record: `kind`, `changes` and one image record per image (the
    single-image record of `WorldRenderer.record`, objects with `track`)."""
    rng = np.random.default_rng(seed)
    pair = None
    if novel_pairs:
        pair = novel_pairs[int(rng.integers(len(novel_pairs)))]
        forbidden = forbidden - {frozenset(pair)}
    plans, kind, changes = SetMaker(renderer).plans(rng, forbidden, pair)
    pixels, images = [], []
    for plan in plans:
        pixels.append(renderer.paint(plan))
        rec = renderer.record(plan, seed, rng)
        for entry, o in zip(rec["objects"], plan.objects):
            entry["track"] = o.order
        images.append(rec)
    return pixels, {"seed": seed, "scene": plans[0].scene, "kind": kind, "changes": changes, "images": images}
