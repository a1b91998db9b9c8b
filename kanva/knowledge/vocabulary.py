"""A knowledge base for any list of nouns (`kanva knowledge build --vocab FILE --out KB`), in the schema of
`coco_kb.json`, from WordNet 3.0, keeping the curated facts wherever a name is a curated category.

Vocabulary file: one category per line, `name` or `name/synonym/...` (the LVIS list in
`kanva/knowledge/vocab/lvis_v1.txt` is one); `#` starts a comment. A name may carry a qualifier in
parentheses, "bow (weapon)", which picks the sense. For each line:

1. a curated category (by any of the line's forms, or by the WordNet sense found below) is copied with its
   places, uses, parts and facts; only its id changes;
2. otherwise the sense is the first physical WordNet noun sense (then any) of the first form WordNet knows,
   preferring a sense whose nearest hypernyms or gloss contain a qualifier word ("bat animal", "batter food"); failing that, the
   sense of the name's last word ("aerosol can" -> can), recorded as a `head` match;
3. its gloss, hypernym chain, part meronyms (as `parts`) and supercategory (the nearest of a few WordNet
   classes: animal, food, vehicle, ...) come from WordNet, each sourced by synset;
4. a line WordNet does not know at all is listed in the KB's `unresolved` (never dropped silently).

Chains and familiarity are computed by kanva/knowledge/build.py's `refresh`, as for the curated KB.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

from kanva.errors import KanvaError
from kanva.knowledge.wordnet import Synset, WordNet

# WordNet classes -> the supercategory an uncurated category gets (the nearest one up its hypernyms).
SUPERCATEGORIES = {
    "person.n.01": "person", "animal.n.01": "animal", "food.n.01": "food", "food.n.02": "food",
    "vehicle.n.01": "vehicle", "craft.n.02": "vehicle", "furniture.n.01": "furniture",
    "clothing.n.01": "accessory", "jewelry.n.01": "accessory", "bag.n.01": "accessory",
    "electronic_equipment.n.01": "electronic", "electronic_device.n.01": "electronic", "computer.n.01": "electronic",
    "home_appliance.n.01": "appliance", "sports_equipment.n.01": "sports", "tableware.n.01": "kitchen",
    "kitchen_utensil.n.01": "kitchen", "cutlery.n.02": "kitchen", "plant.n.02": "plant",
    "musical_instrument.n.01": "instrument", "tool.n.01": "tool", "container.n.01": "container",
}
# Lexicographer files of things a picture shows (animal, artifact, food, object, plant, substance; then Tops and
# body): their senses come before people, places, groups and ideas ("jersey" the shirt, "pop" the drink).
VISIBLE_LEXFILES = frozenset({5, 6, 13, 17, 20, 27})
VISIBLE_LATER = frozenset({3, 8})
_QUALIFIER = re.compile(r"^(.*?)\s*\(([^)]*)\)\s*$")


@dataclass(frozen=True)
class Entry:
    name: str
    forms: tuple[str, ...]  # the name without its qualifier, then the synonyms
    qualifiers: frozenset[str]
    line: int


def read_vocab(path: str | Path) -> list[Entry]:
    path = Path(path)
    if not path.is_file():
        raise KanvaError(f"{path}: no such vocabulary file")
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p.strip() for p in text.split("/")]
        if not all(parts):
            raise KanvaError(f"{path}:{lineno}: empty name in {raw.strip()!r} (expected name/synonym/...)")
        name = parts[0]
        m = _QUALIFIER.match(name)
        base, quals = (m.group(1), set(m.group(2).split())) if m else (name, set())
        for syn in parts[1:]:  # "bat/bat animal": the synonym qualifies the name
            if syn.startswith(base + " "):
                quals.update(syn[len(base) + 1:].split())
        if name in seen:
            raise KanvaError(f"{path}:{lineno}: {name!r} is also on line {seen[name]}; give each category once "
                             "(a qualifier tells two apart: 'bow (weapon)')")
        seen[name] = lineno
        entries.append(Entry(name, tuple(dict.fromkeys([base, *parts[1:]])), frozenset(quals), lineno))
    if not entries:
        raise KanvaError(f"{path}: no categories")
    return entries


def _above(wn: WordNet, s: Synset, depth: int = 3) -> set[str]:
    """Words of the lemmas of the hypernyms of `s` up to `depth` levels."""
    out: set[str] = set()
    frontier = [s]
    for _ in range(depth):
        frontier = [wn.by_offset(o) for f in frontier for o in f.hypernyms]
        out.update(w for f in frontier for lem in f.lemmas for w in lem.lower().split())
    return out


def _rank(wn: WordNet, s: Synset) -> int:
    """Sort key: senses of visible things first, then other physical ones (a stable sort keeps WordNet's order)."""
    if s.lexfile in VISIBLE_LEXFILES:
        return 0
    return 1 if s.lexfile in VISIBLE_LATER else 2 if wn.is_physical(s) else 3


def choose_sense(e: Entry, wn: WordNet) -> tuple[Synset | None, str]:
    """The WordNet sense of an entry and how it was found ("form", "qualifier", "head" or "none")."""
    # a plural name WordNet lists in the singular ("overalls" is there, "suspenders" is not)
    forms = [*e.forms, *(f[:-1] for f in e.forms if f.endswith("s") and not f.endswith("ss"))]
    for form in forms:
        # the vocabulary names things one sees: their senses first ("money" the coins, not an idea)
        senses = sorted(wn.senses(form), key=lambda s: _rank(wn, s))
        if senses:
            if e.qualifiers:  # a hypernym named by the qualifier first, then the gloss
                for near in (lambda s: _above(wn, s), lambda s: set(re.findall(r"[a-z]+", s.gloss.lower()))):
                    for s in senses:
                        if e.qualifiers & near(s):
                            return s, "qualifier"
            return senses[0], "form"
    head = e.forms[0].split()[-1]
    senses = sorted(wn.senses(head), key=lambda s: _rank(wn, s)) if head != e.forms[0] else []
    return (senses[0], "head") if senses else (None, "none")


def supercategory(wn: WordNet, s: Synset) -> tuple[str, str]:
    """(supercategory, the synset it comes from): the nearest SUPERCATEGORIES class above `s`, else 'object'."""
    frontier, seen = [s], set()
    while frontier:
        for f in frontier:
            if f.name in SUPERCATEGORIES:
                return SUPERCATEGORIES[f.name], f.name
        seen.update(f.offset for f in frontier)
        frontier = [wn.by_offset(o) for f in frontier for o in f.hypernyms if o not in seen]
    return "object", s.name


def build_kb(entries: list[Entry], wn: WordNet, curated: dict, vocabulary: str) -> tuple[dict, dict]:
    """(KB data, counts of how each entry was resolved)."""
    from kanva.knowledge.build import refresh

    cur = curated["categories"]
    by_synset = {c["synset"]: n for n, c in cur.items() if c.get("synset")}
    cats: dict[str, dict] = {}
    unresolved: list[str] = []
    how: dict[str, int] = {}
    for i, e in enumerate(entries, 1):
        s, found = choose_sense(e, wn)
        base = next((cur[f] for f in (e.name, *e.forms) if f in cur), None)
        if base is None and s is not None and s.name in by_synset and found != "head":
            base = cur[by_synset[s.name]]
        if base is not None:
            c = copy.deepcopy(base)
            c["coco_id"] = i
            found = "curated"
        elif s is None:
            unresolved.append(e.name)
            how["none"] = how.get("none", 0) + 1
            continue
        else:
            sup, sup_src = supercategory(wn, s)
            parts = sorted({wn.by_offset(o).lemmas[0] for o in s.part_meronyms})[:6]
            c = {"coco_id": i, "supercategory": sup, "synset": s.name, "gloss": s.gloss, "hypernyms": [],
                 "places": [], "uses": [], "parts": parts, "facts": {},
                 "sources": {"supercategory": sup_src, "gloss": s.name, "hypernyms": s.name,
                             **({"parts": s.name} if parts else {})}}
        how[found] = how.get(found, 0) + 1
        cats[e.name] = c
    data = {"vocabulary": vocabulary, "categories": cats, "concepts": curated["concepts"],
            "wordnet": curated["wordnet"], "unresolved": unresolved}
    data = refresh(data, wn, auto_names=True)
    empty = [n for n, c in data["categories"].items() if not c["hypernyms"]]  # a category at a chain's top
    if empty:
        data["categories"] = {n: c for n, c in cats.items() if n not in empty}
        data["unresolved"] = unresolved + empty
        data = refresh({**data, "concepts": curated["concepts"]}, wn, auto_names=True)
        how["none"] = how.get("none", 0) + len(empty)
    return data, how
