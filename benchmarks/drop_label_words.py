"""Take one label kind's words out of a grounded projector: does the LM read the remaining tokens?

`ground_projector` (kanva/grounding/projector.py) writes each label's word into columns of the projector's
`linear_2`; zeroing a kind's columns makes every image token what it would be without those labels (a patch
whose only other label is "carrot" becomes exactly " carrot" again), while the encoder and the LM stay as they
are. Used in docs/experiments/2026-11-26-sums-of-words.md: a model whose object tokens were category + side words, with the
side words taken out, answered existence again (77.5 -> 172.5).

    python benchmarks/drop_label_words.py MODEL --labels VISION_MODEL --kind side --out MODEL_WITHOUT
    kanva eval run mme --model MODEL_WITHOUT --data OUT/bench/mme ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a trained model whose projector was grounded by the vision stage")
    ap.add_argument("--labels", required=True, help="the vision model dir (its patch_labels.json)")
    ap.add_argument("--kind", required=True, help="the label kind to take out (category, color, text, side, count)")
    ap.add_argument("--out", required=True, help="where to write the edited model")
    args = ap.parse_args(argv)

    import torch
    from transformers import LlavaForConditionalGeneration

    from kanva.errors import KanvaError

    try:
        labels = json.loads((Path(args.labels) / "patch_labels.json").read_text())
        kinds, rows = labels["kinds"], labels.get("grounding", {}).get("rows", len(labels["kinds"]))
    except (OSError, KeyError, ValueError) as e:
        raise KanvaError(f"{args.labels}: cannot read patch_labels.json: {e}") from None
    n = len(kinds)
    cols = [i for i, k in enumerate(kinds) if k == args.kind]
    if not cols:
        raise KanvaError(f"{args.labels}: no label of kind {args.kind!r} (kinds: {sorted(set(kinds))})")
    # "saturating" grounding writes label i into columns i and n + i; "scaled" into column i only.
    cols += [n + i for i in cols] if rows == 2 * n else []
    model = LlavaForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32)
    with torch.no_grad():
        model.model.multi_modal_projector.linear_2.weight[:, cols] = 0
    out = Path(args.out)
    shutil.copytree(args.model, out, dirs_exist_ok=True)  # processor, kanva.json, ...
    model.save_pretrained(out)
    print(f"zeroed {len(cols)} projector columns ({[labels['words'][i] for i in cols if i < n]}); wrote {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
