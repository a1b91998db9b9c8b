"""The facts of sets and clips (kanva/data/sequence_facts.py): hand-made cases whose answers are plain, then the
tiny world's sets and clips checked against their raw annotation files."""

from __future__ import annotations

import json
from pathlib import Path

from kanva.data import sequence_facts as F
from kanva.data.coco import ImageRec, Obj
from kanva.data.sequences import Clip, ImageSet, Track, load_clips, load_sets


def _rec(iid: int, objs: list[Obj], captions: tuple[str, ...] = ()) -> ImageRec:
    from collections import Counter

    from kanva.data.vocab import mentioned

    rec = ImageRec(iid, f"{iid}.jpg", 100, 100, objects=objs, captions=list(captions))
    rec.counts = dict(Counter(o.category for o in objs))
    rec.caption_mentions = frozenset(c for cap in captions for c in mentioned(cap))
    return rec


def _obj(cat: str, x: float = 10, visible: float | None = 1.0, track: int | None = None) -> Obj:
    return Obj(cat, (x, 10, 10, 10), 100, visible=visible, track=track)


def test_set_facts_follow_the_visibility_rule():
    s = ImageSet(1, [
        _rec(10, [_obj("dog", track=0), _obj("cat", visible=0.2, track=1)]),
        _rec(11, [_obj("dog", track=0), _obj("dog", 50, track=2)], captions=("A bird flies over two dogs.",)),
        _rec(12, [_obj("horse", track=3)]),
    ], kind="change", changes=[{"image": 1, "op": "add", "category": "dog", "track": 2, "color": None},
                               {"image": 2, "op": "recolor", "category": "car", "track": 4, "from": "red",
                                "to": "blue"}])
    assert F.showing(s, "dog") == (0, 1)
    assert F.showing(s, "cat") == ()  # 20% visible: not shown (the single-image rule)
    assert F.shown_categories(s) == ["dog", "horse"]
    dog = F.set_counts(s, "dog")
    assert dog.per_image == (1, 2, 0) and dog.total == 3 and dog.tracks == 2  # track 0 is in two images
    cat = F.set_counts(s, "cat")
    assert cat.per_image == (None, 0, 0) and cat.total is None
    assert F.difference(s, 2, 0) == ["horse"]
    assert F.difference(s, 0, 2) == ["dog"]
    assert F.difference(s, 2, 1) == ["horse"]
    assert "bird" in F.mentioned_in(s, 1) and "cat" in F.mentioned_in(s, 0)
    ch = F.changes(s)
    assert ch[0] == F.Change(1, "add", "dog", 2, None, None, None, None)
    assert (ch[1].before, ch[1].after) == ("red", "blue")


def _track(cat, xs, visible=None, motion=None, y=40):
    boxes = [None if x is None else (float(x), float(y), 10.0, 10.0) for x in xs]
    return Track(cat, boxes, [None if b is None else 100.0 for b in boxes], motion=motion, visible=visible)


def _clip(tracks) -> Clip:
    n = len(tracks[0].bboxes)
    return Clip(7, 100, 100, [Path(f"{t:05d}.jpg") for t in range(n)], tracks=tracks)


def test_clip_facts_from_boxes_without_motion_records():
    clip = _clip([
        _track("dog", [10, 20, 30, 50, 70, 90]),  # moves right, still touching the edge at the end
        _track("cup", [45, 45, 45, 45, 45, 45]),  # static
        _track("cat", [None, None, 0, 20, 40, 60]),  # enters from the left
        _track("bus", [78, 92, None, None, None, None]),  # leaves on the right
        _track("kite", [40] * 6),
    ])
    clip.tracks[4].bboxes = [(40.0, 60 - 10.0 * t, 10.0, 10.0) for t in range(6)]  # goes up
    m = {x.category: x for x in F.track_motions(clip)}
    assert [m[c].direction for c in ("dog", "cup", "cat", "kite")] == ["right", None, "right", "up"]
    assert m["dog"].source == "boxes" and m["cup"].kind == "static"
    assert F.leaving(clip) == [3]
    assert F.appearing(clip) == [2]
    assert F.appearance_order(clip) == [(0, 0), (0, 1), (0, 3), (0, 4), (2, 2)]
    assert F.end_counts(clip) == {"bus": 0, "cat": 1, "cup": 1, "dog": 1, "kite": 1}
    assert F.occlusions(clip) == []  # no per-frame visibility recorded
    assert F.unique_movers(clip) == {"dog": 0, "cat": 2, "bus": 3, "kite": 4}


def test_clip_facts_use_the_recorded_motion_and_visibility():
    clip = _clip([
        _track("chair", [40] * 6, visible=[1.0, 0.9, 0.1, 0.0, 0.8, 1.0], motion={"kind": "static", "first": 0}),
        _track("dog", [10, 25, 40, 55, 70, 85], visible=[1.0] * 6,
               motion={"kind": "move", "direction": "right", "first": 0}),
        _track("tv", [None, None, 20, 15, 10, 5], visible=[None, None, 1.0, 1.0, 1.0, 1.0],
               motion={"kind": "appear", "direction": "left", "first": 2}),
        _track("cup", [5] * 5 + [None], visible=[1.0] * 5 + [0.0], motion={"kind": "static", "first": 0}),
    ])
    clip.tracks[0].bboxes[3] = None  # wholly hidden in frame 3, yet in the scene
    m = F.track_motions(clip)
    assert [(x.kind, x.direction, x.source) for x in m] == [("static", None, "motion"), ("move", "right", "motion"),
                                                            ("appear", "left", "motion"), ("static", None, "motion")]
    occ = F.occlusions(clip)
    assert [(o.category, o.frames) for o in occ] == [("chair", (2, 3))]
    assert occ[0].by == ("dog",)
    assert F.first_seen(clip, 2) == 2 and F.appearing(clip) == [2]
    assert F.leaving(clip) == []  # the cup is hidden at the end, not gone
    assert F.end_counts(clip) == {"chair": 1, "dog": 1, "tv": 1}  # the cup might still be there: not counted


def test_world_sets_agree_with_their_file(sequence_world):
    raw = json.loads((sequence_world / "annotations" / "sets_train.json").read_text())
    anns: dict[int, list[dict]] = {}
    for a in raw["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    names = {c["id"]: c["name"] for c in raw["categories"]}
    sets = load_sets(sequence_world, "train").sets
    assert sets and any(s.kind == "change" for s in sets)
    for s, rs in zip(sets, raw["sets"]):
        for cat in F.shown_categories(s):
            expect = tuple(k for k, iid in enumerate(rs["image_ids"]) if any(
                names[a["category_id"]] == cat and a["visible"] >= 0.3 for a in anns.get(iid, [])))
            assert F.showing(s, cat) == expect
            per = F.set_counts(s, cat).per_image
            assert per == tuple(sum(names[a["category_id"]] == cat for a in anns.get(iid, []))
                                for iid in rs["image_ids"])  # the world keeps every object >= 70% visible
        for ch in F.changes(s):
            before = {a["track"] for a in anns.get(rs["image_ids"][ch.image - 1], [])}
            after = {a["track"] for a in anns.get(rs["image_ids"][ch.image], [])}
            if ch.op == "remove":
                assert ch.track in before and ch.track not in after
            elif ch.op == "add":
                assert ch.track not in before and ch.track in after


def test_world_clips_agree_with_their_file(sequence_world):
    raw = json.loads((sequence_world / "annotations" / "clips_train.json").read_text())
    clips = load_clips(sequence_world, "train").clips
    by_video: dict[int, list[dict]] = {}
    for a in raw["annotations"]:
        by_video.setdefault(a["video_id"], []).append(a)
    kinds = set()
    for v in raw["videos"]:
        clip, anns = clips[v["id"]], by_video[v["id"]]
        for m, a in zip(F.track_motions(clip), anns):
            assert (m.kind, m.direction) == (a["motion"]["kind"], a["motion"]["direction"])
            kinds.add(m.kind)
        for i in F.leaving(clip):
            assert anns[i]["motion"]["kind"] == "leave" and anns[i]["bboxes"][-1] is None
        for i in F.appearing(clip):
            assert anns[i]["motion"]["kind"] in ("enter", "appear", "cross") and anns[i]["bboxes"][0] is None
        for cat, n in F.end_counts(clip).items():
            assert n == sum(1 for a, c in zip(anns, clip.tracks) if c.category == cat
                            and a["bboxes"][-1] is not None and a["visible"][-1] >= 0.3)
    assert kinds - {"static"}  # the fixture has movers
