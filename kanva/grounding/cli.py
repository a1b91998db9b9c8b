"""`kanva grounding`: the vision stage and its scene text.

    kanva grounding pretrain --model BASE --coco WORLD --out VISION [--config vision.yaml] [--steps N] [--seed S] [--resume]
    kanva grounding scene-text --input seed.json --coco WORLD --split train --model VISION --out seed.text.json

`pretrain` trains the vision encoder on per-patch labels from the COCO boxes and writes VISION: a plain Llava
model whose projector maps each patch to the LM's embedding of its label's word, with `patch_labels.json`
(the label space and every setting scene text needs). `scene-text` writes text-only copies of LLaVA samples,
each `<image>` replaced by the words its image tokens stand for, for a reading stage (docs/train.md).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    g = subparsers.add_parser("grounding", help="vision pretraining on per-patch labels; scene text",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = g.add_subparsers(dest="grounding_command", metavar="COMMAND")

    p = sub.add_parser("pretrain", help="train the vision encoder on per-patch labels and ground the projector")
    p.add_argument("--model", required=True, help="the model to start from (e.g. `kanva model build` output)")
    p.add_argument("--coco", default=None, help="COCO root: annotations/instances_{split}.json and {split}/ "
                   "images (overrides the config's `coco`)")
    p.add_argument("--out", required=True, help="the grounded model's folder")
    p.add_argument("--config", default=None, help="YAML of PatchPretrainConfig fields (kanva/grounding/config.py)")
    p.add_argument("--steps", type=int, default=None, help="override the config's steps")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.set_defaults(func=_pretrain)
    add_scene_text(sub, "scene-text")
    g.set_defaults(func=lambda a: (g.print_help(), 1)[1])


def add_scene_text(sub, name: str, note: str = "") -> None:
    """The `scene-text` command (also registered as `kanva data scene-text`, its old name)."""
    p = sub.add_parser(name, help="text-only copies of samples, <image> written as the words its image tokens "
                       "stand for (for a reading stage)" + note)
    p.add_argument("--input", required=True, help="LLaVA JSON/JSONL with one image per sample")
    p.add_argument("--coco", required=True, help="annotation root of the input's images")
    p.add_argument("--split", required=True)
    p.add_argument("--model", required=True, help="a model from `kanva grounding pretrain` (has patch_labels.json)")
    p.add_argument("--out", required=True, help="output LLaVA JSON")
    p.set_defaults(func=_scene_text)


def _pretrain(args: argparse.Namespace) -> int:
    from kanva.errors import KanvaError
    from kanva.grounding.config import PatchPretrainConfig, load_pretrain_config
    from kanva.grounding.pretrain import run_patch_pretrain

    cfg = load_pretrain_config(args.config) if args.config else PatchPretrainConfig()
    for name in ("coco", "steps", "seed"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if not cfg.coco:
        raise KanvaError("kanva grounding pretrain: no COCO root; pass --coco or set `coco` in --config")
    metrics = run_patch_pretrain(args.model, cfg.check(args.config or "kanva grounding pretrain"), args.out,
                                 resume=args.resume)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in metrics.items() if not isinstance(v, dict)),
          file=sys.stderr)
    return 0


def _scene_text(args: argparse.Namespace) -> int:
    from kanva.grounding.scene_text import write_scene_text

    n = write_scene_text(args.input, args.coco, args.split, args.model, args.out)
    print(f"wrote {n} text-only samples to {args.out}", file=sys.stderr)
    return 0
