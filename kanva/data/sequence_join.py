"""Sets and clips as the things seeds and evolution are about, and the join of LLaVA samples back to them.

Each set or clip gets one record (an `ImageRec` with grounding "set" or "clip"): the union of its images'
objects, captions and printed words, or one object per clip track (its first box; visible as its best frame).
That is what elimination checks a unit against (an object named by a set question must be in some image of
the set, or named on purpose as absent) and what absent-object distractors are drawn outside of; the facts a
question asks about come from the set or clip itself (kanva/data/sequence_facts.py). The records make a
`CocoSet` whose statistics (categories by how many sets or clips show them, co-occurrence) serve as the
single-image ones do.

Samples carry their media as LLaVA-OneVision data does, relative to the folder the world writes them in:
a set's `"image": [file names...]` (relative to `DIR/sets/{split}/`) with one `<image>` per image, a clip's
`"video": "<id>.mp4"` (relative to `DIR/clips/{split}/`; a clip with no mp4: its frame folder) with one
`<video>`. A sample joins to its set by the base names of all its images, in order, or to its clip by the
video's base name.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from kanva.data.coco import CocoSet, ImageRec, Obj, Text, index_records
from kanva.data.exclude import image_key
from kanva.data.join import SeedItem
from kanva.data.llava import sample_images
from kanva.data.sequences import Clip, ImageSet, load_clips, load_sets
from kanva.data.unit import Unit, mc_letter, parse_human
from kanva.data.vocab import mentions
from kanva.errors import KanvaError

KINDS = ("set", "clip")
MEDIA = {"set": "images", "clip": "video"}  # Unit.media of each kind


@dataclass
class Sequences:
    """The sets or clips of one split: their records (`coco`, ids = set or clip ids) and the sets or clips."""

    kind: str
    coco: CocoSet
    items: dict[int, ImageSet | Clip]
    folder: Path  # the folder sample paths are relative to
    by_media: dict[str, int]  # media key (see media_key) -> id

    def path(self, item_id: int) -> str | list[str]:
        """What a sample about this set or clip has in `image` (a list) or `video`."""
        return sample_path(self.items[item_id], self.folder)

    def lookup(self, sample: dict) -> ImageRec | None:
        key = media_key(sample)
        iid = self.by_media.get(key) if key is not None else None
        return None if iid is None else self.coco.images[iid]


def media_key(sample: dict) -> str | None:
    """The join key of a sample: its images' base names in order ('|'-joined), or its video's base name."""
    video = sample.get("video")
    if isinstance(video, str):
        return image_key(video.rstrip("/"))
    images = sample_images(sample)
    return "|".join(image_key(p) for p in images) if images else None


def sample_path(item: ImageSet | Clip, folder: Path) -> str | list[str]:
    """A set's image file names, or a clip's video (its frame folder when it has no video) relative to `folder`."""
    if isinstance(item, ImageSet):
        return [rec.file_name for rec in item.images]
    target = item.video if item.video is not None else item.frames[0].parent
    return target.relative_to(folder).as_posix()


def set_record(s: ImageSet) -> ImageRec:
    first = s.images[0]
    texts: dict[str, Text] = {}
    for rec in s.images:
        for t in rec.texts:
            texts.setdefault(t.text, t)
    return ImageRec(s.id, first.file_name, first.width, first.height,
                    objects=[o for rec in s.images for o in rec.objects],
                    captions=[c for rec in s.images for c in rec.captions], texts=list(texts.values()),
                    scene=s.scene, grounding="set")


def clip_record(clip: Clip, name: str) -> ImageRec:
    objs = []
    for i, tr in enumerate(clip.tracks):
        shown = [t for t, b in enumerate(tr.bboxes) if b is not None]
        if not shown:
            continue
        vis = [v for v in (tr.visible or []) if v is not None]
        objs.append(Obj(tr.category, tr.bboxes[shown[0]], tr.areas[shown[0]] or 0.0, tr.color,
                        max(vis) if vis else None, False, i))
    return ImageRec(clip.id, name, clip.width, clip.height, objects=objs, scene=clip.scene, grounding="clip")


def load_sequences(world: str | Path, split: str, kind: str) -> Sequences:
    """The sets (`kind` "set") or clips ("clip") of `world`'s `split` with their records."""
    world = Path(world)
    if kind == "set":
        sc = load_sets(world, split)
        items: dict[int, ImageSet | Clip] = {s.id: s for s in sc.sets}
        folder, categories = sc.coco.image_dir, sc.coco.categories
        recs = {s.id: set_record(s) for s in sc.sets}
    elif kind == "clip":
        cs = load_clips(world, split)
        items, folder, categories = dict(cs.clips), cs.root / "clips" / split, cs.categories
        recs = {cid: clip_record(c, posixpath.basename(str(sample_path(c, folder)))) for cid, c in cs.clips.items()}
    else:
        raise KanvaError(f"--kind {kind!r}: choose image, set or clip")
    ipath = world / "annotations" / f"{kind}s_{split}.json"
    by_media = {}
    for iid in sorted(items):
        path = sample_path(items[iid], folder)
        by_media[media_key({"image": path} if kind == "set" else {"video": path})] = iid
    return Sequences(kind, index_records(world, split, recs, categories, ipath), items, folder, by_media)


def sequence_units(sample: dict, rec: ImageRec, media: str) -> list[Unit]:
    """Each (human, gpt) turn pair of a set or clip sample as a seed unit (a lineage head)."""
    conv = sample["conversations"]
    image = sample["video"] if media == "video" else sample_images(sample)
    units = []
    for t in range(0, len(conv) - 1, 2):
        answer = conv[t + 1]["value"].strip()
        question, fmt, options = parse_human(conv[t]["value"], answer)
        answer = mc_letter(answer, options) if fmt == "mc" else answer
        found = [m.category for part in (question, answer) for m in mentions(part) if not m.negated]
        objects = [c for c in dict.fromkeys(found) if c in rec.counts]
        uid = f"{sample['id']}#{t // 2}"
        units.append(Unit(uid, image, rec.id, question, answer, fmt, options, lineage=uid, objects=objects,
                          media=media))
    return units


def join_sequences(samples: list[dict], seqs: Sequences, source: str, exclude: set[str]) -> list[SeedItem]:
    """One SeedItem per sample, in input order: `seed` when it joins to a set or clip of `seqs`, `excluded` when
    one of its images or its video is excluded, `passthrough` (kept as is) when it is not of this kind (one
    image, or text only; a video for sets, images for clips). A sample of this kind that joins to nothing is an
    error naming it."""
    media = MEDIA[seqs.kind]
    items = []
    for i, s in enumerate(samples):
        video = s.get("video") if isinstance(s.get("video"), str) else None
        images = sample_images(s)
        if any(image_key(p.rstrip("/")) in exclude for p in images + ([video] if video else [])):
            items.append(SeedItem(i, s, "excluded"))
            continue
        if (seqs.kind == "clip" and video is None) or (seqs.kind == "set" and (video is not None or len(images) < 2)):
            items.append(SeedItem(i, s, "passthrough"))
            continue
        rec = seqs.lookup(s)
        if rec is None:
            what = "video" if seqs.kind == "clip" else "images"
            raise KanvaError(f"{source}: sample {s['id']!r}: its {what} ({media_key(s)}) match no {seqs.kind} of "
                             f"{seqs.coco.root}/annotations/{seqs.kind}s_{seqs.coco.split}.json")
        items.append(SeedItem(i, s, "seed", rec, sequence_units(s, rec, media)))
    return items
