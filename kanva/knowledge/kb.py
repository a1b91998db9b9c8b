"""The knowledge base of the 80 COCO categories: a curated JSON file and a small lookup API.

File layout (`coco_kb.json`):
- `categories`: name -> {coco_id, supercategory, synset, gloss, hypernyms (nearest first), places, uses,
  parts, facts {kind: value}, sources {field: source}}. A source is a WordNet 3.0 synset name
  (`giraffe.n.01`), "curated" (written by hand) or, for the supercategory only, "coco".
- `concepts`: every other name used in a hypernym chain ("ruminant", "even-toed ungulate", ...):
  {synset, gloss, hypernym (its parent or null at the top), sources {gloss, hypernym}}.
- `wordnet`: how chains were cut from WordNet (`tops`), curated links above a top (`bridges`), and names
  given to synsets whose first lemma would clash (`names`); read by the optional builder only.
- `familiarity` (in every category and concept, optional): {zipf, sense, tags, familiar}, written by the
  builder (kanva/knowledge/familiarity.py); question generation asks only familiar hypernyms.
- `vocabulary` (optional): the noun list a KB was built for (`kanva knowledge build --vocab`); such a KB
  holds that list's categories instead of COCO's 80, `coco_id` being the category's line in the list.

A chain is the walk up the parent links, so `hypernyms` of a category must equal that walk; `validate_kb`
checks this, the 80 categories, and that every fact has a source.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from kanva.errors import KanvaError
from kanva.jsonfile import read_json

SYNSET_RE = re.compile(r"^[a-z0-9_.'-]+\.n\.\d\d$")
LIST_FIELDS = ("places", "uses", "parts")


@dataclass(frozen=True)
class Fact:
    """One sourced statement: (subject, relation, value, source); e.g. ("giraffe", "is_a", "ruminant", "giraffe.n.01")."""

    subject: str
    relation: str
    value: str | int
    source: str


@dataclass(frozen=True)
class Concept:
    """A category (coco_id set) or an intermediate concept of a hypernym chain (coco_id None, no places/uses/...)."""

    name: str
    coco_id: int | None
    supercategory: str | None
    gloss: str
    hypernyms: tuple[str, ...]  # nearest first
    places: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()
    facts: dict[str, str | int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    synset: str | None = None

    @property
    def is_category(self) -> bool:
        return self.coco_id is not None


def default_kb_path() -> Path:
    return Path(str(resources.files("kanva.knowledge") / "coco_kb.json"))


def _is_source(value: object, allow_coco: bool = False) -> bool:
    return isinstance(value, str) and (value == "curated" or (allow_coco and value == "coco") or bool(SYNSET_RE.match(value)))


def _parent_map(data: dict) -> dict[str, str | None]:
    parents: dict[str, str | None] = {n: (c.get("hypernyms") or [None])[0] for n, c in data["categories"].items()}
    for n, c in data["concepts"].items():
        parents[n] = c.get("hypernym")
    return parents


def validate_kb(data: dict, where: str = "knowledge base") -> None:
    """Raise KanvaError listing every problem: missing or extra categories, wrong COCO ids, unsourced
    facts, hypernyms that name no concept, chains that disagree with the parent links, unused concepts."""
    from kanva.world.coco import COCO_CATEGORIES

    problems: list[str] = []
    cats = data.get("categories")
    concepts = data.get("concepts")
    if not isinstance(cats, dict) or not isinstance(concepts, dict):
        raise KanvaError(f"{where}: needs 'categories' and 'concepts' mappings")
    if data.get("vocabulary"):  # built for a noun list: any categories, ids unique
        expected = {}
        ids = [c.get("coco_id") for c in cats.values() if isinstance(c, dict)]
        if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
            problems.append("categories: coco_id must be distinct integers")
    else:
        expected = {name: (cid, sup) for cid, name, sup in COCO_CATEGORIES}
    for name in sorted(set(expected) - set(cats)):
        problems.append(f"category {name!r} missing")
    for name in sorted(set(cats) - set(expected)) if expected else ():
        problems.append(f"category {name!r} is not a COCO category")
    clash = sorted(set(cats) & set(concepts))
    if clash:
        problems.append(f"names both a category and a concept: {clash}")
    parents = _parent_map(data)
    used: set[str] = set()
    for name, c in cats.items():
        at = f"categories.{name}"
        if name in expected and (c.get("coco_id"), c.get("supercategory")) != expected[name]:
            problems.append(f"{at}: coco_id/supercategory {c.get('coco_id')}/{c.get('supercategory')} != COCO {expected[name]}")
        src = c.get("sources") or {}
        if not isinstance(c.get("gloss"), str) or not c["gloss"].strip():
            problems.append(f"{at}.gloss: empty")
        syn = c.get("synset")
        if syn is not None and not SYNSET_RE.match(str(syn)):
            problems.append(f"{at}.synset: {syn!r} is not a WordNet noun synset name")
        if syn is None and (src.get("gloss") != "curated" or src.get("hypernyms") != "curated"):
            problems.append(f"{at}: no synset, so gloss and hypernyms must be sourced 'curated'")
        if syn is not None and src.get("gloss") != syn:
            problems.append(f"{at}.sources.gloss: {src.get('gloss')!r} != synset {syn!r}")
        chain = c.get("hypernyms")
        if not isinstance(chain, list) or not chain or not all(isinstance(h, str) for h in chain):
            problems.append(f"{at}.hypernyms: need a non-empty list of names")
            chain = []
        for h in chain:
            if h not in cats and h not in concepts:
                problems.append(f"{at}.hypernyms: {h!r} is neither a category nor a concept (dangling)")
        walk, node, seen = [], parents.get(name), {name}
        while node is not None and node not in seen and node in parents:
            walk.append(node)
            seen.add(node)
            node = parents[node]
        if chain and walk != chain:
            problems.append(f"{at}.hypernyms: {chain} disagrees with the parent links {walk}")
        used.update(chain)
        for f in LIST_FIELDS:
            v = c.get(f)
            if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
                problems.append(f"{at}.{f}: need a list of non-empty strings")
        facts = c.get("facts")
        if not isinstance(facts, dict) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in facts.values()):
            problems.append(f"{at}.facts: need a mapping kind -> string or integer")
            facts = {}
        needed = ["gloss", "hypernyms", "supercategory"] + [f for f in LIST_FIELDS if c.get(f)] + (["facts"] if facts else [])
        for f in needed:
            if not _is_source(src.get(f), allow_coco=(f == "supercategory")):
                problems.append(f"{at}.sources.{f}: {src.get(f)!r} is not a synset name or 'curated'")
    for name, c in concepts.items():
        at = f"concepts.{name}"
        src = c.get("sources") or {}
        if not isinstance(c.get("gloss"), str) or not c["gloss"].strip():
            problems.append(f"{at}.gloss: empty")
        if not _is_source(src.get("gloss")):
            problems.append(f"{at}.sources.gloss: {src.get('gloss')!r} is not a synset name or 'curated'")
        parent = c.get("hypernym")
        if parent is not None:
            if parent not in cats and parent not in concepts:
                problems.append(f"{at}.hypernym: {parent!r} is neither a category nor a concept (dangling)")
            if not _is_source(src.get("hypernym")):
                problems.append(f"{at}.sources.hypernym: {src.get('hypernym')!r} is not a synset name or 'curated'")
        if name not in used:
            problems.append(f"{at}: not in any category's hypernym chain (unused)")
    for table, entries in (("categories", cats), ("concepts", concepts)):
        for name, c in entries.items():
            fam = c.get("familiarity") if isinstance(c, dict) else None
            if fam is not None and not (isinstance(fam, dict) and isinstance(fam.get("familiar"), bool)):
                problems.append(f"{table}.{name}.familiarity: need {{'familiar': true|false, ...}}, got {fam!r}")
    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise KanvaError(f"{where}: {len(problems)} problem(s):\n  {shown}{more}")


class KnowledgeBase:
    """Lookups over a validated KB: concepts, is-a, facts, and what question generation needs."""

    def __init__(self, data: dict, where: str = "knowledge base"):
        validate_kb(data, where)
        self.where = where
        self.data = data
        self.categories: list[str] = sorted(data["categories"], key=lambda n: data["categories"][n]["coco_id"])
        self._parents = _parent_map(data)
        self._concepts: dict[str, Concept] = {}
        for name, c in data["categories"].items():
            self._concepts[name] = Concept(
                name=name,
                coco_id=c["coco_id"],
                supercategory=c["supercategory"],
                gloss=c["gloss"],
                hypernyms=tuple(c["hypernyms"]),
                places=tuple(c["places"]),
                uses=tuple(c["uses"]),
                parts=tuple(c["parts"]),
                facts=dict(c["facts"]),
                sources=dict(c["sources"]),
                synset=c.get("synset"),
            )
        for name, c in data["concepts"].items():
            self._concepts[name] = Concept(
                name=name,
                coco_id=None,
                supercategory=None,
                gloss=c["gloss"],
                hypernyms=tuple(self._walk(name)),
                sources={"gloss": c["sources"]["gloss"], "hypernyms": c["sources"].get("hypernym", "curated")},
                synset=c.get("synset"),
            )

    def _walk(self, name: str) -> list[str]:
        out, node = [], self._parents.get(name)
        while node is not None:
            out.append(node)
            node = self._parents.get(node)
        return out

    @property
    def concept_names(self) -> list[str]:
        """Every name the KB knows: the 80 categories, then the chain concepts (sorted)."""
        return self.categories + sorted(n for n in self._concepts if n not in self.data["categories"])

    def __contains__(self, name: str) -> bool:
        return name in self._concepts

    def concept(self, name: str) -> Concept:
        """The category or chain concept called `name`; KanvaError (naming close matches) if unknown."""
        c = self._concepts.get(name)
        if c is None:
            close = difflib.get_close_matches(name, list(self._concepts), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KanvaError(f"{self.where}: unknown concept {name!r}{hint}")
        return c

    def familiar(self, name: str) -> bool:
        """Whether a general reader would use `name` (kanva/knowledge/familiarity.py); True when not measured."""
        entry = self.data["categories"].get(name) or self.data["concepts"].get(name) or {}
        return bool((entry.get("familiarity") or {}).get("familiar", True))

    def is_a(self, name: str, hypernym: str) -> bool:
        """True if `hypernym` is in the chain of `name` (strict: a thing is not a kind of itself)."""
        return hypernym in self.concept(name).hypernyms

    def hypernym_of(self, name: str, depth: int = 1) -> str | None:
        """The hypernym `depth` steps up (1 = nearest), or None past the top of the chain."""
        if depth < 1:
            raise KanvaError(f"hypernym_of: depth must be >= 1, got {depth}")
        chain = self.concept(name).hypernyms
        return chain[depth - 1] if depth <= len(chain) else None

    def categories_under(self, hypernym: str) -> list[str]:
        """Categories (COCO order) whose chain contains `hypernym`."""
        self.concept(hypernym)  # unknown names are an error, not an empty answer
        return [n for n in self.categories if hypernym in self._concepts[n].hypernyms]

    def siblings(self, name: str) -> list[str]:
        """Categories sharing `name`'s nearest hypernym, then those sharing its supercategory (COCO order, no repeats)."""
        c = self.concept(name)
        near = c.hypernyms[0] if c.hypernyms else None
        same_parent = [n for n in self.categories if n != name and near and self._concepts[n].hypernyms[:1] == (near,)]
        same_super = [
            n for n in self.categories
            if n != name and c.supercategory and self._concepts[n].supercategory == c.supercategory and n not in same_parent
        ]
        return same_parent + same_super

    def facts(self, name: str) -> list[Fact]:
        """Everything the KB says about `name`, each with its source."""
        c = self.concept(name)
        src = c.sources
        out = [Fact(name, "definition", c.gloss, src.get("gloss", "curated"))]
        out += [Fact(name, "is_a", h, src.get("hypernyms", "curated")) for h in c.hypernyms]
        if not c.is_category:
            return out
        out.append(Fact(name, "supercategory", c.supercategory, src["supercategory"]))
        out += [Fact(name, "found_in", p, src["places"]) for p in c.places]
        out += [Fact(name, "used_for", u, src["uses"]) for u in c.uses]
        out += [Fact(name, "has_part", p, src["parts"]) for p in c.parts]
        out += [Fact(name, kind, v, src["facts"]) for kind, v in sorted(c.facts.items())]
        return out

    def kinds(self) -> list[str]:
        """Every fact kind used by some category ('diet', 'legs', 'travels_on', ...), sorted."""
        return sorted({k for n in self.categories for k in self._concepts[n].facts})

    def facts_of_kind(self, kind: str) -> list[Fact]:
        """The facts of one kind for every category that has it (COCO order)."""
        if kind not in self.kinds():
            raise KanvaError(f"{self.where}: unknown fact kind {kind!r}; kinds: {self.kinds()}")
        out = []
        for n in self.categories:
            c = self._concepts[n]
            if kind in c.facts:
                out.append(Fact(n, kind, c.facts[kind], c.sources["facts"]))
        return out


def load_kb(path: str | Path | None = None) -> KnowledgeBase:
    """The knowledge base at `path` (default: the curated `coco_kb.json` shipped in this package), validated."""
    path = Path(path) if path is not None else default_kb_path()
    return KnowledgeBase(read_json(path, "knowledge-base file"), where=str(path))
