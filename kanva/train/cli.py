"""`kanva train`: run a recipe's stages, or write the toy data set.

    kanva train --toy-data data/toy
    kanva train --recipe recipes/tiny.yaml --out runs/tiny [--stage NAME] [--resume] [--skip-invalid] [--max-steps N]
    kanva train --recipe recipes/llava-1.5.yaml --plan [--gpus 8] [--gpu-mem 80] [--accelerate-config FILE]
    accelerate launch --num_processes 2 -m kanva train --recipe ... --out ...   # DDP (see docs/train.md)
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model through a recipe's stages (accelerate: CPU, GPU, DDP, FSDP, DeepSpeed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipe", help="recipe YAML (see recipes/ and docs/train.md)")
    p.add_argument("--out", help="run folder: OUT/<stage>/{final,checkpoints,metrics.jsonl}")
    p.add_argument("--stage", help="run only this stage (it starts from the previous stage's final model)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoints in --out")
    p.add_argument("--skip-invalid", action="store_true", help="skip invalid samples and count them per reason")
    p.add_argument("--max-steps", type=int, help="stop after this many steps of a stage (checkpointed; --resume continues)")
    p.add_argument("--plan", action="store_true",
                   help="print each stage's memory per GPU (weights, grads, optimizer, activations) and whether it fits; "
                        "then exit")
    p.add_argument("--gpus", type=int, help="--plan: processes (default: the accelerate config's num_processes, else 1)")
    p.add_argument("--gpu-mem", type=float, default=80.0, help="--plan: memory per GPU in GiB (default 80)")
    p.add_argument("--accelerate-config", metavar="FILE",
                   help="--plan: the accelerate config the run will use (default: accelerate's default config, else DDP)")
    p.add_argument("--toy-data", metavar="DIR", help="write the toy data set (images + LLaVA JSON) into DIR and exit")
    p.set_defaults(func=_train)


def _train(args) -> int:
    from kanva.errors import KanvaError

    if args.toy_data:
        from kanva.train.toy import make_toy_data

        paths = make_toy_data(args.toy_data)
        print(f"wrote {paths['captions']}, {paths['instruct']} and {paths['images']}/")
        if not args.recipe:
            return 0
    if args.plan:
        if not args.recipe:
            raise KanvaError("kanva train --plan needs --recipe FILE")
        if args.gpus is not None and args.gpus < 1 or not args.gpu_mem > 0:
            raise KanvaError(f"--gpus must be >= 1 and --gpu-mem > 0, got {args.gpus} and {args.gpu_mem}")
        from kanva.train.plan import engine_from_accelerate, format_plan
        from kanva.train.recipe import load_recipe

        recipe = load_recipe(args.recipe)
        engine = engine_from_accelerate(args.accelerate_config, args.gpus, recipe.mixed_precision)
        print(format_plan(recipe, engine, args.gpu_mem))
        return 0
    if not args.recipe or not args.out:
        raise KanvaError("kanva train needs --recipe FILE and --out DIR (or --toy-data DIR, or --plan)")
    if args.max_steps is not None and args.max_steps < 1:
        raise KanvaError(f"--max-steps: must be >= 1, got {args.max_steps}")

    from kanva.train.recipe import load_recipe

    recipe = load_recipe(args.recipe)  # before torch: a bad recipe fails in a blink
    from kanva.train.trainer import run_recipe

    run_recipe(
        recipe, args.out, stage=args.stage, resume=args.resume, skip_invalid=args.skip_invalid, max_steps=args.max_steps
    )
    return 0
