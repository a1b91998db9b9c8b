"""What the encoder sees and how well its patch classifier reads it: features, logits, patch and image F1."""

from __future__ import annotations

import torch

from kanva.errors import KanvaError
from kanva.grounding.images import normalize


def vision_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Exactly the features the Llava projector sees (feature layer + select strategy)."""
    cfg = model.config
    out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    feats = out.hidden_states[cfg.vision_feature_layer]
    if cfg.vision_feature_select_strategy == "default":
        feats = feats[:, 1:]
    return feats


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


def patch_logits(model, head, pix_u8, mean, std, batch_size: int = 128):
    """(start index, [batch, patches, labels] classifier logits) over the images, in batches, eval mode."""
    model.eval()
    for s in range(0, len(pix_u8), batch_size):
        yield s, head(vision_features(model, normalize(pix_u8[s : s + batch_size], mean, std)))


@torch.no_grad()
def evaluate_patches(model, head, pix, targets, mean, std, batch_size=128) -> dict:
    """Patch-level F1 and image-level F1 over all labels (an image has a label if any patch has it)."""
    tp = fp = fn = 0
    itp = ifp = ifn = 0
    for s, logits in patch_logits(model, head, pix, mean, std, batch_size):
        pred = logits > 0
        t = targets[s : s + batch_size].bool()
        tp += (pred & t).sum().item()
        fp += (pred & ~t).sum().item()
        fn += (~pred & t).sum().item()
        ip, it = pred.any(1), t.any(1)
        itp += (ip & it).sum().item()
        ifp += (ip & ~it).sum().item()
        ifn += (~ip & it).sum().item()
    return {"patch_f1": f1(tp, fp, fn), "image_f1": f1(itp, ifp, ifn)}


@torch.no_grad()
def feature_rms(model, pix_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> float:
    model.eval()
    return vision_features(model, normalize(pix_u8, mean, std)).pow(2).mean().sqrt().item()


@torch.no_grad()
def median_positive_logit(model, head, pix_u8, targets, mean, std, batch_size: int = 128) -> float:
    """The median classifier logit over the (patch, label) pairs that are positive: how sure the encoder
    typically is when a label is there (it sets the projector's scale, see projector.ground_projector)."""
    pos = torch.cat([logits[targets[s : s + len(logits)] > 0]
                     for s, logits in patch_logits(model, head, pix_u8, mean, std, batch_size)])
    if pos.numel() == 0:
        raise KanvaError("patch labels: no positive patch in the images used to calibrate the projector")
    return max(float(pos.median()), 0.5)  # a floor: an untrained head's median can be ~0 or negative
