"""The grounded projector: the patch classifier and the LM's word embeddings written into the LLaVA projector.

The LLaVA projector is `linear_2(act(linear_1(x)))`. The classifier goes into the first rows of `linear_1`
and the LM's input embeddings of the label words (" cow", " red", " OPEN") into the matching columns of
`linear_2`, scaled so that a typically confident patch gives exactly its word's embedding (the background's
removed), so an image token starts as "the embedding of what this patch shows". The other rows and columns
start at zero output, so instruction tuning can add anything else (positions, counts) on top.
"""

from __future__ import annotations

import math

import torch

from kanva.errors import KanvaError
from kanva.grounding.config import GROUNDINGS

# A saturating unit is the difference of two GELUs this much sharper than the clamp: within ~1% of a hard clamp.
GELU_SHARPNESS = 4.0
SCALED_SHARPEN = 3.0  # the "scaled" readout of label files written before the readout was recorded


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
    if grounding not in GROUNDINGS:
        raise KanvaError(f"patch labels: grounding must be one of {list(GROUNDINGS)}, got {grounding!r}")
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
    r = readout or {"scale": SCALED_SHARPEN, "offset": 0.0}
    proj = model.model.multi_modal_projector
    head = torch.nn.Linear(proj.linear_1.in_features, n_labels)
    with torch.no_grad():
        head.weight.copy_(proj.linear_1.weight[:n_labels] / r["scale"])
        head.bias.copy_((proj.linear_1.bias[:n_labels] - r["offset"]) / r["scale"])
    return head


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
