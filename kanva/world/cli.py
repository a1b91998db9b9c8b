"""`kanva world generate|show`: make an annotated COCO-format world; look at it."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("world", help="generate annotated scenes in COCO format; show them")
    sub = p.add_subparsers(dest="world_command", metavar="SUBCOMMAND", required=True)

    g = sub.add_parser(
        "generate",
        help="render a world: DIR/{split}/*.png + DIR/annotations/{instances,captions}_{split}.json",
        description="Render scenes of COCO categories (OpenMoji glyphs) with COCO instances and captions. "
        "Deterministic for a seed, whatever --workers.",
    )
    g.add_argument("--out", required=True, help="output directory (must not exist unless --overwrite/--resume)")
    for split in ("train", "val", "test", "novel"):
        g.add_argument(f"--{split}", type=int, default=0, metavar="N", help=f"images in the {split} split (default 0)")
    for kind, what in (("sets", "multi-image sets (2-4 images of one scene)"), ("clips", "clips (8-16 frames, mp4 + frames)")):
        g.add_argument(f"--{kind}", nargs="+", default=[], metavar="SPLIT=N",
                       help=f"{what} per split, e.g. --{kind} train=200 test=50 (default none)")
    g.add_argument("--seed", type=int, required=True, help="world seed; each image's seed derives from (seed, split, index)")
    g.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    g.add_argument("--config", default=None, help="WorldConfig YAML (default: the shipped kanva/world/default.yaml)")
    g.add_argument("--workers", type=int, default=2, help="render processes (default 2)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing world in --out")
    g.add_argument("--resume", action="store_true", help="finish an interrupted run in --out (same options)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.set_defaults(func=_generate)

    s = sub.add_parser("show", help="draw a grid of images with boxes, labels and a caption")
    s.add_argument("world", help="a world directory made by `kanva world generate`")
    s.add_argument("--split", default="test", help="split to show (default test)")
    s.add_argument("--n", type=int, default=16, help="number of images (default 16)")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.set_defaults(func=_show)


def _generate(args: argparse.Namespace) -> int:
    from kanva.errors import KanvaError
    from kanva.world.config import load_world_config
    from kanva.world.generate import generate_world

    if args.overwrite and args.resume:
        raise KanvaError("--overwrite and --resume: pick one")
    cfg = load_world_config(args.config)
    counts = {"train": args.train, "val": args.val, "test": args.test, "novel": args.novel}
    sets, clips = _split_counts(args.sets, "--sets"), _split_counts(args.clips, "--clips")
    out = generate_world(
        args.out, counts, seed=args.seed, cfg=cfg, size=args.size, workers=args.workers,
        overwrite=args.overwrite, resume=args.resume, progress=not args.quiet, sets=sets, clips=clips,
    )
    parts = [f"{k}={v}" for k, v in counts.items() if v]
    parts += [f"{kind} {k}={v}" for kind, c in (("sets", sets), ("clips", clips)) for k, v in c.items() if v]
    print(f"world written to {out} ({', '.join(parts)})")
    return 0


def _split_counts(items: list[str], flag: str) -> dict[str, int]:
    """`["train=200", "test=50"]` -> {"train": 200, "test": 50}; a malformed item names the flag."""
    from kanva.errors import KanvaError

    counts: dict[str, int] = {}
    for item in items:
        split, eq, n = item.partition("=")
        if not eq or not n.strip().lstrip("-").isdigit():
            raise KanvaError(f"{flag}: expected SPLIT=N (e.g. train=200), got {item!r}")
        if split in counts:
            raise KanvaError(f"{flag}: split {split!r} given twice")
        counts[split] = int(n)
    return counts


def _show(args: argparse.Namespace) -> int:
    from kanva.world.show import show_world

    print(f"wrote {show_world(args.world, args.out, split=args.split, n=args.n)}")
    return 0
