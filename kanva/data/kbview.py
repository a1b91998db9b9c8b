"""A read-only, precomputed view of the knowledge base for the categories of one annotation set.

The operators ask the same questions of the KB for every unit (hypernyms of a category, which categories fall
under a hypernym, siblings, uses); asking once per category at start keeps rule-only evolution fast and
makes the operators independent of how `kanva.knowledge` stores things. Any object with the API in
docs/design.md (`concept`, `facts`, `siblings`) works, so tests can pass a small KB of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kanva.errors import KanvaError

# Hypernyms too generic to ask about ("Is the animal a kind of object?"), familiar words or not: classes of
# trade or of function that name no kind of thing one sees ("a kind of commodity", "of covering", "of passage").
TRIVIAL_HYPERNYMS = frozenset({
    "object", "thing", "entity", "physical entity", "whole", "artifact", "artefact", "physical object", "item",
    "unit", "matter", "living thing", "organism", "instrumentality", "abstraction", "creation", "commodity",
    "consumer goods", "durables", "white goods", "ware", "covering", "protective covering", "fixture", "passage",
    "conduit",
})


# A fact as recorded in provenance: (subject, relation, value, source).
FactTuple = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class ConceptInfo:
    name: str
    gloss: str
    supercategory: str
    hypernyms: tuple[str, ...]  # nearest first
    uses: tuple[str, ...]
    places: tuple[str, ...]
    parts: tuple[str, ...]
    kinds: tuple[tuple[str, str], ...]  # (fact kind, value) from `concept.facts`, sorted by kind
    facts: tuple[FactTuple, ...]  # everything kb.facts() lists, for provenance lookups
    sources: dict[str, str]


def _strs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value if str(v).strip())


class KBView:
    """Per-category knowledge for `categories` (categories the KB does not know are simply absent)."""

    def __init__(self, kb: Any, categories: Iterable[str]):
        self.info: dict[str, ConceptInfo] = {}
        self._siblings: dict[str, tuple[str, ...]] = {}
        # Hypernyms a general reader would not use ("chordate", "conveyance": kanva/knowledge/familiarity.py,
        # when the KB measures it) and too generic ones are left out of every chain: they are never asked.
        familiar = getattr(kb, "familiar", None) or (lambda name: True)
        for cat in sorted(set(categories)):
            try:
                c = kb.concept(cat)
            except (KeyError, LookupError, KanvaError, ValueError):
                continue
            if c is None:
                continue
            facts = tuple(
                (str(f.subject), str(f.relation), str(f.value), str(getattr(f, "source", "") or ""))
                for f in kb.facts(cat)
            )
            raw_kinds = getattr(c, "facts", None) or {}
            self.info[cat] = ConceptInfo(
                name=cat,
                gloss=str(getattr(c, "gloss", "") or ""),
                supercategory=str(getattr(c, "supercategory", "") or ""),
                hypernyms=tuple(h for h in _strs(getattr(c, "hypernyms", ()))
                                if h not in TRIVIAL_HYPERNYMS and familiar(h)),
                uses=_strs(getattr(c, "uses", ())),
                places=_strs(getattr(c, "places", ())),
                parts=_strs(getattr(c, "parts", ())),
                kinds=tuple(sorted((str(k), str(v)) for k, v in dict(raw_kinds).items() if str(v).strip())),
                facts=facts,
                sources={str(k): str(v) for k, v in dict(getattr(c, "sources", None) or {}).items()},
            )
            try:
                self._siblings[cat] = tuple(s for s in kb.siblings(cat) if s != cat)
            except (KeyError, LookupError, KanvaError, ValueError):
                self._siblings[cat] = ()
        # hypernym -> categories under it (among the ones known here)
        self.under: dict[str, frozenset[str]] = {}
        acc: dict[str, set[str]] = {}
        for cat, ci in self.info.items():
            for h in ci.hypernyms:
                acc.setdefault(h, set()).add(cat)
        self.under = {h: frozenset(cs) for h, cs in acc.items()}
        # fact kind -> every value some category has (wrong answers and "no" claims come from here)
        kv: dict[str, set[str]] = {}
        for ci in self.info.values():
            for k, v in ci.kinds:
                kv.setdefault(k, set()).add(v)
        self.kind_values: dict[str, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in kv.items()}

    @classmethod
    def empty(cls) -> KBView:
        """A view that knows nothing: what evolution without the knowledge base gives its operators."""
        return cls(None, ())

    def __contains__(self, cat: str) -> bool:
        return cat in self.info

    def __len__(self) -> int:
        return len(self.info)

    def get(self, cat: str) -> ConceptInfo | None:
        return self.info.get(cat)

    def is_a(self, cat: str, hypernym: str) -> bool:
        ci = self.info.get(cat)
        return ci is not None and hypernym in ci.hypernyms

    def siblings(self, cat: str) -> tuple[str, ...]:
        return self._siblings.get(cat, ())

    def fact(self, cat: str, relation: str, value: str, field: str) -> FactTuple:
        """The KB's own Fact for (cat, value) when it lists one, else one built from the concept field.

        Provenance should cite what the KB says, with its source; concept fields (hypernyms, uses, ...) carry
        their source in `concept.sources[field]`.
        """
        ci = self.info[cat]
        for f in ci.facts:
            if f[1] == relation and f[2] == value:
                return f
        for f in ci.facts:  # the same value under the KB's own name for the relation
            if f[2] == value:
                return f
        return (cat, relation, value, ci.sources.get(field, ""))
