"""CLI for kanva.train (placeholder until its issue lands: registers nothing)."""


def register(subparsers) -> None:
    pass
