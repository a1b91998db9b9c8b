"""CLI for kanva.infer (placeholder until its issue lands: registers nothing)."""


def register(subparsers) -> None:
    pass
