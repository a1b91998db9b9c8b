"""The label space: which words the encoder learns per patch, and the label file that carries it to scene text.

A label is a (kind, word) pair: a category ("cow"), a recorded colour ("red"), a printed word ("TAXI"),
how many objects of its category the image holds ("two") or the half of the image it lies in ("left"). The
space also holds every setting that decides which patches carry which label (`color_cells`, `object_cells`,
`min_cover`) and the word of an empty patch (`background`): the vision stage saves it as `patch_labels.json`
beside the model, and scene text (scene_text.py) reads it back, so the text lays its cells out exactly as the
encoder learnt them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kanva.data.coco import CocoSet
from kanva.errors import KanvaError
from kanva.jsonfile import read_json
from kanva.words import NUMBER_WORDS, number_word

LABELS_FILE = "patch_labels.json"
BACKGROUND = "background"  # the word of a patch with no label (the projector's bias, the scene text's cell)

LABEL_KINDS = ("category", "color", "text", "count", "side")
# "count": how many objects of its category the image holds, for each of them ("bird two" twice). The encoder
# sees the whole image (attention), so a missed or doubled centre does not change the word, and the LM answers
# "Are there two birds?" by reading a word instead of counting tokens (a 135M LM over exact scene text: 58%).
# As a second word on the object's token the LM did not read it (docs/experiments/2026-11-26-sums-of-words.md), so under
# "around" the number has a cell of its own, after the object's in its row ("bird two"; targets.py).
# "side": the half of the image ("left", "right") its box centre lies in, for each object; under "around" a cell
# of its own right after the object's, before its number ("bird left two"): the LM read a side word next to its
# object's name from far fewer questions than one after the number (benchmarks/position_reading_probe.py).
# Left and right otherwise have to be read from where the object's token stands in the raster, which the LM learnt
# from several times the questions a reading stage holds
# (docs/experiments/2026-12-07-how-much-left-right-the-lm-needs.md). Not in the quickstart recipes: neither three
# position turns per sample nor a stage of position questions before the reading stage made a mixed reading stage
# read left/right (docs/experiments/2026-12-07-side-words-after-the-name-and-left-right-turns-on-val.md,
# 2026-12-07-a-shared-position-stage-on-val.md).
SIDES = ("left", "right")

COLOR_CELLS = ("shared", "around")
# "shared": a coloured object's patches carry both its colour and its category (one token holds two words).
# "around" (with object_cells "center"): the colour on the patches the object covers (at least half) other than
# its centre's, which keeps the category alone: one word per token (an object within one patch has its colour
# on the cell beside it). Val image F1 colour: shared 0.86, around 0.79 (docs/experiments/2026-11-26-objects-as-tokens.md).

OBJECT_CELLS = ("cover", "center")
# "cover": an object's words on every patch its box covers; "center": only on the patch holding its box
# centre, so each object is one token and the number of tokens of a word is the number of objects.


def check_kinds(kinds: list[str], where: str) -> list[str]:
    unknown = sorted(set(kinds) - set(LABEL_KINDS))
    if unknown:
        raise KanvaError(f"{where}: unknown kind(s) {unknown}; known: {list(LABEL_KINDS)}")
    return kinds


def check_cells(color_cells: str, object_cells: str, where: str) -> None:
    """The one check of a (`color_cells`, `object_cells`) pair, for every place that reads one."""
    if color_cells not in COLOR_CELLS:
        raise KanvaError(f"{where}: color_cells must be one of {list(COLOR_CELLS)}, got {color_cells!r}")
    if object_cells not in OBJECT_CELLS:
        raise KanvaError(f"{where}: object_cells must be one of {list(OBJECT_CELLS)}, got {object_cells!r}")
    if color_cells == "around" and object_cells != "center":
        raise KanvaError(f"{where}: color_cells 'around' (the colour beside the object's one patch) needs "
                         f"object_cells 'center', got {object_cells!r}")


@dataclass
class PatchLabelSpace:
    """The label vocabulary: one entry per (kind, word), `words[i]` as the annotations name it.

    `spellings[i]` is how the LM reads label i (its grounded embedding and its scene text): the word itself, or
    a case variant that the tokenizer keeps as one token (" taxi" for "TAXI", which is " TA" "X" "I"). A
    one-token label makes its image token exactly one input embedding, the vector the LM reads in text; an
    average of several token embeddings is a vector the LM never reads anywhere.
    """

    kinds: list[str]
    words: list[str]
    spellings: list[str] | None = None  # None: the words themselves
    color_cells: str = "shared"
    object_cells: str = "cover"
    min_cover: float = 0.2  # the share of a patch a box must cover to label it (PatchPretrainConfig.min_cover)
    background: str = BACKGROUND

    def __post_init__(self) -> None:
        check_cells(self.color_cells, self.object_cells, "patch labels")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def reads(self) -> list[str]:
        return self.spellings if self.spellings is not None else self.words

    def to_json(self) -> dict:
        return {"kinds": self.kinds, "words": self.words, "spellings": self.spellings, "color_cells": self.color_cells,
                "object_cells": self.object_cells, "min_cover": self.min_cover, "background": self.background}

    @classmethod
    def from_json(cls, d: dict) -> PatchLabelSpace:
        """Files written before `min_cover` and `background` were recorded used 0.2 and "background"."""
        sp = d.get("spellings")
        check_kinds(list(d["kinds"]), "patch labels: kinds")
        space = cls(kinds=list(d["kinds"]), words=list(d["words"]), spellings=list(sp) if sp is not None else None,
                    color_cells=d.get("color_cells", "shared"), object_cells=d.get("object_cells", "cover"),
                    min_cover=float(d.get("min_cover", 0.2)), background=str(d.get("background", BACKGROUND)))
        if not (len(space.kinds) == len(space.words) == len(space.reads)):
            raise KanvaError(f"patch labels: kinds, words and spellings differ in length ({len(space.kinds)}, "
                             f"{len(space.words)}, {len(space.reads)})")
        return space


def build_label_space(coco: CocoSet, kinds: list[str], color_cells: str = "shared", object_cells: str = "cover",
                      min_cover: float = 0.2) -> PatchLabelSpace:
    """Labels that occur in the data, in a fixed order (categories by id, colours, printed words, counts)."""
    check_kinds(kinds, "patch labels")
    ids = coco.category_ids
    objects = [o for im in coco.images.values() for o in im.objects]
    out_kinds, words = [], []

    def add(kind: str, found) -> None:
        for w in found:
            out_kinds.append(kind)
            words.append(w)

    if "category" in kinds:
        add("category", sorted({o.category for o in objects}, key=ids.__getitem__))
    if "color" in kinds:
        add("color", sorted({o.color for o in objects if o.color}))
    if "text" in kinds:
        add("text", coco.text_vocab)
    if "count" in kinds:
        counts = sorted({n for im in coco.images.values() for n in im.counts.values()})
        if counts and number_word(counts[-1]).isdigit():
            raise KanvaError(f"patch labels: an image holds {counts[-1]} objects of one category; the count labels "
                             f"go up to {len(NUMBER_WORDS) - 1}")
        add("count", [number_word(n) for n in counts])
    if "side" in kinds:
        add("side", [w for w in SIDES if any(side_of(o.bbox, im.width) == w for im in coco.images.values()
                                             for o in im.objects)])
    if not words:
        raise KanvaError("patch labels: the annotations give no labels of the requested kinds")
    return PatchLabelSpace(out_kinds, words, color_cells=color_cells, object_cells=object_cells, min_cover=min_cover)


def side_of(bbox, width: float) -> str:
    """The half of the image a box's centre lies in; the middle counts as right."""
    return SIDES[0] if bbox[0] + bbox[2] / 2 < width / 2 else SIDES[1]


def one_token_spellings(tokenizer, words: list[str]) -> list[str]:
    """For each word, the first of (as is, lower, Capitalized) that is one token mid-sentence; else the word."""
    out = []
    for w in words:
        for v in (w, w.lower(), w.capitalize()):
            if len(tokenizer(" " + v, add_special_tokens=False)["input_ids"]) == 1:
                out.append(v)
                break
        else:
            out.append(w)
    return out


def save_label_space(model_dir: Path, space: PatchLabelSpace, readout: dict, metrics: dict,
                     onevision: dict | None = None) -> Path:
    """`patch_labels.json`: the space, how to read the classifier back out of the projector, the stage's metrics,
    and for a OneVision model its newline word and whether frames were labelled (`onevision`, layout.py)."""
    path = Path(model_dir) / LABELS_FILE
    extra = {"onevision": onevision} if onevision is not None else {}
    path.write_text(json.dumps({**space.to_json(), "grounding": readout, "metrics": metrics, **extra}, indent=1))
    return path


def read_label_file(model_dir: str | Path) -> dict:
    return read_json(Path(model_dir) / LABELS_FILE,
                     hint="needs a model from the vision pretraining stage, `kanva grounding pretrain`")


def load_label_space(model_dir: str | Path) -> tuple[PatchLabelSpace, int, int]:
    """The label space and (image size, patch size) of a model made by the vision pretraining stage."""
    d = Path(model_dir)
    raw = read_label_file(d)
    try:
        space = PatchLabelSpace.from_json(raw)
        vc = json.loads((d / "config.json").read_text())["vision_config"]
        return space, int(vc["image_size"]), int(vc["patch_size"])
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise KanvaError(f"{d}: cannot read the patch label space or vision config: {e}") from None
