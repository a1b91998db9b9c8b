"""Join a LLaVA file to COCO annotations by image, drop excluded images, split into question-answer units.

Each (human, gpt) turn pair of a one-image sample becomes a seed unit (a lineage head for evolution) with the
present objects it mentions as its focus. Every input sample ends up in exactly one state, recorded in
provenance: `seed` (evolved), `passthrough` (kept as is: no image or several images), `excluded` (an image of
an evaluation set). A sample whose image is in no annotation file is still a seed: its image is grounded by
the categories its answers name, or not at all (kanva/data/image_sources.py), and the operators that need
more than that leave it alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kanva.data.coco import CocoSet, ImageRec
from kanva.data.exclude import image_key
from kanva.data.image_sources import Lexicon, ungrounded_rec
from kanva.data.llava import sample_images
from kanva.data.rng import derive
from kanva.data.unit import Unit, mc_letter, parse_human
from kanva.data.vocab import mentions
from kanva.errors import KanvaError


@dataclass
class SeedItem:
    index: int  # position in the input file (output keeps input order)
    sample: dict
    status: str  # "seed" | "passthrough" | "excluded"
    rec: ImageRec | None = None
    units: list[Unit] = field(default_factory=list)

    @property
    def shard_key(self) -> str:
        """What decides the shard: the image (so all samples of an image land in one shard), else the id."""
        return self.rec.key if self.rec is not None else f"sample:{self.sample['id']}"


def seed_units(sample: dict, rec: ImageRec) -> list[Unit]:
    conv = sample["conversations"]
    units = []
    image = sample_images(sample)[0]
    for t in range(0, len(conv) - 1, 2):
        answer = conv[t + 1]["value"].strip()
        question, fmt, options = parse_human(conv[t]["value"], answer)
        answer = mc_letter(answer, options) if fmt == "mc" else answer
        found = [m.category for part in (question, answer) for m in mentions(part) if not m.negated]
        objects = [c for c in dict.fromkeys(found) if c in rec.counts or c in rec.named]
        uid = f"{sample['id']}#{t // 2}"
        units.append(Unit(uid, image, rec.id, question, answer, fmt, options, lineage=uid, objects=objects))
    return units


def join(samples: list[dict], coco: CocoSet | None, source: str, exclude: set[str],
         lexicon: Lexicon | None = None) -> list[SeedItem]:
    """One SeedItem per sample, in input order. Images in no annotation file get a record from their samples'
    answers (matched against `lexicon`), one per image base name."""
    items: list[SeedItem | None] = []
    unannotated: dict[str, list[int]] = {}  # image key -> positions in `items` waiting for a record
    for i, s in enumerate(samples):
        images = sample_images(s)
        if any(image_key(p) in exclude for p in images):
            items.append(SeedItem(i, s, "excluded"))
            continue
        if len(images) != 1:
            items.append(SeedItem(i, s, "passthrough"))
            continue
        rec = coco.lookup(images[0]) if coco is not None else None
        if rec is None:
            unannotated.setdefault(image_key(images[0]), []).append(i)
            items.append(None)
            continue
        items.append(SeedItem(i, s, "seed", rec, seed_units(s, rec)))
    for key, positions in unannotated.items():
        rec = ungrounded_rec(key, [samples[i] for i in positions], lexicon)
        for i in positions:
            items[i] = SeedItem(i, samples[i], "seed", rec, seed_units(samples[i], rec))
    return items  # type: ignore[return-value]  # every None was filled above


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Deterministic partition by key (not by position), so adding shards never moves an image twice."""
    i, n = shard
    return n == 1 or derive("shard", key) % n == i


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' with 0 <= i < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise KanvaError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise KanvaError(f"--shard {text!r}: the index must be in 0..N-1 (shards are numbered from 0)")
    return i, n
