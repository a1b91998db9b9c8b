"""Knowledge as yes/no-decidable properties of categories: what "Is there <phrase> in the image?" asks.

Used by the synthetic benchmark's `knowledge` subtask (kanva.eval.synthetic) and by the evolution operator
that asks the same kind of question of training images (kanva.data.ops.knowledge), so both read the KB
the same way.

A question needs a fact about an object in the picture, so answering takes both seeing the object and
knowing the fact: "Is there an animal that eats only plants in this image?" is yes for a giraffe and no
for a dog. Two sources in the KB (docs/design.md API):
- hypernyms: "Is there any ruminant in this image?" (members: `kb.categories_under(h)`, a closed set);
- facts of a known kind and value, phrased by FACT_PHRASES (our wording) for a domain (a COCO
  supercategory), e.g. diet = herbivore -> "an animal that eats only plants".

A "no" must be certain, so a property is asked as absent only when no object present holds it (in any
domain) and every present object of its domain has the fact's kind recorded; free-text fields (uses,
places) are not asked, since a missing entry there does not mean the object lacks the property.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kanva.errors import KanvaError

# A hypernym that covers more categories than this is too generic to be a question ("artifact"); one that
# covers a single category is a synonym ("bat" for baseball bat), which asks no knowledge.
MAX_UNDER = 16
MIN_UNDER = 2

# (fact kind, value) -> (domain supercategory, noun phrase). Kinds chosen because the KB records them for
# every category of their domain, so an absent value is a real "no".
FACT_PHRASES: dict[tuple[str, str], tuple[str, str]] = {
    ("diet", "herbivore"): ("animal", "an animal that eats only plants"),
    ("diet", "carnivore"): ("animal", "an animal that eats mainly meat"),
    ("diet", "omnivore"): ("animal", "an animal that eats both plants and meat"),
    ("can_fly", "yes"): ("animal", "an animal that can fly"),
    ("lays_eggs", "yes"): ("animal", "an animal that lays eggs"),
    ("wild_or_domestic", "wild"): ("animal", "a wild animal"),
    ("wild_or_domestic", "domestic"): ("animal", "a domestic animal"),
    ("travels_on", "water"): ("vehicle", "a vehicle that travels on water"),
    ("travels_on", "air"): ("vehicle", "a vehicle that travels through the air"),
    ("food_group", "fruit"): ("food", "a fruit"),
    ("food_group", "vegetable"): ("food", "a vegetable"),
    ("food_group", "dessert"): ("food", "a dessert"),
}


@dataclass(frozen=True)
class Property:
    phrase: str  # after "Is there": "any ruminant", "an animal that eats only plants"
    predicate: str  # after "Which object in the image is": "a kind of ruminant", "an animal that eats only plants"
    members: frozenset[str]  # categories a "yes" may rest on
    holders: frozenset[str]  # categories that have it in any domain (a "no" needs none of them present)
    kind: str | None = None  # fact kind, for the coverage check
    domain: str | None = None
    hypernym: str | None = None  # for hypernym properties: the KB's is_a value ("ruminant")

    @property
    def is_fact(self) -> bool:
        """A fact of the KB ("an animal that eats only plants"), not a WordNet hypernym ("any chordate")."""
        return self.kind is not None


@dataclass
class KnowledgeIndex:
    properties: list[Property]
    known: frozenset[str]  # categories the KB knows
    supercategory: dict[str, str]
    recorded: dict[str, frozenset[str]]  # category -> fact kinds the KB records for it

    def shown_by(self, shown: set[str]) -> list[Property]:
        """Properties a shown object has: "Is there <phrase> in the image?" is yes."""
        return [p for p in self.properties if p.members & shown]

    def surely_absent(self, present: set[str]) -> list[Property]:
        """Properties no present object has, where that is certain: "Is there <phrase> in the image?" is no."""
        return [p for p in self.properties if not (p.holders & present) and self.decidable(p, present)]

    def decidable(self, p: Property, present: set[str]) -> bool:
        """Whether "no present object has p" is certain for these categories."""
        if not present <= self.known:
            return False
        if not p.is_fact:
            return True
        return all(p.kind in self.recorded[c] for c in present if self.supercategory.get(c) == p.domain)


def _has(fact: Any, value: str) -> bool:
    """A fact value matches exactly or as one of its "a or b" alternatives."""
    s = str(fact).strip()
    return s == value or value in [x.strip() for x in s.split(" or ")]


def build_index(kb: Any, categories: list[str]) -> KnowledgeIndex:
    """Asks the KB (docs/design.md API: `concept`, `categories_under`) once per category."""
    names = set(categories)
    concepts = {}
    for cat in sorted(names):
        try:
            c = kb.concept(cat)
        except (KanvaError, KeyError, LookupError, ValueError):
            continue
        if c is not None:
            concepts[cat] = c
    sup = {cat: str(getattr(c, "supercategory", "") or "") for cat, c in concepts.items()}
    facts = {cat: dict(getattr(c, "facts", None) or {}) for cat, c in concepts.items()}
    hyps = {cat: [str(h).strip() for h in getattr(c, "hypernyms", None) or []] for cat, c in concepts.items()}
    return index_from(names, sup, facts, hyps, lambda h: frozenset(kb.categories_under(h)))


def index_from_view(view: Any, categories: list[str]) -> KnowledgeIndex:
    """The same index from a `kanva.data.kbview.KBView` (its per-category info and hypernym -> members)."""
    names = set(categories)
    info = {c: ci for c, ci in view.info.items() if c in names}
    return index_from(names, {c: ci.supercategory for c, ci in info.items()},
                      {c: dict(ci.kinds) for c, ci in info.items()},
                      {c: list(ci.hypernyms) for c, ci in info.items()},
                      lambda h: view.under.get(h, frozenset()))


def index_from(names: set[str], sup: dict[str, str], facts: dict[str, dict], hyps: dict[str, list[str]],
               under_of: Any) -> KnowledgeIndex:
    """Properties from per-category supercategory, facts and hypernyms; `under_of(h)` lists h's members."""
    props: list[Property] = []
    seen: set[str] = set()
    for cat in sorted(hyps):
        for h in hyps[cat]:
            if not h or h in seen or h in names or h in sup.values():
                continue
            seen.add(h)
            under = frozenset(under_of(h)) & names
            if MIN_UNDER <= len(under) <= MAX_UNDER:
                # "any"/"a kind of" read right for count and mass nouns alike (a ruminant, equipment)
                props.append(Property(f"any {h}", f"a kind of {h}", under, under, hypernym=h))
    for (kind, value), (domain, phrase) in FACT_PHRASES.items():
        holders = frozenset(cat for cat, f in facts.items() if kind in f and _has(f[kind], value))
        members = frozenset(cat for cat in holders if sup[cat] == domain)
        if members:
            props.append(Property(phrase, phrase, members, holders, kind, domain))
    recorded = {cat: frozenset(f) for cat, f in facts.items()}
    return KnowledgeIndex(props, frozenset(sup), sup, recorded)
