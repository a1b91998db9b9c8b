"""Multi-image sets and clips in the world, end to end on tiny sizes: determinism for any worker count,
the default world untouched, the files load (pycocotools, PyAV, the one reader), recorded changes and motions
agree with the annotations, held-out pairs, resume, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kanva.cli import main
from kanva.data.sequences import load_clips, load_sets
from kanva.errors import KanvaError
from kanva.model.video import read_video
from kanva.world import generate as gen
from kanva.world.config import load_world_config
from kanva.world.generate import generate_world
from kanva.world.seeds import held_out_pairs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2

SETS = {"train": 8, "novel": 4}
CLIPS = {"train": 4, "novel": 2}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make(out: Path, workers: int = 1) -> Path:
    return generate_world(out, {"train": 2}, seed=5, cfg=load_world_config(), size=64, workers=workers,
                          progress=False, sets=SETS, clips=CLIPS)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("w") / "world")


def test_same_bytes_for_any_worker_count(world, tmp_path):
    assert _tree(world) == _tree(_make(tmp_path / "w2", workers=2))


def test_default_world_has_no_sets_or_clips(tmp_path):
    out = generate_world(tmp_path / "w", {"train": 2}, seed=5, cfg=load_world_config(), size=64, workers=1, progress=False)
    manifest = json.loads((out / "world.json").read_text())
    assert not {"sets", "clips", "set_images", "clip_frames"} & set(manifest)
    assert sorted(p.name for p in out.iterdir()) == ["annotations", "train", "world.json"]


def test_sets_load_with_pycocotools_and_the_reader(world):
    from pycocotools.coco import COCO

    data = json.loads((world / "annotations" / "sets_train.json").read_text())
    coco = COCO(str(world / "annotations" / "sets_train.json"))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(ann).sum() == ann["area"]
    col = load_sets(world, "train")
    assert len(col.sets) == SETS["train"] == len(data["sets"])
    for s in col.sets:
        assert 2 <= len(s.images) <= 4 and len({im.scene for im in s.images}) == 1
        assert all((col.coco.image_dir / im.file_name).is_file() and im.captions for im in s.images)
        assert s.kind in ("change", "same_scene") and (s.kind == "change") == bool(s.changes)


def test_recorded_changes_agree_with_the_annotations(world):
    seen = set()
    for split in SETS:
        for s in load_sets(world, split).sets:
            for ch in s.changes:
                before, after = s.images[ch["image"] - 1], s.images[ch["image"]]
                b = {o.track: o for o in before.objects}
                a = {o.track: o for o in after.objects}
                t = ch["track"]
                seen.add(ch["op"])
                if ch["op"] == "add":
                    assert t not in b and a[t].category == ch["category"] and set(b) < set(a)
                elif ch["op"] == "remove":
                    assert t in b and t not in a and set(a) < set(b)
                else:
                    assert set(a) == set(b)
                    if ch["op"] == "move":
                        dx = a[t].bbox[0] - b[t].bbox[0]
                        assert (dx > 0) == (ch["direction"] == "right") and dx != 0
                    else:
                        assert (b[t].color, a[t].color) == (ch["from"], ch["to"]) and ch["from"] != ch["to"]
    assert {"add", "remove", "move"} <= seen


def test_clips_follow_youtube_vis_and_decode(world):
    import av

    data = json.loads((world / "annotations" / "clips_train.json").read_text())
    assert {"videos", "annotations", "categories"} <= set(data)
    v = data["videos"][0]
    assert {"id", "width", "height", "length", "file_names"} <= set(v) and len(v["file_names"]) == v["length"]
    a = next(x for x in data["annotations"] if x["video_id"] == v["id"])
    assert {"video_id", "category_id", "bboxes", "areas", "segmentations", "iscrowd"} <= set(a)
    clips = load_clips(world, "train").clips
    assert len(clips) == CLIPS["train"]
    for clip in clips.values():
        assert 8 <= clip.length <= 16 and all(f.is_file() for f in clip.frames)
        with av.open(str(clip.video)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == clip.length and frames[0].shape == (64, 64, 3)
        assert all(len(t.bboxes) == len(t.areas) == clip.length for t in clip.tracks)
    # the OneVision data contract reads both forms: the mp4 and the frame folder
    clip = next(iter(clips.values()))
    assert len(read_video(clip.video, 8).frames) == len(read_video(clip.frames[0].parent, 8).frames) == 8


def test_motions_agree_with_the_boxes(world):
    kinds = set()
    for split in CLIPS:
        for clip in load_clips(world, split).clips.values():
            movers = [t for t in clip.tracks if t.motion["kind"] != "static"]
            assert movers
            for t in movers:
                m = t.motion
                kinds.add(m["kind"])
                assert all(b is None for b in t.bboxes[: m["first"]])
                if m["kind"] in ("enter", "cross"):
                    assert t.bboxes[0] is None  # starts just past the edge
                if m["kind"] in ("leave", "cross"):
                    assert t.bboxes[-1] is None  # ends just past the other edge
                if m["kind"] in ("move", "appear"):
                    xs = [b[0] + b[2] / 2 for b in t.bboxes if b is not None and b[2] > 0]
                    # visible-pixel boxes wobble under occlusion; the ends are unoccluded often enough
                    assert (t.visible[-1] or 0) < 0.7 or (xs[-1] > xs[0]) == (m["direction"] == "right")
            for t in clip.tracks:
                if t.motion["kind"] == "static":
                    assert t.bboxes[0] is not None or t.visible[0] == 0
    assert len(kinds) >= 2


def test_held_out_pairs_only_in_novel_sets_and_clips(world):
    pairs = [frozenset(p) for p in held_out_pairs(load_world_config(), 5)]

    def cats_of_sets(split):
        return [{o.category for im in s.images for o in im.objects} for s in load_sets(world, split).sets]

    def cats_of_clips(split):
        return [{t.category for t in c.tracks} for c in load_clips(world, split).clips.values()]

    for cats in cats_of_sets("train") + cats_of_clips("train"):
        assert not any(p <= cats for p in pairs)
    for cats in cats_of_sets("novel") + cats_of_clips("novel"):
        assert sum(p <= cats for p in pairs) >= 1


def test_resume_after_interruption_matches_a_clean_run(world, tmp_path, monkeypatch):
    real = gen._render_one
    calls = {"n": 0}

    def dies(job, renderer, task):
        calls["n"] += 1
        if task[0] == "clips" and task[2] == 2:
            raise KeyboardInterrupt
        return real(job, renderer, task)

    monkeypatch.setattr(gen, "_render_one", dies)
    out = tmp_path / "w"
    with pytest.raises(KeyboardInterrupt):
        _make(out)
    assert len((out / ".progress" / "clips_train.jsonl").read_text().splitlines()) == 2
    monkeypatch.setattr(gen, "_render_one", real)
    with pytest.raises(KanvaError, match="clips differs"):
        generate_world(out, {"train": 2}, seed=5, cfg=load_world_config(), size=64, workers=1, progress=False,
                       sets=SETS, clips={"train": 5, "novel": 2}, resume=True)
    generate_world(out, {"train": 2}, seed=5, cfg=load_world_config(), size=64, workers=1, progress=False,
                   sets=SETS, clips=CLIPS, resume=True)
    assert _tree(out) == _tree(world)


def test_bad_input(tmp_path, capsys):
    base = ["world", "generate", "--seed", "1", "--size", "64"]
    assert main([*base, "--out", str(tmp_path / "a"), "--sets", "train"]) == 2
    assert "--sets: expected SPLIT=N" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--clips", "holdout=3"]) == 2
    assert "--clips: unknown split" in capsys.readouterr().err
    assert main(["world", "generate", "--seed", "1", "--size", "65", "--out", str(tmp_path / "c"), "--clips", "train=1"]) == 2
    assert "even side" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "d"), "--sets", "train=1"]) == 0  # sets alone are a world
    assert not any((tmp_path / x).exists() for x in "abc")


def test_reader_names_the_broken_field(world, tmp_path):
    import shutil

    w = tmp_path / "w"
    shutil.copytree(world / "annotations", w / "annotations")
    path = w / "annotations" / "clips_train.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["bboxes"] = data["annotations"][1]["bboxes"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(KanvaError, match=r"clips_train.json: annotations\[1\].bboxes must be a list with one entry per frame"):
        load_clips(w, "train")
    path = w / "annotations" / "sets_train.json"
    data = json.loads(path.read_text())
    data["sets"][0]["image_ids"] = [123]
    path.write_text(json.dumps(data))
    with pytest.raises(KanvaError, match=r"sets\[0\].image_ids \[123\] are not in 'images'"):
        load_sets(w, "train")


def test_a_clip_without_a_mover_draws_a_new_plan(monkeypatch):
    """A plan where no mover fits is drawn again from the same generator (same clip every time); only a scene
    where none ever fits is an error."""
    import numpy as np

    from kanva.world import clips
    from kanva.world.render import WorldRenderer

    renderer = WorldRenderer(load_world_config(), 64)
    real = clips.allowed
    calls = {"n": 0}

    def none_at_first(*args, **kwargs):  # the first two plans find every category present or held out
        calls["n"] += 1
        return {} if calls["n"] <= 2 else real(*args, **kwargs)

    monkeypatch.setattr(clips, "allowed", none_at_first)
    first = clips.plan_clip(renderer, np.random.default_rng(3), set(), None)
    assert first[1] and calls["n"] >= 3, "a mover, after two plans without one"
    calls["n"] = 0
    again = clips.plan_clip(renderer, np.random.default_rng(3), set(), None)
    assert [(o.category, m, xs) for o, m, xs in again[1]] == [(o.category, m, xs) for o, m, xs in first[1]]
    plain = clips.plan_clip(renderer, np.random.default_rng(3), set(), None)  # calls["n"] > 2: no failures
    assert plain[0].scene is not None
    monkeypatch.setattr(clips, "allowed", lambda *a, **k: {})
    with pytest.raises(KanvaError, match="no moving object in 20 plans"):
        clips.plan_clip(renderer, np.random.default_rng(3), set(), None)
