"""Per-unit random generators: the same (seed, image, unit, round) always draws the same numbers.

Deriving each unit's generator from its own identity, never from a shared stream, is what makes rule-only
output byte-identical across runs, shard counts, chunk sizes, processing order and restarts.
"""

from __future__ import annotations

import hashlib
import random


def derive(*parts: object) -> int:
    """A 64-bit integer from `parts` (stable across processes and Python versions, unlike `hash`)."""
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def unit_rng(seed: int, image_id: int | str, unit: str, round_: int) -> random.Random:
    """The generator of one unit in one round."""
    return random.Random(derive(seed, image_id, unit, round_))


def stable_order_key(*parts: object) -> int:
    """A reproducible pseudo-random sort key (used to choose which units balancing drops)."""
    return derive("order", *parts)
