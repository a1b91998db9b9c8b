"""`kanva quickstart`: the Kanva experiment end to end (world -> data -> three arms of models -> eval -> report)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart",
        help="run the whole Kanva loop on embedded defaults (seed, evolved without KB, knowledge-evolved)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="smol",
                   help="smol (default: SmolLM2-135M-Instruct, three arms; about 80 min on 2 cores) "
                        "| tiny (about a minute, for tests) | onevision (single-image then OneVision curriculum, "
                        "recipes/onevision-smol.yaml) | onevision-tiny"
                        " | a quickstart YAML (see recipes/quickstart-*.yaml, recipes/onevision-*.yaml)")
    p.add_argument("--out", default=None, help="where everything goes (default: runs/quickstart-PRESET)")
    p.add_argument("--force", action="append", default=[], metavar="STEP",
                   help="redo STEP (and the steps that depend on it); repeatable; 'all' redoes everything")
    p.add_argument("--until", metavar="STEP", help="stop after STEP")
    p.add_argument("--steps", action="store_true", help="list the steps and exit")
    p.add_argument("--arms", default=None, help="the compared models, comma-separated among seed, evolved-noknow, "
                   "evolved (default: the config's `arms`, all three)")
    p.add_argument("--seeds", default=None, help="training seeds, e.g. 0,1,2: every arm is trained at each (world, "
                   "data and vision shared) and the report gives mean and spread (default: the config's seed)")
    p.add_argument("--jobs", type=int, default=None, help="run up to N independent steps at once, each in a process "
                   "of its own, its progress in OUT/logs/STEP.log (default: 2 where the machine has 2 or more cores, "
                   "else 1); a step's output does not depend on N")
    p.add_argument("--only", metavar="STEP", help=argparse.SUPPRESS)  # one step, its inputs done (what --jobs runs)
    p.set_defaults(func=_quickstart)


def _quickstart(args) -> int:
    from pathlib import Path

    from kanva.errors import KanvaError
    from kanva.quickstart.arms import parse_arms, parse_seeds
    from kanva.quickstart.config import load_quickstart_config
    from kanva.quickstart.pipeline import Quickstart

    if args.jobs is None:
        args.jobs = default_jobs()
    if args.jobs < 1:
        raise KanvaError(f"--jobs {args.jobs}: must be >= 1")
    cfg = load_quickstart_config(args.preset)
    name = Path(args.preset).stem.removeprefix("quickstart-")
    arms = parse_arms(args.arms) if args.arms is not None else cfg.arms
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [cfg.seed]
    if getattr(cfg, "onevision", None) is not None:  # the single-image -> OneVision curriculum
        from kanva.quickstart.onevision import OnevisionQuickstart as Quickstart  # noqa: F811
    q = Quickstart(cfg, args.out or f"runs/quickstart-{name}", arms=arms, seeds=seeds)
    if args.steps:
        from kanva.quickstart.steps import StepRunner

        steps = q.steps()
        plan = StepRunner(q.out, steps, log=lambda _: None).plan(force=args.force)
        width = max(len(t.name) for t in steps)
        state = max(len(v) for v in plan.values())
        for s in steps:
            print(f"{s.name:{width}s}  {plan[s.name]:{state}s}  {s.help}"
                  + (f"  (after: {', '.join(s.after)})" if s.after else ""))
        return 0
    if args.only is None:
        print(f"kanva quickstart: config {cfg.source}, output {q.out}, arms {', '.join(arms)}, training seeds "
              f"{', '.join(map(str, seeds))}")
    q.run(force=args.force, until=args.until, jobs=args.jobs, only=args.only)
    return 0


def default_jobs() -> int:
    """Two steps at once where there are two cores: the arms' reading stages, the vision stage and the evaluations
    are independent, and two at once do a little more work than one after the other (1.06x for the vision and a
    reading stage: docs/experiments/2026-12-08-reading-stages-beside-the-vision-stage.md). More would only split the
    same cores further. Each step keeps torch's default threads, so its output is the same whatever the number."""
    import os

    return 2 if (os.cpu_count() or 1) >= 2 else 1
