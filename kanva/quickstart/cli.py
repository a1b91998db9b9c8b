"""`kanva quickstart`: the Kanva experiment end to end (world -> data -> two models -> eval -> report)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart",
        help="run the whole Kanva loop on embedded defaults (seed vs knowledge-evolved instructions)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="smol",
                   help="smol (default: SmolLM2-135M-Instruct, about 55 min on 2 cores) | tiny (about a minute, for tests)"
                        " | a quickstart YAML (see recipes/quickstart-*.yaml)")
    p.add_argument("--out", default=None, help="where everything goes (default: runs/quickstart-PRESET)")
    p.add_argument("--force", action="append", default=[], metavar="STEP",
                   help="redo STEP (and the steps that depend on it); repeatable; 'all' redoes everything")
    p.add_argument("--until", metavar="STEP", help="stop after STEP")
    p.add_argument("--steps", action="store_true", help="list the steps and exit")
    p.set_defaults(func=_quickstart)


def _quickstart(args) -> int:
    from pathlib import Path

    from kanva.quickstart.config import load_quickstart_config
    from kanva.quickstart.pipeline import Quickstart

    cfg = load_quickstart_config(args.preset)
    name = Path(args.preset).stem.removeprefix("quickstart-")
    q = Quickstart(cfg, args.out or f"runs/quickstart-{name}")
    if args.steps:
        for s in q.steps():
            print(f"{s.name:14s} {s.help}" + (f"  (after: {', '.join(s.after)})" if s.after else ""))
        return 0
    print(f"kanva quickstart: config {cfg.source}, output {q.out}")
    q.run(force=args.force, until=args.until)
    return 0
