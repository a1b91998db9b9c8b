"""Where each image's objects come from, so that any LLaVA mixture evolves: COCO boxes, the answers, or nothing.

A LLaVA-665K-style mixture holds COCO images (annotated), GQA / Visual Genome / OCR-VQA / TextVQA images (not
in any COCO file), text-only and multi-turn samples. Every image gets one grounding, in this order:

- `coco`: the image is in one of the COCO-format instance files given (`--coco`, one or more, merged here):
  boxes, counts and captions; every operator may run.
- `text`: otherwise, the knowledge-base categories that the answers of the image's samples name (not negated:
  "there is no dog" names no dog). Only presence is known, no boxes, counts or absence, so only operators
  that need nothing more run (a knowledge question about a named object's property, an LLM paraphrase);
  provenance marks these samples `text-grounded`.
- `none`: nothing is known; only operators that need no grounding run (none of the rule operators).

The names in the answers are trusted because the dataset's own answers are its ground truth; elimination
still checks what new units claim against them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from kanva.data.coco import CocoSet, ImageRec, coco_from_dicts, load_coco
from kanva.data.rng import derive
from kanva.data.text import words
from kanva.data.vocab import CATEGORIES, NEGATIONS, mentions, unquote
from kanva.errors import KanvaError
from kanva.jsonfile import read_json
from kanva.words import plural

GROUNDINGS = ("coco", "text", "none")
DETERMINERS = frozenset("a an the one two three four five six seven eight nine ten this that these those some "
                        "another each every his her their its my your our several many".split())
# How provenance and the report name each grounding.
GROUNDING_LABELS = {"coco": "coco", "text": "text-grounded", "none": "none", "set": "set", "clip": "clip"}


def _load_one(spec: Path, split: str | None) -> CocoSet:
    """A COCO root directory (with `split`) or one instances JSON file (captions from its `captions_` sibling)."""
    if spec.is_dir():
        if not split:
            raise KanvaError(f"--coco {spec}: a directory needs --split (it reads {spec}/annotations/"
                             "instances_SPLIT.json); or give the instances file itself")
        return load_coco(spec, split)
    if not spec.is_file():
        raise KanvaError(f"--coco {spec}: no such file or directory")
    cpath = spec.with_name("captions_" + spec.name[len("instances_"):]) if spec.name.startswith("instances_") else None
    caps = read_json(cpath) if cpath is not None and cpath.is_file() else {"annotations": []}
    name = spec.stem[len("instances_"):] if spec.stem.startswith("instances_") else spec.stem
    root = spec.parent.parent if spec.parent.name == "annotations" else spec.parent
    return coco_from_dicts(read_json(spec), caps, root, name, ipath=spec,
                           cpath=cpath if cpath is not None and cpath.is_file() else spec)


def coco_specs(coco: str | Path | Iterable[str | Path] | None) -> list[str]:
    """`--coco` as a list of paths (a run's configuration records it so; older runs recorded one string)."""
    if coco is None:
        return []
    if isinstance(coco, (str, Path)):
        return [str(coco)]
    return [str(c) for c in coco]


def load_annotations(specs: Sequence[str | Path], split: str | None) -> CocoSet | None:
    """The annotated images of every `--coco` given, as one CocoSet (None when none is given)."""
    sets = [(str(s), _load_one(Path(s), split)) for s in specs]
    if not sets:
        return None
    return sets[0][1] if len(sets) == 1 else merge_sets(sets)


def no_annotations() -> CocoSet:
    """The CocoSet of a run given no `--coco`: every image is text-grounded or not grounded."""
    return CocoSet(Path("."), "", {}, {}, Counter(), {}, (), ())


def annotation_files(specs: Sequence[str | Path], split: str | None) -> list[Path]:
    """The instances files that `specs` name (for the run's configuration digest)."""
    return [Path(s) / "annotations" / f"instances_{split}.json" if Path(s).is_dir() else Path(s) for s in specs]


def merge_sets(sets: Sequence[tuple[str, CocoSet]]) -> CocoSet:
    """One CocoSet from several (categories joined by name; an image id or base name in two sets is an error)."""
    images: dict[int, ImageRec] = {}
    origin: dict[int, str] = {}
    by_key: dict[str, int] = {}
    cats: dict[int, tuple[str, str]] = {}
    ids: dict[str, int] = {}
    freq: Counter = Counter()
    cooccur: dict[str, Counter] = {}
    texts: set[str] = set()
    colors: set[str] = set()
    for label, cs in sets:
        for iid, rec in cs.images.items():
            if iid in images:
                raise KanvaError(f"--coco {label}: image id {iid} ({rec.file_name}) is also in {origin[iid]} "
                                 f"({images[iid].file_name}); merged annotation files need distinct image ids")
            if rec.key in by_key:
                raise KanvaError(f"--coco {label}: image {rec.file_name!r} is also in {origin[by_key[rec.key]]}; "
                                 "give each image's annotations once")
            images[iid], origin[iid], by_key[rec.key] = rec, label, iid
        for name, sup in cs.categories.values():
            if name not in ids:
                ids[name] = len(ids) + 1
                cats[ids[name]] = (name, sup)
        freq.update(cs.image_freq)
        for c, row in cs.cooccur.items():
            cooccur.setdefault(c, Counter()).update(row)
        texts.update(cs.text_vocab)
        colors.update(cs.colors)
    first = sets[0][1]
    return CocoSet(first.root, first.split, images, cats, freq, cooccur, tuple(sorted(texts)), tuple(sorted(colors)),
                   by_key)


class Lexicon:
    """Finds which categories of a vocabulary a text names (not negated).

    The COCO categories are found with kanva/data/vocab.py's synonym table (the one elimination uses);
    any other category by its name or plural, with the same negation window ("no", "not", ... up to three
    words before it), and only as a noun phrase: after a determiner or number ("a can", "two cans") or in the
    plural, since a large vocabulary (LVIS) has names that are everyday words too ("I can see", "on top").
    """

    def __init__(self, categories: Iterable[str]):
        cats = set(categories)
        self.coco = frozenset(c for c in CATEGORIES if c in cats)
        self.phrases: dict[tuple[str, ...], str] = {}
        for c in sorted(cats - self.coco):
            for form in (c, plural(c)):
                key = words(form)
                if key and key not in self.phrases:
                    self.phrases[key] = c
        self.longest = max((len(k) for k in self.phrases), default=0)

    def named(self, text: str) -> set[str]:
        found = {m.category for m in mentions(text) if not m.negated and m.category in self.coco}
        if not self.phrases:
            return found
        toks = words(unquote(text))
        i = 0
        while i < len(toks):
            for span in range(min(self.longest, len(toks) - i), 0, -1):
                cat = self.phrases.get(toks[i : i + span])
                if cat is not None:
                    noun = (i > 0 and toks[i - 1] in DETERMINERS) or toks[i : i + span] != words(cat)
                    if noun and not any(w in NEGATIONS or w.endswith("n't") for w in toks[max(0, i - 3) : i]):
                        found.add(cat)
                    i += span - 1
                    break
            i += 1
        return found


def answers_of(sample: dict) -> list[str]:
    return [t["value"] for t in sample["conversations"][1::2]]


def ungrounded_rec(key: str, samples: Sequence[dict], lexicon: Lexicon | None) -> ImageRec:
    """The record of an image no annotation file has: `text` with the categories its answers name, else `none`.

    Its id is derived from the image's base name (stable across runs, shards and input order), above the
    range of COCO ids.
    """
    named: set[str] = set()
    if lexicon is not None:
        for s in samples:
            for a in answers_of(s):
                named |= lexicon.named(a)
    iid = (1 << 40) + derive("image", key) % (1 << 40)
    grounding = "text" if named else "none"
    return ImageRec(iid, key, 0, 0, caption_mentions=frozenset(named), grounding=grounding, named=frozenset(named))
