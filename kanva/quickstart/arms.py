"""The quickstart's arms: which instruction data each compared model learns from.

The experiment isolates the knowledge base: every arm shares the world, the vision stage, the seed data and the
training recipe with its per-stage token budget, and differs only in its mixture:

- `seed`: the seed instructions only;
- `evolved-noknow`: seed + evolution with every operator that reads the knowledge base off (EvolveConfig.knowledge
  false), everything else as in `evolved`;
- `evolved`: seed + full knowledge-aware evolution.

The headline is knowledge(evolved) - knowledge(evolved-noknow): what the knowledge base adds over evolution
itself. `seed` shows what evolution adds at all (its data hold no yes/no questions). A model is an arm trained at
one training seed; the world, data and vision stage use the run's seed whatever the training seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from kanva.errors import KanvaError


@dataclass(frozen=True)
class Arm:
    name: str
    evolve: str | None  # the evolve data it adds to the seed data: None, "full" or "noknow"
    label: str  # how the report names it


ARMS = {a.name: a for a in (
    Arm("seed", None, "seed only"),
    Arm("evolved-noknow", "noknow", "seed + evolved without KB"),
    Arm("evolved", "full", "seed + evolved"),
)}
DEFAULT_ARMS = ("seed", "evolved-noknow", "evolved")
HEADLINE = ("evolved", "evolved-noknow")  # (with, without): the knowledge subtask's difference is the claim


def parse_arms(value: str | list[str], where: str = "--arms") -> list[str]:
    """Arm names from 'a,b' or a list, in the canonical order; an unknown or repeated name is an error."""
    names = [x.strip() for x in value.split(",")] if isinstance(value, str) else [str(x).strip() for x in value]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in ARMS]
    if unknown:
        raise KanvaError(f"{where}: unknown arm(s) {unknown}; arms: {', '.join(ARMS)}")
    if len(set(names)) != len(names):
        raise KanvaError(f"{where}: an arm is named twice ({names})")
    if not names:
        raise KanvaError(f"{where}: no arm given; arms: {', '.join(ARMS)}")
    return [n for n in ARMS if n in names]


def parse_seeds(value: str, where: str = "--seeds") -> list[int]:
    """Training seeds from '0,1,2' (distinct integers, in the order given)."""
    try:
        seeds = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise KanvaError(f"{where}: {value!r} is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise KanvaError(f"{where}: {value!r}: give one or more distinct integers")
    return seeds


def model_name(arm: str, seed: int, run_seed: int) -> str:
    """A model's name (its folder under train/ and eval/): the arm, with the training seed when it is not the
    run's, so a run at more seeds reuses the models a one-seed run made."""
    return arm if seed == run_seed else f"{arm}-s{seed}"
