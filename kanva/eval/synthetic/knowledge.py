"""Knowledge the synthetic `knowledge` questions ask about: what kind of thing a visible object is
(its KB hypernyms, e.g. "ruminant", "herbivore") and what it is used for (its KB uses).

A question needs a fact about an object in the picture, so answering takes both seeing the object and
knowing the fact: "Is there a ruminant in this image?" is yes for a giraffe and no for a horse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A hypernym that covers more categories than this is too generic to be a question ("object", "entity").
MAX_UNDER = 16


@dataclass
class KnowledgeIndex:
    kinds: dict[str, list[str]]  # category -> usable hypernyms, nearest first
    uses: dict[str, list[str]]  # category -> uses
    under: dict[str, frozenset[str]]  # hypernym -> categories under it (of all the KB knows)
    known: frozenset[str]  # categories the KB knows

    def users(self, use: str) -> set[str]:
        """Categories the KB lists `use` for."""
        return {c for c, us in self.uses.items() if use in us}


def build_index(kb: Any, categories: list[str]) -> KnowledgeIndex:
    """Asks the KB once per category (API of docs/design.md: concept, categories_under)."""
    names = set(categories)
    kinds: dict[str, list[str]] = {}
    uses: dict[str, list[str]] = {}
    under: dict[str, frozenset[str]] = {}
    known = set()
    for cat in sorted(names):
        try:
            c = kb.concept(cat)
        except (KeyError, LookupError, ValueError):
            continue
        if c is None:
            continue
        known.add(cat)
        supercategory = str(getattr(c, "supercategory", "") or "")
        usable = []
        for h in getattr(c, "hypernyms", None) or []:
            h = str(h).strip()
            if not h or h in names or h == supercategory or h in usable:
                continue
            if h not in under:
                under[h] = frozenset(kb.categories_under(h))
            if 1 <= len(under[h]) <= MAX_UNDER:
                usable.append(h)
        kinds[cat] = usable
        uses[cat] = [str(u).strip() for u in getattr(c, "uses", None) or [] if str(u).strip()]
    return KnowledgeIndex(kinds, uses, {h: v for h, v in under.items() if 1 <= len(v) <= MAX_UNDER}, frozenset(known))
