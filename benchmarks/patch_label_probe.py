"""How well does a vision-pretrained model see each kind of label? Per kind: image F1, patch F1, logit scale.

    python benchmarks/patch_label_probe.py OUT/models/vision --coco OUT/world [--split test]

The vision pretraining stage (kanva/grounding/pretrain.py) puts its patch classifier into the first rows of
the projector's `linear_1` (scaled and shifted as its `grounding` says, recorded in patch_labels.json); this
reads it back from there (`classifier_from_projector`) and scores it on a COCO split against the same
per-patch targets the stage trains on (`patch_targets`, the label space's `color_cells` and `object_cells`):
- patch F1: a (patch, label) pair is predicted when its logit is > 0;
- image F1: an image has a label when any of its patches does (what an existence question needs);
- patches firing 2+: patches where two or more labels of the kind pass (two numbers on one patch, "one" and "two",
  give a token that is the sum of two words; docs/experiments/2026-11-27-one-number-per-object.md);
- exact: of the patches with a label of the kind, the share whose predicted labels of the kind are exactly those;
- median logit of the positive pairs: under the `scaled` grounding the projector maps the global median
  (patch_labels.json's `positive_logit`) to the label's whole word, so a kind whose median is well below it
  reaches the LM as part of a word (under `saturating`, any logit past 0.5 gives the whole word).
Prints one table row per label kind. Used for docs/experiments/2026-11-26-data-mix.md and #objects-as-tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a model dir from the vision pretraining stage (has patch_labels.json)")
    ap.add_argument("--coco", required=True, help="COCO root (the world `kanva world generate` wrote)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sharpen", type=float, default=None,
                    help="for a patch_labels.json without a recorded grounding (before session 6): the `scaled` "
                         "grounding's sharpen (default PatchPretrainConfig.sharpen)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from kanva.data.coco import load_coco
    from kanva.grounding.evaluate import f1, patch_logits
    from kanva.grounding.images import load_images
    from kanva.grounding.labels import load_label_space
    from kanva.grounding.projector import classifier_from_projector
    from kanva.grounding.targets import patch_targets

    model_dir = Path(args.model)
    space, size, patch = load_label_space(model_dir)
    meta = json.loads((model_dir / "patch_labels.json").read_text())  # for the run's metrics in the header
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    ip = AutoProcessor.from_pretrained(model_dir).image_processor
    n = len(space)
    readout = meta.get("grounding")  # how ground_projector wrote the classifier into linear_1
    if readout is None and args.sharpen:
        readout = {"scale": args.sharpen, "offset": 0.0}
    head = classifier_from_projector(model, n, readout)
    mean, std = torch.tensor(ip.image_mean), torch.tensor(ip.image_std)
    coco = load_coco(args.coco, args.split, captions=False)
    images, pix = load_images(coco, size)
    tmap = patch_targets(coco, space, size, patch)  # at the min_cover the label file records
    targets = torch.from_numpy(np.stack([tmap[im.id] for im in images])).bool()
    with torch.no_grad():
        logits = torch.cat([lg for _, lg in patch_logits(model, head, pix, mean, std)])

    print(f"{model_dir} on {args.split} ({len(images)} images; global positive_logit "
          f"{meta.get('metrics', {}).get('positive_logit', '-')}, color_cells {space.color_cells})")
    print("| label kind | labels | positive patches | patch F1 | image F1 | patches firing 2+ | exact "
          "| median logit of a positive patch |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in dict.fromkeys(space.kinds):
        cols = [i for i, k in enumerate(space.kinds) if k == kind]
        lg, t = logits[:, :, cols], targets[:, :, cols]
        p = lg > 0
        patch_f1 = f1((p & t).sum().item(), (p & ~t).sum().item(), (~p & t).sum().item())
        pi, ti = p.any(1), t.any(1)
        image_f1 = f1((pi & ti).sum().item(), (pi & ~ti).sum().item(), (~pi & ti).sum().item())
        med = f"{lg[t].median().item():.2f}" if t.any() else "-"
        multi = int((p.sum(-1) > 1).sum())
        labelled = t.any(-1)
        exact = ((p == t).all(-1) & labelled).sum().item() / max(1, int(labelled.sum()))
        print(f"| {kind} | {len(cols)} | {int(t.sum())} | {patch_f1:.3f} | {image_f1:.3f} | {multi} | {exact:.2f} | {med} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
