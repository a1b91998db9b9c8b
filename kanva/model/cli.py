"""CLI for kanva.model (placeholder until its issue lands: registers nothing)."""


def register(subparsers) -> None:
    pass
