"""CLI for kanva.data (placeholder until its issue lands: registers nothing)."""


def register(subparsers) -> None:
    pass
