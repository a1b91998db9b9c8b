"""Optional offline builder: refresh (or check) the WordNet-derived parts of `coco_kb.json` from WordNet 3.0.

    python -m kanva.knowledge.build --check            # does the shipped file agree with WordNet?
    python -m kanva.knowledge.build --write            # rewrite glosses, chains and the concept table

It needs Debian's `wordnet-base` files (`apt-get install wordnet-base`; /usr/share/wordnet) and no network.
The shipped JSON stays the source of truth: the builder keeps every curated field and choice in it
(the sense picked for each category, curated glosses, places, uses, parts, facts) and recomputes only
what WordNet says: glosses of synset-sourced entries, hypernym chains (walking up from the chosen synset,
keeping the chain's existing parent where WordNet lists several, stopping at a `wordnet.tops` synset,
continuing over curated `wordnet.bridges`), and the `concepts` table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kanva.errors import KanvaError
from kanva.knowledge.familiarity import measure
from kanva.knowledge.kb import default_kb_path, validate_kb
from kanva.knowledge.wordnet import DEFAULT_DIR, Synset, WordNet


def refresh(data: dict, wn: WordNet, auto_names: bool = False) -> dict:
    """A copy of `data` with its WordNet-derived fields recomputed from `wn`, and the familiarity of every name
    (kanva/knowledge/familiarity.py). With `auto_names` (a KB built for a vocabulary), a synset whose first
    lemma is taken gets its next free lemma, else "lemma (synset)", instead of an error."""
    cfg = data["wordnet"]
    tops, bridges, names = set(cfg["tops"]), dict(cfg["bridges"]), dict(cfg["names"])
    cats = data["categories"]
    old_concepts = data.get("concepts", {})
    synset_of = {n: c["synset"] for n, c in old_concepts.items() if c.get("synset")}
    synset_of.update({n: c["synset"] for n, c in cats.items() if c.get("synset")})
    category_of_synset = {c["synset"]: n for n, c in cats.items() if c.get("synset")}
    concepts: dict[str, dict] = {}
    owner: dict[str, str] = {}  # concept name -> synset, to catch two synsets with one name

    def holder(name: str, s: Synset) -> str | None:
        """What other than synset `s` already has `name` (another synset's concept, or a category), else None."""
        if owner.get(name, s.name) != s.name:
            return owner[name]
        if name in cats and cats[name].get("synset") != s.name:
            return f"category {name!r} ({cats[name].get('synset') or 'curated, no synset'})"
        return None

    def name_of(s: Synset) -> str:
        if s.name in category_of_synset:
            return category_of_synset[s.name]
        name = names.get(s.name, s.lemmas[0])
        if auto_names and holder(name, s):
            free = [lem for lem in s.lemmas[1:] if not holder(lem, s)]
            name = free[0] if free else f"{s.lemmas[0]} ({s.name})"
        other = holder(name, s)
        if other:
            raise KanvaError(f"WordNet names {s.name} and {other} both {name!r}; give {s.name} another name "
                             f"in wordnet.names in the KB")
        owner[name] = s.name
        return name

    def walk(start: Synset, old_chain: list[str]) -> list[str]:
        """Names from `start` up to a top, `start` included."""
        chain, s = [], start
        while True:
            chain.append(name_of(s))
            options = [wn.by_offset(o) for o in s.hypernyms]
            if s.name in tops or (not options and s.name not in bridges):
                if s.name not in category_of_synset:
                    concepts[chain[-1]] = {"synset": s.name, "gloss": s.gloss, "hypernym": None, "sources": {"gloss": s.name}}
                return chain
            if s.name in bridges:
                parent = wn.synset(bridges[s.name])
                link = "curated"
            else:
                keep = [o for o in options if synset_of.get(old_chain[len(chain)] if len(chain) < len(old_chain) else "") == o.name]
                parent = keep[0] if keep else options[0]
                link = s.name
            if s.name not in category_of_synset:
                concepts[chain[-1]] = {
                    "synset": s.name,
                    "gloss": s.gloss,
                    "hypernym": name_of(parent),
                    "sources": {"gloss": s.name, "hypernym": link},
                }
            s = parent

    out_cats = {}
    for name, c in cats.items():
        c = dict(c)
        old = list(c.get("hypernyms") or [])
        if c.get("synset"):
            s = wn.synset(c["synset"])
            c["gloss"] = s.gloss
            chain = walk(s, [name] + old)[1:]
            c["sources"] = {**c["sources"], "gloss": s.name, "hypernyms": s.name}
        else:  # curated: the first link is the KB's own choice; above it, WordNet
            if not old or old[0] not in synset_of:
                raise KanvaError(f"categories.{name}: curated entry needs a first hypernym with a synset")
            chain = walk(wn.synset(synset_of[old[0]]), old)
            c["sources"] = {**c["sources"], "gloss": "curated", "hypernyms": "curated"}
        c["hypernyms"] = chain
        out_cats[name] = c
    used = {h for c in out_cats.values() for h in c["hypernyms"]}
    concepts = {n: concepts[n] for n in sorted(concepts) if n in used}
    for table in (out_cats, concepts):
        for n, c in table.items():
            c["familiarity"] = measure(n, wn.synset(c["synset"]) if c.get("synset") else None, wn)
    return {**data, "categories": out_cats, "concepts": concepts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kanva.knowledge.build", description=__doc__.splitlines()[0])
    ap.add_argument("--wordnet", default=str(DEFAULT_DIR), help="WordNet dict directory (default /usr/share/wordnet)")
    ap.add_argument("--kb", default=str(default_kb_path()), help="KB JSON to check or rewrite")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if the KB differs from what WordNet gives")
    mode.add_argument("--write", action="store_true", help="rewrite the KB file")
    args = ap.parse_args(argv)
    try:
        path = Path(args.kb)
        data = json.loads(path.read_text())
        new = refresh(data, WordNet(args.wordnet))
        validate_kb(new, str(path))
    except KanvaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.write:
        path.write_text(dump(new))
        print(f"wrote {path}: {len(new['categories'])} categories, {len(new['concepts'])} concepts")
        return 0
    if new == data:
        print(f"{path}: agrees with WordNet ({args.wordnet})")
        return 0
    diffs = [n for n in data["categories"] if data["categories"][n] != new["categories"].get(n)]
    diffs += [f"concept {n}" for n in sorted(set(data["concepts"]) ^ set(new["concepts"]))]
    print(f"{path}: differs from WordNet at: {', '.join(diffs[:20]) or 'concepts'}", file=sys.stderr)
    return 1


def dump(data: dict) -> str:
    """Stable, diff-friendly JSON: one category per block, two-space indent, key order kept."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.exit(main())
