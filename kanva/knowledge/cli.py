"""`kanva knowledge build`: a knowledge base for any list of nouns, from WordNet 3.0 (kanva/knowledge/vocabulary.py)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    kn = subparsers.add_parser("knowledge", help="build a knowledge base for a vocabulary",
                               description=__doc__.splitlines()[0])
    sub = kn.add_subparsers(dest="knowledge_command", metavar="SUBCOMMAND")
    p = sub.add_parser("build", help="a KB (coco_kb.json's schema) for a noun list, curated facts kept")
    p.add_argument("--vocab", required=True, help="one category per line: name[/synonym...] (e.g. "
                   "kanva/knowledge/vocab/lvis_v1.txt)")
    p.add_argument("--out", required=True, help="the KB JSON to write (use with `kanva data evolve --kb`)")
    p.add_argument("--wordnet", default=None, help="WordNet dict directory (default /usr/share/wordnet; "
                   "apt-get install wordnet-base)")
    p.add_argument("--curated", default=None, help="KB whose categories' facts are kept (default: the shipped "
                   "coco_kb.json)")
    p.set_defaults(func=_build)
    kn.set_defaults(func=lambda a: (kn.print_help(), 1)[1])


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kanva.knowledge.build import dump
    from kanva.knowledge.kb import default_kb_path, load_kb, validate_kb
    from kanva.knowledge.vocabulary import build_kb, read_vocab
    from kanva.knowledge.wordnet import DEFAULT_DIR, WordNet

    entries = read_vocab(args.vocab)
    curated_path = Path(args.curated) if args.curated else default_kb_path()
    curated = load_kb(curated_path).data
    data, how = build_kb(entries, WordNet(args.wordnet or DEFAULT_DIR), curated, Path(args.vocab).name)
    validate_kb(data, args.out)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump(data))
    fam = [n for n, c in data["concepts"].items() if c["familiarity"]["familiar"]]
    print(f"wrote {out}: {len(data['categories'])} of {len(entries)} categories ("
          + ", ".join(f"{k} {v}" for k, v in sorted(how.items())) + f"), {len(data['concepts'])} concepts, "
          f"{len(fam)} of them familiar", file=sys.stderr)
    if data["unresolved"]:
        print(f"not in WordNet ({len(data['unresolved'])}, listed in the KB's 'unresolved'): "
              + ", ".join(data["unresolved"][:20]) + (" ..." if len(data["unresolved"]) > 20 else ""),
              file=sys.stderr)
    return 0
