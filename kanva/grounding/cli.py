"""`kanva grounding`: the vision stage and its scene text.

    kanva grounding pretrain --model BASE --coco WORLD --out VISION [--config vision.yaml] [--steps N] [--seed S] [--resume]
    kanva grounding labels --model BASE --coco WORLD --out LABELS [--config vision.yaml]
    kanva grounding scene-text --input seed.json --coco WORLD --split train --model VISION|LABELS --out seed.text.json

`pretrain` trains the vision encoder on per-patch labels from the COCO boxes and writes VISION: a plain Llava
model whose projector maps each patch to the LM's embedding of its label's word, with `patch_labels.json`
(the label space and every setting scene text needs). `labels` writes that file alone, before the stage has run:
the world, the config and the tokenizer fix it, so scene text and a reading stage can go on while the encoder
trains (the quickstart does; `kanva model graft` then joins the two). `scene-text` writes text-only copies of LLaVA samples,
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
    lab = sub.add_parser("labels", help="write the label file the vision stage will write (for scene text), "
                         "without training")
    lab.add_argument("--model", required=True, help="the model the vision stage starts from")
    lab.add_argument("--coco", default=None, help="COCO root (overrides the config's `coco`)")
    lab.add_argument("--out", required=True, help="folder to write: config.json, kanva.json, patch_labels.json")
    lab.add_argument("--config", default=None, help="the vision stage's YAML (PatchPretrainConfig fields)")
    lab.set_defaults(func=_labels)
    add_scene_text(sub, "scene-text")
    g.set_defaults(func=lambda a: (g.print_help(), 1)[1])


def add_scene_text(sub, name: str, note: str = "") -> None:
    """The `scene-text` command (also registered as `kanva data scene-text`, its old name)."""
    p = sub.add_parser(name, help="text-only copies of samples, <image> written as the words its image tokens "
                       "stand for (for a reading stage)" + note)
    p.add_argument("--input", required=True, help="LLaVA JSON/JSONL with one image per sample")
    p.add_argument("--coco", required=True, help="annotation root of the input's images")
    p.add_argument("--split", required=True)
    p.add_argument("--model", required=True, help="a model from `kanva grounding pretrain`, or a folder from "
                   "`kanva grounding labels` (has patch_labels.json)")
    p.add_argument("--out", required=True, help="output LLaVA JSON")
    p.set_defaults(func=_scene_text)


def _config(args: argparse.Namespace, command: str):
    """The vision config: --config's file (or the defaults) with the command line's overrides, checked."""
    from kanva.errors import KanvaError
    from kanva.grounding.config import PatchPretrainConfig, load_pretrain_config

    cfg = load_pretrain_config(args.config) if args.config else PatchPretrainConfig()
    for name in ("coco", "steps", "seed"):
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    if not cfg.coco:
        raise KanvaError(f"kanva grounding {command}: no COCO root; pass --coco or set `coco` in --config")
    return cfg.check(args.config or f"kanva grounding {command}")


def _labels(args: argparse.Namespace) -> int:
    from kanva.grounding.pretrain import write_label_folder

    space = write_label_folder(args.model, _config(args, "labels"), args.out)
    print(f"wrote {args.out}: {len(space)} labels", file=sys.stderr)
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from kanva.grounding.pretrain import run_patch_pretrain

    metrics = run_patch_pretrain(args.model, _config(args, "pretrain"), args.out, resume=args.resume)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in metrics.items() if not isinstance(v, dict)),
          file=sys.stderr)
    return 0


def _scene_text(args: argparse.Namespace) -> int:
    from kanva.grounding.scene_text import write_scene_text

    n = write_scene_text(args.input, args.coco, args.split, args.model, args.out)
    print(f"wrote {n} text-only samples to {args.out}", file=sys.stderr)
    return 0
