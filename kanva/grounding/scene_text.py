"""Scene text: an image written as the words its image tokens stand for, for a text-only reading stage.

The word-grounded projector (projector.py) makes each image token "the embedding of what this patch
shows": " background", " umbrella", or the sum for a patch with several labels (" purple" + " umbrella").
A 135M LM learns a question over the same words written as text within a few dozen steps (measured:
docs/experiments/2026-11-25-grounding.md), with exact labels and no vision compute, and since an image token is its
word's embedding, what it learns carries over to the images.

So a LLaVA sample about an image becomes a text-only sample whose `<image>` is replaced by the scene text:
one cell per patch in the encoder's raster order, the cell's labels from the COCO boxes (the same targets
the vision encoder is trained on), "background" where no label applies. Cheap (no vision compute) and
exact (ground-truth labels), it teaches the LM the task; an optional image stage after it can adapt the
LM to the encoder's real tokens (the `smol` quickstart measured it as harmful at 29 steps, and has none).

For a OneVision model (layout.py) a sample may hold several images (the world's sets) and a video (its clips):
each `<image>` and `<video>` is written as the tokens transformers makes of it, newline words included.
"""

from __future__ import annotations

import copy
from pathlib import Path

from kanva.data.coco import CocoSet, load_coco
from kanva.data.llava import IMAGE_TOKEN, VIDEO_TOKEN, sample_images
from kanva.data.sequences import ClipSet
from kanva.errors import KanvaError
from kanva.grounding.frames import frame_blocks, pooled_side
from kanva.grounding.labels import PatchLabelSpace
from kanva.grounding.layout import OnevisionLayout
from kanva.grounding.targets import patch_targets
from kanva.model.video import sample_indices

# Within a cell: colour first, then the object, its side, how many of it, then printed words
# ("purple umbrella left two TAXI").
_KIND_ORDER = {"color": 0, "category": 1, "side": 2, "count": 3, "text": 4}


def scene_cells(coco: CocoSet, space: PatchLabelSpace, image_size: int, patch: int) -> dict[str, list[str]]:
    """file_name -> the words of each cell, in raster order (as `space` lays them out: labels.py)."""
    targets = patch_targets(coco, space, image_size, patch)
    order = sorted(range(len(space)), key=lambda i: (_KIND_ORDER[space.kinds[i]], i))
    out = {}
    for im in coco.images.values():
        cells = []
        for row in targets[im.id]:
            words = [space.reads[i] for i in order if row[i]]
            cells.append(" ".join(words) if words else space.background)
        out[im.file_name] = cells
    return out


def scene_texts(coco_root: str | Path, split: str, space: PatchLabelSpace, image_size: int,
                patch: int) -> dict[str, str]:
    """file_name -> scene text for every image of the split."""
    cells = scene_cells(load_coco(coco_root, split, captions=False), space, image_size, patch)
    return {name: " ".join(c) for name, c in cells.items()}


def clip_cells(clips: ClipSet, space: PatchLabelSpace, grid: int) -> dict[str, list[list[str]]]:
    """Video name (the mp4's and the frame folder's) -> per frame, the pooled grid's cells (frames.py)."""
    side = pooled_side(grid)
    out = {}
    for clip in clips.clips.values():
        frames = [[space.reads[b] if b is not None else space.background
                   for b in frame_blocks(clip, t, space, side)] for t in range(clip.length)]
        for name in {clip.frames[0].parent.name, *([clip.video.name] if clip.video else [])}:
            out[name] = frames
    return out


def render_samples(samples: list[dict], texts: dict, source: str = "input", layout: OnevisionLayout | None = None,
                   videos: dict[str, list[list[str]]] | None = None) -> list[dict]:
    """Text-only copies of LLaVA samples: `<image>` replaced by the image's scene text, `image` dropped.

    With a OneVision `layout`, `texts` maps file names to their cells (scene_cells), a sample may hold several
    images and a video (`videos`: clip_cells), and each is written as the layout lays its tokens out."""
    out = []
    for s in samples:
        image = s.get("image")
        if layout is not None:
            out.append(_render_onevision(s, texts, videos or {}, layout, source))
            continue
        if image is None:  # already text-only: kept as it is
            out.append(s)
            continue
        if not isinstance(image, str):
            raise KanvaError(f"{source}: sample {s.get('id')!r} has {len(image)} images; scene text takes one")
        name = Path(image).name
        if name not in texts:
            raise KanvaError(f"{source}: sample {s.get('id')!r}: image {image!r} is not in the annotations")
        r = copy.deepcopy(s)
        r.pop("image")
        r["id"] = f"{s['id']}#text"
        first = r["conversations"][0]
        if "<image>" not in first["value"]:
            raise KanvaError(f"{source}: sample {s.get('id')!r}: the first turn has no <image>")
        first["value"] = first["value"].replace("<image>", texts[name], 1)
        out.append(r)
    return out


def _render_onevision(s: dict, cells: dict[str, list[str]], videos: dict[str, list[list[str]]],
                      layout: OnevisionLayout, source: str) -> dict:
    images = sample_images(s)
    video = s.get("video")
    if not images and video is None:
        return s
    parts = []
    for image in images:
        name = Path(image).name
        if name not in cells:
            raise KanvaError(f"{source}: sample {s.get('id')!r}: image {image!r} is not in the annotations")
        parts.append(" ".join(layout.single(cells[name]) if len(images) == 1 else layout.multi(cells[name])))
    r = copy.deepcopy(s)
    r.pop("image", None)
    r.pop("video", None)
    r["id"] = f"{s['id']}#text"
    if video is not None:
        name = Path(video).name
        if name not in videos:
            raise KanvaError(f"{source}: sample {s.get('id')!r}: video {video!r} is not in the clip annotations")
        frames = videos[name]
        vtext = " ".join(layout.video(sampled_frames(frames, layout)))
    for turn in r["conversations"]:
        while IMAGE_TOKEN in turn["value"] and parts:
            turn["value"] = turn["value"].replace(IMAGE_TOKEN, parts.pop(0), 1)
        if video is not None and VIDEO_TOKEN in turn["value"]:
            turn["value"] = turn["value"].replace(VIDEO_TOKEN, vtext, 1)
            video = None
    if parts or video is not None or any(IMAGE_TOKEN in t["value"] for t in r["conversations"]):
        raise KanvaError(f"{source}: sample {s.get('id')!r}: its turns do not hold one {IMAGE_TOKEN} per image "
                         f"({len(images)}) and one {VIDEO_TOKEN} per video")
    return r


def sampled_frames(frames: list[list[str]], layout: OnevisionLayout) -> list[list[str]]:
    """The frames the model's processor samples from a clip (kanva/model/video.py: evenly, first and last)."""
    return [frames[i] for i in sample_indices(len(frames), layout.max_frames)]


def write_scene_text(input_path: str | Path, coco_root: str | Path, split: str, model_dir: str | Path,
                     out: str | Path) -> int:
    """`kanva grounding scene-text`: the input's samples as text-only copies, written to `out`; returns how many.
    For a OneVision model the split's sets and clips (when the world has them) are read too."""
    from kanva.data.llava import load_llava, save_llava
    from kanva.data.sequences import load_clips, load_sets
    from kanva.grounding.labels import load_label_space, read_label_file

    space, size, patch = load_label_space(model_dir)
    layout = OnevisionLayout.of(model_dir, read_label_file(model_dir))
    samples = load_llava(input_path)
    if layout is None:
        rendered = render_samples(samples, scene_texts(coco_root, split, space, size, patch), source=str(input_path))
    else:
        ann = Path(coco_root) / "annotations"
        cells = scene_cells(load_coco(coco_root, split, captions=False), space, size, patch)
        if (ann / f"sets_{split}.json").is_file():
            cells.update(scene_cells(load_sets(coco_root, split, captions=False).coco, space, size, patch))
        videos = {}
        if any(s.get("video") is not None for s in samples):
            videos = clip_cells(load_clips(coco_root, split), space, size // patch)
        rendered = render_samples(samples, cells, str(input_path), layout, videos)
    save_llava(rendered, out, source=str(input_path))
    return len(rendered)
