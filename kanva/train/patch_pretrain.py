"""Vision pretraining on the world's boxes: per-patch labels, then a word-grounded projector.

Why: on a 2-core CPU a vision encoder trained from scratch is the bottleneck, and a LLaVA projector
trained with the LM frozen stays near chance on yes/no questions after the few steps we can afford.
Two things fix most of it:

1. Dense supervision. Every patch gets multi-hot labels from the COCO boxes that cover it (category,
   recorded colour, printed word), trained with a per-patch binary cross-entropy. This gives the
   encoder ~36 labelled targets per image instead of one image-level label.
2. A projector that starts out speaking the LM's language. The LLaVA projector is
   `linear_2(act(linear_1(x)))`. We put the per-patch classifier into the first rows of `linear_1`
   and the LM's input embeddings of the label words (" cow", " red", " OPEN") into the matching
   columns of `linear_2`, scaled so that a typically confident patch gives exactly its word's embedding
   (the background's removed), so an image token starts as "the embedding of what this patch shows".
   The remaining rows/columns start at zero-output, so instruction tuning can add anything else
   (positions, counts) on top. The checkpoint stays a plain HF Llava model.

The stage reads COCO annotations only (the same path as a real data set), so it works on any
detection-annotated images, not just the synthetic world.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from kanva.data.coco import CocoSet, load_coco
from kanva.errors import KanvaError
from kanva.words import NUMBER_WORDS, number_word, plural


@dataclass
class PatchPretrainConfig:
    coco: str = ""  # COCO root: annotations/instances_{split}.json and {split}/ images
    split: str = "train"
    val_split: str | None = "val"
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    min_cover: float = 0.2  # a patch is labelled with a box when the box covers this share of it
    labels: list[str] = field(default_factory=lambda: ["category", "color", "text"])
    hflip: bool = True
    # "shared": a coloured object's patches carry both its colour and its category (one image token holds
    # two words); "alternate": odd grid columns carry the colour, even ones the category (one word per token,
    # the two side by side in the raster order, as "purple umbrella" is in text); "beside" (with
    # object_cells "center"): the colour on the patch left of the object's one patch (right of it in the first
    # column), so the raster reads "purple umbrella" and each token is one word; "around" (with "center"): the
    # colour on the object's other patches (COLOR_CELLS). See PatchLabelSpace.
    color_cells: str = "shared"
    # "cover": an object's category (and colour) on every patch its box covers; "center": only on the patch
    # holding its box centre, so each object is one token and the number of tokens of a word is the number of
    # objects (counting), at the price of one positive patch per object instead of 2-9. See PatchLabelSpace.
    object_cells: str = "cover"
    # How a label's confidence becomes its word in the image token (ground_projector): "scaled", the word in
    # proportion to the logit (relu-like, one hidden unit per label, `sharpen`); "saturating", exactly the word
    # once the logit is past 0.5 / `slope` (clamp(slope * logit + 0.5, 0, 1), two hidden units per label).
    grounding: str = "scaled"
    sharpen: float = 3.0  # "scaled": projector label rows = classifier x sharpen
    slope: float = 1.0  # "saturating": the clamp's slope per unit of logit
    # Label kinds of which a patch holds at most one (the number words: an object has one number). Training
    # weights positives up (`pos_weight`, to keep recall on rare labels), which moves every label's decision
    # boundary from p = 0.5 to p = 1 / (1 + pos_weight): an unsure patch then fires two numbers ("one" and
    # "two"), a token that is the sum of two words, which the LM does not read. For these kinds the grounding
    # threshold goes back to the unweighted boundary, logit > ln(pos_weight) (see `exclusive_shifts`).
    exclusive: list[str] = field(default_factory=list)
    max_images: int = 0  # 0 = all images of the split
    seed: int = 0
    log_every: int = 10


# ---------------------------------------------------------------------------------------------
# Labels from COCO


LABEL_KINDS = ("category", "color", "text", "side", "count", "plural")
# "side": which half of the image an object's box centre is in, on the object's patches. A raster of 36 tokens
# does not tell a 135M LM a token's column (MME position was at chance even over exact scene text), so the
# object's token says it: "red cat left". Two halves separate 96% of the "wholly left of" pairs of the world
# (three thirds: 98.5%, but then the LM must also order "middle"). Measured as a second word on the object's
# token, it breaks the reading of the object itself: docs/experiments/2026-11-26-sums-of-words.md.
SIDES = ("left", "right")
# "count": how many objects of its category the image holds, for each of them ("bird two" twice). The encoder
# sees the whole image (attention), so a missed or doubled centre does not change the word, and the LM answers
# "Are there two birds?" by reading a word instead of counting tokens (a 135M LM over exact scene text: 58%).
# Measured as a third word on the object's token, with "side" (docs/experiments/2026-11-26-sums-of-words.md), the LM did not
# read it: so under the one-word-per-token colour layouts ("beside", "around") the number and the side have cells
# of their own, after the object's in its row ("bird two left"; _cells_after).
# "plural": an object whose image holds others of its category is labelled with the plural instead of its
# category ("dogs" on each dog's patch when there are two). Still one word per token, so that the LM could
# answer "Is there only one dog?" by reading the word's number instead of counting tokens, which it does not
# learn; measured, it did not learn this lookup within a reading stage either, and the encoder finds the number
# less well than the category (docs/experiments/2026-11-26-counting-and-colour-as-words-of-their-own.md).
# Only categories whose plural is one token and differs from the singular ("sheep") get one.
COLOR_CELLS = ("shared", "alternate", "beside", "around")
# "around" (with object_cells "center"): the colour on the patches the object covers (at least half) other than
# its centre's, which keeps the category alone: one word per token, and a patch showing the object's colour is
# labelled with it, which the encoder finds more easily than the patch next to a centre (val image F1 colour:
# shared 0.86, around 0.79, beside 0.68). An object within one patch falls back to "beside".
AROUND_COVER = 0.5
OBJECT_CELLS = ("cover", "center")
GROUNDINGS = ("scaled", "saturating")
# A saturating unit is the difference of two GELUs this much sharper than the clamp: within ~1% of a hard clamp.
GELU_SHARPNESS = 4.0


def check_color_cells(value: str, name: str) -> str:
    """The one check of a `color_cells` value, for every place that reads one (`name`: where, for the error)."""
    if value not in COLOR_CELLS:
        raise KanvaError(f"{name} must be one of {list(COLOR_CELLS)}, got {value!r}")
    return value


def check_object_cells(value: str, color_cells: str, name: str) -> str:
    """The one check of an `object_cells` value (and its fit with `color_cells`)."""
    if value not in OBJECT_CELLS:
        raise KanvaError(f"{name} must be one of {list(OBJECT_CELLS)}, got {value!r}")
    if value == "center" and color_cells == "alternate":
        raise KanvaError(f"{name}: 'center' puts an object on one patch, so its colour shares it or goes beside "
                         f"it: color_cells must be 'shared', 'beside' or 'around', got {color_cells!r}")
    if value == "cover" and color_cells in ("beside", "around"):
        raise KanvaError(f"{name}: color_cells {color_cells!r} (the colour next to the object's one patch) "
                         "needs object_cells 'center'")
    return value


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
    # Where a coloured object's colour goes (COLOR_CELLS; PatchPretrainConfig.color_cells): part
    # of the label space because the scene text must lay its cells out exactly as the encoder learnt them.
    color_cells: str = "shared"
    object_cells: str = "cover"  # "center": an object only on the patch of its box centre (one token each)

    def __post_init__(self) -> None:
        check_color_cells(self.color_cells, "patch labels: color_cells")
        check_object_cells(self.object_cells, self.color_cells, "patch labels: object_cells")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def reads(self) -> list[str]:
        return self.spellings if self.spellings is not None else self.words

    def to_json(self) -> dict:
        d = {"kinds": self.kinds, "words": self.words}
        if self.spellings is not None:
            d["spellings"] = self.spellings
        if self.color_cells != "shared":
            d["color_cells"] = self.color_cells
        if self.object_cells != "cover":
            d["object_cells"] = self.object_cells
        return d

    @classmethod
    def from_json(cls, d: dict) -> PatchLabelSpace:
        sp = d.get("spellings")
        space = cls(kinds=list(d["kinds"]), words=list(d["words"]), spellings=list(sp) if sp is not None else None,
                    color_cells=d.get("color_cells", "shared"), object_cells=d.get("object_cells", "cover"))
        if not (len(space.kinds) == len(space.words) == len(space.reads)):
            raise KanvaError(f"patch labels: kinds, words and spellings differ in length ({len(space.kinds)}, "
                             f"{len(space.words)}, {len(space.reads)})")
        return space


def _one_token(tokenizer, word: str) -> bool:
    """Whether the tokenizer keeps `word` as one token mid-sentence."""
    return len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1


def one_token_spellings(tokenizer, words: list[str]) -> list[str]:
    """For each word, the first of (as is, lower, Capitalized) that is one token mid-sentence; else the word."""
    out = []
    for w in words:
        for v in (w, w.lower(), w.capitalize()):
            if _one_token(tokenizer, v):
                out.append(v)
                break
        else:
            out.append(w)
    return out


def build_label_space(coco: CocoSet, kinds: list[str], color_cells: str = "shared",
                      object_cells: str = "cover", tokenizer=None) -> PatchLabelSpace:
    """Labels that occur in the data, in a fixed order (categories by id, colours, words, sides, counts,
    plurals). `tokenizer`: plurals only where it keeps the plural as one token (None: every plural)."""
    unknown = sorted(set(kinds) - set(LABEL_KINDS))
    if unknown:
        raise KanvaError(f"patch labels: unknown kind(s) {unknown}; known: {list(LABEL_KINDS)}")
    ids = coco.category_ids
    objects = [o for im in coco.images.values() for o in im.objects]
    out_kinds, words = [], []
    if "category" in kinds:
        for name in sorted({o.category for o in objects}, key=ids.__getitem__):  # by category id
            out_kinds.append("category")
            words.append(name)
    if "color" in kinds:
        for col in sorted({o.color for o in objects if o.color}):
            out_kinds.append("color")
            words.append(col)
    if "text" in kinds:
        for w in coco.text_vocab:
            out_kinds.append("text")
            words.append(w)
    if "side" in kinds and objects:
        for w in SIDES:
            out_kinds.append("side")
            words.append(w)
    if "count" in kinds:
        for n in sorted({n for im in coco.images.values() for n in im.counts.values()}):
            if number_word(n).isdigit():
                raise KanvaError(f"patch labels: an image holds {n} objects of one category; the count labels go up "
                                 f"to {len(NUMBER_WORDS) - 1}")
            out_kinds.append("count")
            words.append(number_word(n))
    if "plural" in kinds:
        many = sorted({ids[c] for im in coco.images.values() for c, n in im.counts.items() if n > 1})
        names = {cid: name for name, cid in ids.items()}
        for cid in many:
            name = names[cid]
            word = plural(name)
            if word == name or (tokenizer is not None and not _one_token(tokenizer, word)):
                continue  # "sheep", or a plural the LM reads as several tokens: the singular stays
            out_kinds.append("plural")
            words.append(word)
    if not words:
        raise KanvaError("patch labels: the annotations give no labels of the requested kinds")
    return PatchLabelSpace(out_kinds, words, color_cells=color_cells, object_cells=object_cells)


def _box_cover(box: list[float], scale_x: float, scale_y: float, grid: int, patch: float,
               center_only: bool = False) -> np.ndarray:
    """Share of each grid cell covered by the box (after scaling to the model's input size); with
    `center_only`, 1 on the cell holding the box centre and 0 elsewhere."""
    x, y, w, h = box
    x0, x1 = x * scale_x, (x + w) * scale_x
    y0, y1 = y * scale_y, (y + h) * scale_y
    edges = np.arange(grid + 1) * patch
    ox = np.clip(np.minimum(x1, edges[1:]) - np.maximum(x0, edges[:-1]), 0, None) / patch
    oy = np.clip(np.minimum(y1, edges[1:]) - np.maximum(y0, edges[:-1]), 0, None) / patch
    cover = np.zeros((grid, grid)) if center_only else np.outer(oy, ox)  # [row, col]
    # The cell holding the box centre is always labelled: small objects still get a patch.
    cx = min(int((x0 + x1) / 2 // patch), grid - 1)
    cy = min(int((y0 + y1) / 2 // patch), grid - 1)
    cover[cy, cx] = max(cover[cy, cx], 1.0)
    return cover


def _cell_before(c: int) -> int:
    """The column a colour takes beside an object centred in column `c`: the one before it (after it in the
    first column), so the row reads "purple umbrella"."""
    return c - 1 if c > 0 else c + 1


def _cells_after(c: int, grid: int, skip: int | None) -> list[int]:
    """The columns of a row for the words written after an object centred in column `c`: c+1, c+2, ... to the
    row's end, then c-1, c-2, ... (the row's other side), leaving out `skip` (the colour's cell)."""
    return [cc for cc in [*range(c + 1, grid), *range(c - 1, -1, -1)] if cc != skip]


def patch_targets(
    coco: CocoSet, space: PatchLabelSpace, image_size: int, patch: int, min_cover: float, mirror: bool = False
) -> dict[int, np.ndarray]:
    """Per image id: a [grid*grid, n_labels] uint8 multi-hot array in the encoder's raster order.

    `mirror`: the targets of the horizontally flipped images (object boxes mirrored; printed words are not,
    since images with text are never flipped). Not simply the flipped targets: with `color_cells:
    alternate` the colour stays on odd columns, under "beside" it stays left of the object, and a "side"
    label changes word."""
    grid = image_size // patch
    index = {(k, w): i for i, (k, w) in enumerate(zip(space.kinds, space.words))}
    targets = {iid: np.zeros((grid, grid, len(space)), dtype=np.uint8) for iid in coco.images}
    plurals = {c: index[("plural", plural(c))] for c in coco.category_names if ("plural", plural(c)) in index}
    odd = np.zeros((grid, grid), dtype=bool)  # the columns that carry the colour under "alternate"
    odd[:, 1::2] = True
    for im, a in ((im, a) for im in coco.images.values() for a in im.objects):
        # Images are squashed to a square by the image processor ("resize"), so scale each axis.
        bbox = list(a.bbox)
        if mirror:
            bbox = [im.width - bbox[0] - bbox[2], *bbox[1:]]
        cover = _box_cover(bbox, image_size / im.width, image_size / im.height, grid, patch,
                           center_only=space.object_cells == "center")
        on = cover >= min_cover
        cat, col = index.get(("category", a.category)), index.get(("color", a.color))
        # The half holding the box centre (scaled to the input, as the cells are): the same half as the centre's
        # cell, so under "center" the encoder learns the side from the patch's own column.
        centre = (bbox[0] + bbox[2] / 2) * image_size / im.width
        side = index.get(("side", SIDES[0] if centre < image_size / 2 else SIDES[1]))
        n = im.counts[a.category]
        count = index.get(("count", number_word(n)))
        if n > 1 and a.category in plurals:  # "dogs" instead of "dog"
            cat = plurals[a.category]
        t = targets[im.id]
        one_word = space.color_cells in ("beside", "around")  # one word per token (object_cells "center")
        after = np.zeros_like(on)  # the cells of the words written after the object ("bird two left")
        if one_word:
            words_after = [i for i in (count, side) if i is not None]
            for r, c in np.argwhere(on):  # the one centre cell
                # A coloured object keeps the cell before it free, for its colour if it goes beside.
                cells = _cells_after(c, grid, skip=_cell_before(c) if col is not None else None)
                for i, cc in zip(words_after, cells):
                    t[r, cc, i] = 1
                    after[r, cc] = True
            count = side = None
        if space.color_cells == "around" and col is not None:
            covered = _box_cover(bbox, image_size / im.width, image_size / im.height, grid, patch)
            ring = (covered >= AROUND_COVER) & ~on & ~after
            if ring.any():
                t[ring, col] = 1
                col = None
        if one_word and col is not None:
            # One word per token: the colour on the cell beside the object's (_cell_before).
            for r, c in np.argwhere(on):
                t[r, _cell_before(c), col] = 1
            col = None
        if space.color_cells == "alternate" and cat is not None and col is not None:
            if (on & odd).any() and (on & ~odd).any():  # both kinds of column: one word per patch
                t[on & ~odd, cat] = 1
                t[on & odd, col] = 1
                for i in (side, count):
                    if i is not None:
                        t[on & ~odd, i] = 1
                continue
        for i in (cat, col, side, count):  # "shared", or an object within one column: all its words on its patches
            if i is not None:
                t[on, i] = 1
    for iid, im in coco.images.items() if not mirror else ():  # flipped images never have text
        for t in im.texts:
            key = ("text", t.text)
            if key in index:
                cover = _box_cover(t.bbox, image_size / im.width, image_size / im.height, grid, patch)
                targets[iid][cover >= min_cover, index[key]] = 1
    return {iid: t.reshape(grid * grid, -1) for iid, t in targets.items()}


# ---------------------------------------------------------------------------------------------
# Data: images decoded once into a uint8 tensor (a few thousand 96 px images are ~100 MB)


def _load_split(coco: CocoSet, image_size: int, max_images: int):
    images = sorted(coco.images.values(), key=lambda im: im.id)
    if max_images:
        images = images[:max_images]
    pix = np.zeros((len(images), image_size, image_size, 3), dtype=np.uint8)
    for i, im in enumerate(tqdm(images, desc=f"load {coco.split}", unit="img", leave=False)):
        path = coco.image_dir / im.file_name
        try:
            with Image.open(path) as img:
                pix[i] = np.asarray(img.convert("RGB").resize((image_size, image_size), Image.BICUBIC))
        except (OSError, ValueError) as e:
            raise KanvaError(f"{path}: cannot read image {im.id}: {e}") from None
    return images, torch.from_numpy(pix)


def _normalize(pix_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    x = pix_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def _hflip_targets(t: torch.Tensor, grid: int) -> torch.Tensor:
    return t.view(t.shape[0], grid, grid, -1).flip(2).reshape(t.shape)


# ---------------------------------------------------------------------------------------------
# The stage


def vision_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Exactly the features the Llava projector sees (feature layer + select strategy)."""
    cfg = model.config
    out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    feats = out.hidden_states[cfg.vision_feature_layer]
    if cfg.vision_feature_select_strategy == "default":
        feats = feats[:, 1:]
    return feats


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


def _patch_logits(model, head, pix_u8, mean, std, batch_size: int = 128):
    """(start index, [batch, patches, labels] classifier logits) over the images, in batches, eval mode."""
    model.eval()
    for s in range(0, len(pix_u8), batch_size):
        yield s, head(vision_features(model, _normalize(pix_u8[s : s + batch_size], mean, std)))


@torch.no_grad()
def evaluate_patches(model, head, pix, targets, mean, std, grid, batch_size=128) -> dict:
    """Patch-level F1 and image-level F1 per label kind (an image has a label if any patch has it)."""
    tp = fp = fn = 0
    itp = ifp = ifn = 0
    for s, logits in _patch_logits(model, head, pix, mean, std, batch_size):
        pred = logits > 0
        t = targets[s : s + batch_size].bool()
        tp += (pred & t).sum().item()
        fp += (pred & ~t).sum().item()
        fn += (~pred & t).sum().item()
        ip, it = pred.any(1), t.any(1)
        itp += (ip & it).sum().item()
        ifp += (ip & ~it).sum().item()
        ifn += (~ip & it).sum().item()
    return {"patch_f1": _f1(tp, fp, fn), "image_f1": _f1(itp, ifp, ifn)}


def word_embeddings(model, tokenizer, words: list[str]) -> torch.Tensor:
    """Mean input embedding of each word's tokens, as the LM would read it mid-sentence (" word")."""
    emb = model.get_input_embeddings().weight.detach()
    rows = []
    for w in words:
        ids = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        if not ids:
            raise KanvaError(f"patch labels: the tokenizer gives no tokens for {w!r}")
        rows.append(emb[ids].float().mean(0))
    return torch.stack(rows)


def check_grounding(value: str, name: str) -> str:
    if value not in GROUNDINGS:
        raise KanvaError(f"{name} must be one of {list(GROUNDINGS)}, got {value!r}")
    return value


def check_exclusive(kinds: list[str], labels: list[str], name: str) -> list[str]:
    """`exclusive` must name label kinds the model is trained on."""
    bad = [k for k in kinds if k not in labels]
    if bad:
        raise KanvaError(f"{name}: {bad} not among the trained label kinds {labels}")
    return list(kinds)


def exclusive_shifts(kinds: list[str], exclusive: list[str], pos_weight: torch.Tensor) -> torch.Tensor:
    """Per label, how far its grounding threshold moves: ln(pos_weight) for the `exclusive` kinds, else 0.

    With BCE weighted by w on positives, the loss is minimised at logit = ln(w * p / (1 - p)), so logit > 0
    means p > 1 / (1 + w); logit > ln(w) is p > 0.5, where at most one of labels that exclude each other
    passes (their p sum to at most 1 on a patch). Measured on the smol quickstart (w = 5 for every label): the
    number words' val patches with exactly their labels 0.40 -> 0.49, test patches firing two or more numbers
    106 -> 8; MME perception of the evolved model 747.3 -> 779.1 (docs/experiments/2026-11-27-one-number-per-object.md).
    """
    mask = torch.tensor([k in exclusive for k in kinds])
    return torch.where(mask, pos_weight.log(), torch.zeros_like(pos_weight))


def check_projector_fits(model, n_labels: int, grounding: str) -> int:
    """The hidden units `ground_projector` needs for `n_labels` labels, after checking the projector has them
    (and, for "saturating", GELUs with biases); run before training as well as at grounding time."""
    check_grounding(grounding, "patch labels: grounding")
    proj = model.model.multi_modal_projector
    if grounding == "saturating":
        act = getattr(model.config, "projector_hidden_act", None)
        if act != "gelu" or proj.linear_1.bias is None:
            raise KanvaError(f"patch labels: grounding 'saturating' needs the mlp2x_gelu projector with biases "
                             f"(projector_hidden_act 'gelu'), got {act!r}")
    rows = 2 * n_labels if grounding == "saturating" else n_labels
    if rows > proj.linear_1.out_features:
        raise KanvaError(f"patch labels: {n_labels} labels ({rows} hidden units with grounding {grounding!r}) do not "
                         f"fit the projector width {proj.linear_1.out_features}")
    return rows


@torch.no_grad()
def ground_projector(model, head: torch.nn.Linear, word_emb: torch.Tensor, background: torch.Tensor,
                     positive_logit: float = 4.0, sharpen: float = 3.0, grounding: str = "scaled",
                     slope: float = 1.0) -> dict:
    """Initialise the projector so each image token is the embedding of what its patch shows.

    linear_1 rows [0, L) = the patch classifier times `sharpen`: gelu of a sharpened negative logit is ~0,
    of a positive one ~linear, so the hidden unit is ~relu(logit) and unsure "no"s add nothing.
    linear_2 columns [0, L) = (word embedding - background) / (sharpen * positive_logit), and linear_2's
    bias = the embedding of "background". A patch with no label gives "background"; a patch whose label is
    as confident as a typical positive (`positive_logit`, the median measured on training patches) gives
    exactly that word's embedding, the same vector the LM reads for the word in text. That sameness is
    what lets a reading stage on scene text transfer to images (docs/experiments/2026-11-25-grounding.md): with the
    older scaling (word / 4 on top of the full background) the label was a third of the token, and a
    scene-text-trained LM answered existence questions on images at chance (AUC 0.58 vs 0.94).
    The other columns of linear_2 start at zero, so the other rows of linear_1 add nothing until trained.

    `grounding="saturating"`: the token is background + sum_i clamp(slope * logit_i + 0.5, 0, 1) (word_i -
    background), i.e. exactly the word once the patch is past the threshold, however confident, as in the
    scene text the LM reads; an unsure patch (logit near 0) is half its word. Each label takes two hidden
    units, GELU(s (u + 0.5)) and GELU(s (u - 0.5)) with u = slope * logit and s = GELU_SHARPNESS, whose
    difference / s is that clamp: still a plain `mlp2x_gelu` projector. Measured on the smol quickstart's
    models: POPE yes-ratio 0.37 -> 0.41 and MME perception 519.6 -> 533.8 (docs/experiments/2026-11-26-objects-as-tokens.md).

    Returns how to read the classifier back out of linear_1 (`classifier_from_projector`).
    """
    proj = model.model.multi_modal_projector
    n = head.out_features
    d_text = proj.linear_2.out_features
    rows = check_projector_fits(model, n, grounding)
    if positive_logit <= 0 or sharpen <= 0 or slope <= 0:
        raise KanvaError(f"patch labels: positive_logit ({positive_logit}), sharpen ({sharpen}) and slope ({slope}) "
                         "must be > 0")
    proj.linear_2.weight.zero_()
    diff = (word_emb - background).T
    if grounding == "saturating":
        s = GELU_SHARPNESS
        w, b = head.weight * (slope * s), head.bias * (slope * s)
        proj.linear_1.weight[:n], proj.linear_1.bias[:n] = w, b + 0.5 * s
        proj.linear_1.weight[n:rows], proj.linear_1.bias[n:rows] = w, b - 0.5 * s
        proj.linear_2.weight[:, :n] = (diff / s).to(proj.linear_2.weight.dtype)
        proj.linear_2.weight[:, n:rows] = (-diff / s).to(proj.linear_2.weight.dtype)
        readout = {"kind": "saturating", "scale": slope * s, "offset": 0.5 * s, "rows": rows}
    else:
        proj.linear_1.weight[:n] = head.weight * sharpen
        if proj.linear_1.bias is not None:
            proj.linear_1.bias[:n] = head.bias * sharpen
        proj.linear_2.weight[:, :n] = (diff / (sharpen * positive_logit)).to(proj.linear_2.weight.dtype)
        readout = {"kind": "scaled", "scale": sharpen, "offset": 0.0, "rows": rows}
    if proj.linear_2.bias is not None:
        # A patch with no label must not map to ~0: the LM's first RMSNorm divides by the token's RMS, so
        # near-zero image tokens get gradients of ~1e10 and the first step is NaN. The bias gives every
        # image token a word-sized base: the embedding of "background" (what an empty patch shows).
        proj.linear_2.bias.copy_(background.to(proj.linear_2.bias.dtype))
    assert proj.linear_2.weight.shape[0] == d_text
    return readout


def classifier_from_projector(model, n_labels: int, readout: dict | None) -> torch.nn.Linear:
    """The patch classifier that `ground_projector` wrote into linear_1 (for probes). `readout`: what it
    returned (saved in patch_labels.json as "grounding"); None for files written before it was recorded
    (scaled, sharpen 3)."""
    r = readout or {"scale": PatchPretrainConfig.sharpen, "offset": 0.0}
    proj = model.model.multi_modal_projector
    head = torch.nn.Linear(proj.linear_1.in_features, n_labels)
    with torch.no_grad():
        head.weight.copy_(proj.linear_1.weight[:n_labels] / r["scale"])
        head.bias.copy_((proj.linear_1.bias[:n_labels] - r["offset"]) / r["scale"])
    return head


@torch.no_grad()
def median_positive_logit(model, head, pix_u8, targets, mean, std, batch_size: int = 128) -> float:
    """The median classifier logit over the (patch, label) pairs that are positive: how sure the encoder
    typically is when a label is there (it sets the projector's scale, see ground_projector)."""
    pos = torch.cat([logits[targets[s : s + len(logits)] > 0]
                     for s, logits in _patch_logits(model, head, pix_u8, mean, std, batch_size)])
    if pos.numel() == 0:
        raise KanvaError("patch labels: no positive patch in the images used to calibrate the projector")
    return max(float(pos.median()), 0.5)  # a floor: an untrained head's median can be ~0 or negative


@torch.no_grad()
def init_free_rows(model, n_rows: int, feature_rms: float, seed: int) -> None:
    """Re-initialise the projector rows after the first `n_rows` (those that carry no label) so their
    pre-activations are ~N(0, 1).

    The encoder's features are not normalised (hidden states before any final norm, often with an RMS in
    the tens after pretraining), so the projector's default random init gives huge activations there and
    gradients of ~1e10 in linear_2 on the first step. Scaling by the measured feature RMS fixes that.
    """
    w = model.model.multi_modal_projector.linear_1.weight
    b = model.model.multi_modal_projector.linear_1.bias
    g = torch.Generator().manual_seed(seed)
    d_in = w.shape[1]
    free = torch.randn(w.shape[0] - n_rows, d_in, generator=g) / (math.sqrt(d_in) * feature_rms)
    w[n_rows:] = free.to(w.dtype)
    if b is not None:
        b[n_rows:] = 0


@torch.no_grad()
def feature_rms(model, pix_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> float:
    model.eval()
    return vision_features(model, _normalize(pix_u8, mean, std)).pow(2).mean().sqrt().item()


def run_patch_pretrain(model_dir: str | Path, cfg: PatchPretrainConfig, out_dir: str | Path) -> dict:
    """Train the vision encoder on per-patch labels, ground the projector, save a Llava model dir."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model_dir, out_dir, coco = Path(model_dir), Path(out_dir), Path(cfg.coco)
    torch.manual_seed(cfg.seed)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    check_grounding(cfg.grounding, "vision pretraining: grounding")
    processor = AutoProcessor.from_pretrained(model_dir)
    ip = processor.image_processor
    size = ip.size.get("height") or ip.size.get("shortest_edge")
    patch = model.config.vision_config.patch_size
    grid = size // patch
    mean = torch.tensor(ip.image_mean, dtype=torch.float32)
    std = torch.tensor(ip.image_std, dtype=torch.float32)

    inst = load_coco(coco, cfg.split, captions=False)
    space = build_label_space(inst, cfg.labels, cfg.color_cells, cfg.object_cells, tokenizer=processor.tokenizer)
    check_projector_fits(model, len(space), cfg.grounding)  # before training, not after
    check_exclusive(cfg.exclusive, cfg.labels, "vision pretraining: exclusive")
    images, pix = _load_split(inst, size, cfg.max_images)
    tmap = patch_targets(inst, space, size, patch, cfg.min_cover)
    targets = torch.from_numpy(np.stack([tmap[im.id] for im in images]))
    mirrored = None  # targets of flipped images, where they are not just the flipped targets
    if cfg.hflip and (space.color_cells != "shared" or "side" in space.kinds):
        mmap = patch_targets(inst, space, size, patch, cfg.min_cover, mirror=True)
        mirrored = torch.from_numpy(np.stack([mmap[im.id] for im in images]))
    val = None
    if cfg.val_split and (coco / "annotations" / f"instances_{cfg.val_split}.json").is_file():
        vinst = load_coco(coco, cfg.val_split, captions=False)
        vimages, vpix = _load_split(vinst, size, 0)
        # Labels unseen in training are simply not in `space`, so patch_targets ignores them.
        vmap = patch_targets(vinst, space, size, patch, cfg.min_cover)
        val = (vpix, torch.from_numpy(np.stack([vmap[im.id] for im in vimages])))

    text_cols = torch.tensor([k == "text" for k in space.kinds])
    has_text = (targets[:, :, text_cols] > 0).flatten(1).any(1)
    vision = model.model.vision_tower
    hidden = model.config.vision_config.hidden_size
    head = torch.nn.Linear(hidden, len(space))
    # Positive labels are rare (most patches are background): weight them up so recall does not collapse.
    pos_rate = targets.float().mean((0, 1)).clamp(min=1e-4)
    pos_weight = ((1 - pos_rate) / pos_rate).clamp(max=5.0)
    params = list(vision.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.steps * cfg.warmup_ratio))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, cfg.steps - warm))),
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = (out_dir / "metrics.jsonl").open("w")
    model.train()
    t0 = time.time()
    bar = tqdm(range(cfg.steps), desc="patch pretrain", unit="step")
    for step in bar:
        idx = torch.randint(len(pix), (cfg.batch_size,), generator=gen)
        x, t = _normalize(pix[idx], mean, std), targets[idx].float()
        if cfg.hflip:
            # Mirror only images without printed words: mirrored text is not what the model will read.
            flip = (torch.rand(cfg.batch_size, generator=gen) < 0.5) & ~has_text[idx]
            x[flip] = x[flip].flip(-1)
            t[flip] = _hflip_targets(t[flip], grid) if mirrored is None else mirrored[idx[flip]].float()
        logits = head(vision_features(model, x))
        loss = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
        if not torch.isfinite(loss):
            raise KanvaError(f"patch pretrain: loss is {loss.item()} at step {step}; lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            log.write(json.dumps({"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0], "time": time.time() - t0}) + "\n")
            log.flush()
    log.close()

    metrics = {"steps": cfg.steps, "seconds": round(time.time() - t0, 1), "labels": len(space)}
    shifts = exclusive_shifts(space.kinds, cfg.exclusive, pos_weight)
    if shifts.any():
        # From here on the classifier is the one the LM will see: val metrics, the median and the projector.
        with torch.no_grad():
            head.bias -= shifts
        metrics["threshold_shift"] = {w: round(float(shifts[i]), 4) for i, w in enumerate(space.words) if shifts[i]}
    if val is not None:
        metrics.update({f"val_{k}": round(v, 4) for k, v in evaluate_patches(model, head, val[0], val[1], mean, std, grid).items()})
    space.spellings = one_token_spellings(processor.tokenizer, space.words)
    emb = word_embeddings(model, processor.tokenizer, space.reads + ["background"])
    m = median_positive_logit(model, head, pix[:256], targets[:256], mean, std)
    readout = ground_projector(model, head, emb[:-1], emb[-1], positive_logit=m, sharpen=cfg.sharpen,
                               grounding=cfg.grounding, slope=cfg.slope)
    metrics["positive_logit"] = round(m, 3)
    rms = feature_rms(model, pix[:64], mean, std)
    init_free_rows(model, readout["rows"], rms, cfg.seed)
    metrics["feature_rms"] = round(rms, 3)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    for extra in ("kanva.json",):
        if (model_dir / extra).is_file():
            (out_dir / extra).write_text((model_dir / extra).read_text())
    (out_dir / "patch_labels.json").write_text(json.dumps({**space.to_json(), "grounding": readout, "metrics": metrics},
                                                          indent=1))
    return metrics

