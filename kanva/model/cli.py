"""CLI for kanva.model: `kanva model build|prepare|convert|graft|check-data`."""

from __future__ import annotations

import argparse


def _parse_set(items: list[str]) -> dict:
    import yaml

    from kanva.errors import KanvaError

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise KanvaError(f"--set {item!r}: expected KEY=VALUE (e.g. vision_config.num_hidden_layers=6)")
        out[key] = yaml.safe_load(value)  # typed like YAML: 6 -> int, null -> None, text -> str
    return out


def cmd_build(args: argparse.Namespace) -> int:
    from kanva.model.build import build_preset

    out = build_preset(args.preset, args.out, seed=args.seed, overrides=_parse_set(args.set), force=args.force)
    print(out)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    import time

    from kanva.model.lm import prepare_smollm2

    t = time.perf_counter()
    path = prepare_smollm2(force=args.force)
    print(f"{path}  ({time.perf_counter() - t:.1f} s)")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    """Encode every sample of a LLaVA file with a model's processor: the training path, without training."""
    from collections import Counter
    from pathlib import Path

    from tqdm import tqdm

    from kanva.data.llava import SampleError, format_skips, load_llava_checked
    from kanva.model.processor import KanvaProcessor

    proc = KanvaProcessor.from_pretrained(args.model)
    samples, skipped = load_llava_checked(args.data, skip_invalid=args.skip_invalid)
    image_root = Path(args.image_root) if args.image_root else Path(args.data).parent
    tokens = truncated = 0
    kept = 0
    for s in tqdm(samples, desc="encode", unit="sample"):
        try:
            enc = proc.encode(s, image_root=image_root, max_length=args.max_length, template=args.template,
                              source=str(args.data))
        except SampleError as e:
            if not args.skip_invalid:
                raise
            skipped[e.reason] += 1
            continue
        kept += 1
        tokens += len(enc.input_ids)
        truncated += bool(enc.truncated)
    print(f"{kept} samples ok, {tokens} tokens, {truncated} truncated to max_length {args.max_length}")
    if args.skip_invalid:
        print(format_skips(Counter(skipped)))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from kanva.model.convert import convert_original

    out = convert_original(args.src, args.out, vision=args.vision, template=args.template, force=args.force)
    print(out)
    return 0


def cmd_graft(args: argparse.Namespace) -> int:
    from kanva.model.graft import graft

    print(graft(args.lm, args.vision, args.out, force=args.force))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="build LLaVA models from parts; prepare the embedded LM")
    sub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    b = sub.add_parser("build", help="assemble a preset into a plain transformers checkpoint")
    b.add_argument("--preset", required=True, help="tiny | smol | llava-1.5-7b")
    b.add_argument("--out", required=True, help="model directory to write")
    b.add_argument("--seed", type=int, default=0, help="seed of the randomly initialised parts")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, dotted for nested (e.g. vision_config.num_hidden_layers=6)")
    b.add_argument("--force", action="store_true", help="replace an existing --out")
    b.set_defaults(func=cmd_build)

    pr = sub.add_parser("prepare", help="convert the embedded SmolLM2 GGUF once into the cache")
    pr.add_argument("--force", action="store_true", help="convert again even if cached")
    pr.set_defaults(func=cmd_prepare)

    cv = sub.add_parser("convert", help="original-format LLaVA checkpoint (mm_projector.* weights) -> Kanva model")
    cv.add_argument("src", help="the original folder: a causal-LM config with mm_vision_tower, weights with mm_projector.*")
    cv.add_argument("--out", required=True, help="model directory to write")
    cv.add_argument("--vision", help="the CLIP checkpoint to use instead of the config's mm_vision_tower (a local copy)")
    cv.add_argument("--template", choices=["vicuna_v1", "chatml"], default="vicuna_v1",
                    help="chat template of the LM (LLaVA-1.5: vicuna_v1, the default)")
    cv.add_argument("--force", action="store_true", help="replace an existing --out")
    cv.set_defaults(func=cmd_convert)

    g = sub.add_parser("graft", help="one model's language model with another's vision tower and projector")
    g.add_argument("--lm", required=True, help="the model whose language model to keep (e.g. a reading stage's output)")
    g.add_argument("--vision", required=True, help="the model whose vision tower and projector to take "
                   "(e.g. `kanva grounding pretrain` output)")
    g.add_argument("--out", required=True, help="model directory to write")
    g.add_argument("--force", action="store_true", help="replace an existing --out")
    g.set_defaults(func=cmd_graft)

    c = sub.add_parser("check-data", help="encode a LLaVA file with a model's processor; report bad samples")
    c.add_argument("--model", required=True, help="model directory")
    c.add_argument("--data", required=True, help="LLaVA JSON/JSONL file")
    c.add_argument("--image-root", help="folder image paths are relative to (default: the data file's folder)")
    c.add_argument("--max-length", type=int, default=2048)
    c.add_argument("--template", choices=["chat", "plain"], default="chat")
    c.add_argument("--skip-invalid", action="store_true", help="skip bad samples and count them per reason")
    c.set_defaults(func=cmd_check_data)
