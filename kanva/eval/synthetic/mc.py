"""Four-option multiple choice for the multi-image and video sets: a question's draft, and where its answer goes.

A builder (kanva/eval/synthetic/multi.py, video.py) drafts each question as the right option, a pool of
options that are wrong by construction, and the facts the answer rests on; `place` then makes every question
four options with its answer letter balanced per task: letters are dealt in blocks of four, each block a
seeded shuffle of A-D, so over a task the letters differ in count by at most one and a model that always says
"A" scores chance. The wrong options are drawn from the pool with the same RNG, seeded by (seed, task), so
the output is a function of the drafts' order and the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kanva.errors import KanvaError

N_OPTIONS = 4
LETTERS = "ABCD"


@dataclass(frozen=True)
class Draft:
    task: str
    question: str
    right: str
    wrong: tuple[str, ...]  # wrong by construction; at least three, none equal to `right`
    kind: str = "perception"  # or "knowledge": the answer needs a fact of the knowledge base
    source: dict = field(default_factory=dict)  # where it came from (set_id / clip_id, split)
    facts: dict = field(default_factory=dict)  # what the answer rests on, for readers of the file


@dataclass(frozen=True)
class Placed:
    draft: Draft
    options: tuple[str, ...]
    answer: str  # letter

    @property
    def right_text(self) -> str:
        return self.options[LETTERS.index(self.answer)]


def draft(task: str, question: str, right: str, wrong, kind: str = "perception", source: dict | None = None,
          facts: dict | None = None) -> Draft | None:
    """A Draft, or None when fewer than three distinct wrong options exist (the question is not asked)."""
    pool = tuple(dict.fromkeys(w for w in wrong if w != right))
    if len(pool) < N_OPTIONS - 1:
        return None
    return Draft(task, question, right, pool, kind, source or {}, facts or {})


def place(drafts: list[Draft], seed: int) -> list[Placed]:
    """Four options per draft, answer letters balanced per task (see the module docstring)."""
    rngs: dict[str, random.Random] = {}
    deal: dict[str, list[int]] = {}
    out = []
    for d in drafts:
        if d.right in d.wrong or len(d.wrong) < N_OPTIONS - 1:
            raise KanvaError(f"{d.task}: question {d.question!r} needs {N_OPTIONS - 1} wrong options other than the answer")
        rng = rngs.setdefault(d.task, random.Random(f"{seed}:{d.task}:options"))
        block = deal.setdefault(d.task, [])
        if not block:
            block.extend(rng.sample(range(N_OPTIONS), N_OPTIONS))
        pos = block.pop()
        others = rng.sample(list(d.wrong), N_OPTIONS - 1)
        options = others[:pos] + [d.right] + others[pos:]
        out.append(Placed(d, tuple(options), LETTERS[pos]))
    return out
