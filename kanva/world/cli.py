"""CLI for kanva.world (placeholder until its issue lands: registers nothing)."""


def register(subparsers) -> None:
    pass
