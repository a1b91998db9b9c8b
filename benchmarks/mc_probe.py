"""Why multiple choice fails: the letters a model picks, with the image and with the scene text, and the MC
samples its training data holds.

    python benchmarks/mc_probe.py [MODEL ...] [--bench OUT/bench --n 120] [--coco OUT/world --split test
        --labels OUT/models/vision] [--data FILE.json ...]

Per model, over the first N rows of the synthetic MMBench TSV (whole circular groups): the first answer token's
logits over the option letters, asked with the real image and (with `--coco/--labels`) over the image's scene
text (what the LM knows when given exactly what the image tokens stand for). Prints the share of rows whose
most likely next token is an option letter at all, the letters picked (a model that picks one letter whatever
the options fails every circular group), first-pass and circular accuracy, and circular accuracy per category.
Per `--data` file (a training mixture): how many samples hold a multiple-choice turn, their stems (the first
three words) and answer letters, and how many are circular rotations of one question. Used for issue 24's
diagnosis of MMBench circular 0.0 (docs/quickstart.md#multiple-choice). The next-token probe fits models trained
on letter answers (`mc_answer: letter`); a model trained to name the option first (`mc_answer: option`) is
measured by `kanva eval run mmbench`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def data_table(path: str) -> None:
    from kanva.data.llava import load_llava
    from kanva.data.unit import mc_letter, parse_human

    samples = load_llava(path)
    stems, letters, questions = Counter(), Counter(), Counter()
    n_mc = 0
    for s in samples:
        conv = s["conversations"]
        mc = False
        for h, g in zip(conv[::2], conv[1::2]):
            q, fmt, options = parse_human(h["value"], g["value"])
            if fmt == "mc":
                mc = True
                stems[" ".join(q.split()[:3])] += 1
                letters[mc_letter(g["value"].strip(), options)] += 1
                questions[(s.get("image"), q, tuple(sorted(options)))] += 1
        n_mc += mc
    rotations = sum(n for n in questions.values() if n > 1)
    print(f"{path}: {len(samples)} samples, {n_mc} with a multiple-choice turn ({100 * n_mc / max(1, len(samples)):.1f}%); "
          f"{len(questions)} distinct questions, {rotations} turns in groups of rotations")
    print("  answer letters: " + ", ".join(f"{k} {v}" for k, v in sorted(letters.items())))
    print("  stems: " + ", ".join(f"'{k}' {v}" for k, v in stems.most_common(12)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--bench", help="the folder `kanva eval make-synthetic` wrote (has mmbench/)")
    ap.add_argument("--n", type=int, default=120, help="rows of the TSV (whole circular groups are kept)")
    ap.add_argument("--coco", help="world root, for the scene-text rows")
    ap.add_argument("--split", default="test")
    ap.add_argument("--labels", help="vision-pretrained model dir with patch_labels.json (scene-text rows)")
    ap.add_argument("--data", nargs="*", default=[], help="training mixtures (LLaVA JSON) to count MC samples in")
    args = ap.parse_args()
    for path in args.data:
        data_table(path)
    if not args.models:
        return 0
    if not args.bench:
        ap.error("--bench is needed with a model")

    import base64
    import io

    import torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from kanva.eval.mmbench import load_mmbench
    from kanva.eval.prompts import choice_prompt

    data = load_mmbench(Path(args.bench) / "mmbench" / "mmbench_synthetic.tsv")
    keep = {r.group for r in data.rows[: args.n]}  # as `kanva eval run --limit`: whole groups of the first N rows
    rows = [r for r in data.rows if r.group in keep]
    texts = None
    if args.coco and args.labels:
        from kanva.grounding.labels import load_label_space
        from kanva.grounding.scene_text import scene_texts

        space, size, patch = load_label_space(args.labels)
        texts = scene_texts(args.coco, args.split, space, size, patch)
    files = {}
    if texts is not None:  # the synthetic TSV's `comment` column holds the image's file name
        tsv = Path(args.bench) / "mmbench" / "mmbench_synthetic.tsv"
        import csv

        csv.field_size_limit(2**31 - 1)
        with open(tsv, encoding="utf-8", newline="") as f:
            rd = csv.DictReader(f, delimiter="\t")
            files = {int(r["index"]): r["comment"] for r in rd}
    print(f"{len(rows)} rows, {len(keep)} questions")
    for path in args.models:
        model = LlavaForConditionalGeneration.from_pretrained(path).eval()
        proc = AutoProcessor.from_pretrained(path)
        tok = proc.tokenizer
        letter_ids = {c: tok.encode(c)[0] for c in "ABCD"}

        @torch.no_grad()
        def pick(row, scene: str | None) -> tuple[str, bool]:
            text = choice_prompt(row.question, row.options, row.hint, "llava", context_label=False)
            content = [] if scene is not None else [{"type": "image"}]
            if scene is not None:
                text = scene + "\n" + text
            msgs = [{"role": "user", "content": content + [{"type": "text", "text": text}]}]
            prompt = proc.apply_chat_template(msgs, add_generation_prompt=True)
            if scene is None:
                image = Image.open(io.BytesIO(base64.b64decode(row.image))).convert("RGB")
                inputs = proc(images=image, text=prompt, return_tensors="pt")
            else:
                inputs = {"input_ids": tok(prompt, return_tensors="pt").input_ids}
            logits = model(**inputs).logits[0, -1]
            best = max(row.options, key=lambda c: float(logits[letter_ids[c]]))
            top = int(logits.argmax())
            return best, top in {letter_ids[c] for c in row.options}

        modes = [("image", None)] + ([("scene text", texts)] if texts is not None else [])
        for mode, source in modes:
            picks, is_letter = {}, 0
            for r in rows:
                scene = None if source is None else source[files[r.index]]
                picks[r.index], ok = pick(r, scene)
                is_letter += ok
            right = {r.index: picks[r.index] == r.answer for r in rows}
            by_group = defaultdict(list)
            for r in rows:
                by_group[r.group].append(r)
            circ = {g: all(right[r.index] for r in rs) for g, rs in by_group.items()}
            per_cat = defaultdict(list)
            for g, rs in by_group.items():
                per_cat[rs[0].category].append(circ[g])
            first = [right[r.index] for r in rows if r.index < 1_000_000]
            letters = Counter(picks.values())
            print(f"{path} ({mode}): next token a letter {100 * is_letter / len(rows):.0f}%; picks "
                  + ", ".join(f"{k} {v}" for k, v in sorted(letters.items()))
                  + f"; first pass {100 * sum(first) / len(first):.1f}; circular {100 * sum(circ.values()) / len(circ):.1f}; "
                  + ", ".join(f"{k} {100 * sum(v) / len(v):.0f} ({len(v)})" for k, v in sorted(per_cat.items())), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
