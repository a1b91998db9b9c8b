"""The one CLI, `kanva`. Each package owns its subcommands in `kanva/<pkg>/cli.py`:

    def register(subparsers) -> None   # adds its parser(s); sets `func=handler` via set_defaults

Handlers import heavy modules (torch, transformers) inside the function, so `kanva --help` stays fast.
A KanvaError becomes `error: <message>` on stderr and a non-zero exit; other exceptions keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from kanva import __version__
from kanva.errors import KanvaError

# Order is the order shown in --help: the flow of the project.
COMMAND_MODULES = [
    "kanva.world.cli",  # world generate|show
    "kanva.knowledge.cli",  # knowledge build
    "kanva.data.cli",  # data seed|evolve|report|merge
    "kanva.model.cli",  # model build|prepare|check-data
    "kanva.grounding.cli",  # grounding pretrain|scene-text
    "kanva.train.cli",  # train
    "kanva.infer.cli",  # chat
    "kanva.eval.cli",  # eval score|run|make-synthetic|report
    "kanva.serve.cli",  # serve, export
    "kanva.quickstart.cli",  # quickstart
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kanva", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kanva {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting make torch several times slower on a busy or small CPU
    # (measured here: 7.7 s instead of 35.9 s per smol forward/backward on 2 shared cores). Set before
    # torch is imported; a value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        rc = args.func(args)
    except KanvaError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
