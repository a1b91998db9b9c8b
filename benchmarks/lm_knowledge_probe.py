"""What the language model knows of the knowledge tasks before any training: each knowledge question of the
MUIRBench- and MVBench-style sets asked of the base LM as text, and models' answers split by it.

    python benchmarks/lm_knowledge_probe.py --bench BENCH --world WORLD --split SPLIT [--lm smollm2]
        [--eval NAME=DIR ...] [--pair A:B ...]

A knowledge question names its object by a knowledge-base property ("Which image shows an animal that lays
eggs?"); its set or clip holds exactly one object with the property. The probe asks the LM, as plain chat text,
"Is a bird an animal that lays eggs?" for every object the set shows (or the clip has), and says the LM knows the
question when the objects it is about (one, or in a few multi-image questions several) have a higher
log P(Yes) - log P(No) than every other. A model that never saw
the knowledge base can answer such a question from what its LM knew; one it cannot pick out this way has to come
from the data. Prints the share known per task; per `--eval` (a folder with muirbench.jsonl and mvbench.jsonl
answer files, as `kanva quickstart` writes OUT/eval/MODEL) the accuracy on known and unknown questions; per
`--pair A:B` the paired difference A - B on each part (kanva.eval.bootstrap.paired_delta_ci).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BENCHES = ("muirbench", "mvbench")


def knowledge_rows(bench: Path, name: str) -> dict[str, dict]:
    """question id -> the raw row of every knowledge question (the rows keep the generator's facts)."""
    if name == "muirbench":
        rows = json.loads(next(bench.glob("*.json")).read_text())
        return {str(r["idx"]): r for r in rows if r.get("kind") == "knowledge"}
    out = {}
    for f in sorted((bench / "json").glob("*.json")):
        out |= {str(r["question_id"]): r for r in json.loads(f.read_text()) if r.get("kind") == "knowledge"}
    return out


def candidates(row: dict, name: str, sets: dict, clips: dict) -> tuple[str, set[str], list[str]]:
    """(property phrase, the objects that have it, every object the set shows or the clip has)."""
    from kanva.data import sequence_facts as sf
    from kanva.eval.synthetic.scenes import VISIBLE

    f = row["facts"]
    if name == "muirbench":
        holders = {c for cs in f["shown_holders"].values() for c in cs}
        return f["property"], holders, sf.shown_categories(sets[row["set_id"]], VISIBLE)
    return f["property"], {f["category"]}, sorted({t.category for t in clips[row["clip_id"]].tracks})


def yes_margin(model, tok, questions: list[str]) -> list[float]:
    """log P(Yes) - log P(No) of the first answer token, per question, through the LM's chat template."""
    import torch

    yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", "No"))
    out = []
    with torch.no_grad():
        for q in questions:
            ids = tok.apply_chat_template([{"role": "user", "content": q + " Answer yes or no."}],
                                          add_generation_prompt=True, return_tensors="pt")
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            logp = model(input_ids=ids).logits[0, -1].log_softmax(-1)
            out.append(float(logp[yes] - logp[no]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="folder with muirbench/ and mvbench/ (kanva eval make-synthetic)")
    ap.add_argument("--world", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--lm", default="smollm2", help="the base LM (kanva.model.lm.load_lm source)")
    ap.add_argument("--eval", nargs="*", default=[], metavar="NAME=DIR")
    ap.add_argument("--pair", nargs="*", default=[], metavar="A:B")
    args = ap.parse_args()

    from kanva.data.sequences import load_clips, load_sets
    from kanva.eval.answers import load_answers
    from kanva.eval.bootstrap import paired_delta_ci
    from kanva.eval.multichoice import outcomes
    from kanva.eval.muirbench import load_muirbench
    from kanva.eval.mvbench import load_mvbench
    from kanva.model.lm import load_lm
    from kanva.words import with_article

    sets = {s.id: s for s in load_sets(args.world, args.split).sets}
    clips = load_clips(args.world, args.split).clips
    model, tok = load_lm(args.lm)
    model.eval()
    evals = dict(e.split("=", 1) for e in args.eval)
    for name in BENCHES:
        folder = Path(args.bench) / name
        rows = knowledge_rows(folder, name)
        known: dict[str, bool] = {}
        for qid, row in rows.items():
            phrase, holders, cands = candidates(row, name, sets, clips)
            margin = dict(zip(cands, yes_margin(model, tok, [f"Is {with_article(c)} {phrase}?" for c in cands])))
            others = [margin[c] for c in cands if c not in holders]
            known[qid] = not others or min(margin[c] for c in holders) > max(others)
        k = sum(known.values())
        print(f"{name}: {len(rows)} knowledge questions, the LM picks out the object of {k} "
              f"({100 * k / max(1, len(rows)):.1f}%)")
        data = (load_muirbench if name == "muirbench" else load_mvbench)(folder)
        right = {}
        for m, d in evals.items():
            _, _, r, _ = outcomes(data, load_answers(Path(d) / f"{name}.jsonl"))
            right[m] = {q.qid: x for q, x in zip(data.questions, r) if q.qid in known}
            parts = []
            for part, want in (("known", True), ("unknown", False)):
                xs = [x for q, x in right[m].items() if known[q] == want]
                parts.append(f"{part} {100 * sum(xs) / max(1, len(xs)):.1f} ({len(xs)})")
            allx = list(right[m].values())
            print(f"  {m}: all {100 * sum(allx) / max(1, len(allx)):.1f}; " + "; ".join(parts))
        for pair in args.pair:
            a, b = pair.split(":")
            for part, want in (("known", True), ("unknown", False), ("all", None)):
                ids = [q for q in known if want is None or known[q] == want]
                d, ci = paired_delta_ci([right[a][q] for q in ids], [right[b][q] for q in ids], seed=0)
                print(f"  {a} - {b}, {part} ({len(ids)}): {d:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]")


if __name__ == "__main__":
    main()
