"""The language of an evolved data set: distinct-3 of questions, the share of units built on a hypernym the KB
view filters out (unfamiliar or too generic: should be 0), and N random units to read.

    python benchmarks/data_language.py DIR [--kb KB.json] [--n 50] [--seed 0] [--out units.md]

DIR is a `kanva data evolve` output directory. Units are the kept ones (after finalize). A unit "uses" a
filtered hypernym when one of its facts is `is_a <h>` for such an h, or when it comes from a template that
puts a hypernym into its question (HYPERNYM_TEMPLATES) and the longest chain name after "kind of", "type of"
or "any" there is such an h ("kind of solid food" is solid food, not solid).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path


HYPERNYM_TEMPLATES = frozenset({"knowledge.kind", "knowledge.isa", "knowledge.exists", "knowledge.exists_named",
                                "multihop.count", "multihop.isa", "seed.reasoning.kind"})


def kept_units(run_dir: Path) -> list[dict]:
    records = [json.loads(x) for x in (run_dir / "provenance.jsonl").read_text().splitlines() if x.strip()]
    dropped = {r["id"] for r in records if r.get("stage") == "finalize" and r.get("status") == "rejected"}
    return [r for r in records if r.get("round") and r.get("status") == "kept" and r["id"] not in dropped]


def chain_names(kb) -> tuple[set[str], set[str]]:
    """(every hypernym in the KB's chains, those the KB view filters out)."""
    from kanva.data.kbview import KBView

    view = KBView(kb, kb.categories)
    every = {h for c in kb.categories for h in kb.concept(c).hypernyms}
    kept = {h for ci in view.info.values() for h in ci.hypernyms}
    return every, every - kept


def uses_filtered(unit: dict, filtered: set[str], pattern: re.Pattern) -> bool:
    if any(f[1] == "is_a" and f[2] in filtered for f in unit.get("facts") or []):
        return True
    if unit["template"] not in HYPERNYM_TEMPLATES:
        return False
    return any(m.group(1) in filtered for m in pattern.finditer(unit["question"].lower()))


def main() -> None:
    from kanva.data.text import words
    from kanva.knowledge import load_kb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--kb", default=None)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the N units as a markdown table")
    args = ap.parse_args()
    kb = load_kb(args.kb)
    units = kept_units(Path(args.dir))
    every, filtered = chain_names(kb)
    names = "|".join(re.escape(h.lower()) for h in sorted(every, key=len, reverse=True))
    pattern = re.compile(rf"\b(?:kind of|type of|kinds of|types of|any) ({names})\b")
    bad = [u for u in units if uses_filtered(u, filtered, pattern)]
    grams = [g for u in units for g in zip(*(words(u["question"])[i:] for i in range(3)))]
    print(f"units: {len(units)}; distinct-3 of questions: {len(set(grams)) / max(1, len(grams)):.3f} "
          f"({len(set(grams))} of {len(grams)} 3-grams)")
    print(f"filtered hypernyms in the KB's chains: {len(filtered)}; units using one: {len(bad)} "
          f"(share {len(bad) / max(1, len(units)):.4f})")
    for u in bad[:5]:
        print("  e.g.", u["question"], "->", u["answer"])
    sample = random.Random(args.seed).sample(units, min(args.n, len(units)))
    rows = ["| # | template | question | answer |", "|---|---|---|---|"]
    for i, u in enumerate(sample, 1):
        q = u["question"].replace("\n", " / ").replace("|", "/")
        if u.get("options"):
            q += " [" + "; ".join(u["options"]) + "]"
        rows.append(f"| {i} | {u['template']} | {q} | {u['answer']} |")
    print("\n".join(rows))
    if args.out:
        Path(args.out).write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
