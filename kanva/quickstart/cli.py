"""CLI for kanva.quickstart (placeholder until its issue lands: registers nothing)."""


def register(subparsers) -> None:
    pass
