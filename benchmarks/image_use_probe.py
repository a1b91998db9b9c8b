"""Does a model use its image? Yes/no logits with the real image, a blank image, and the scene text.

    python benchmarks/image_use_probe.py MODEL [MODEL ...] --bench OUT/bench --subtask existence [--n 40]
        [--coco OUT/world --split test --labels OUT/models/vision]

For each MME-format question of the subtask (first N), the first-token logit of "Yes" minus "No":
- with the real image: accuracy (threshold 0) and AUC (threshold-free separation of yes from no);
- with a blank grey image: how much the answer moves, mean |real - blank| (near 0: the image is ignored);
- with `--coco/--labels`: the question asked over the image's scene text instead (kanva/grounding/scene_text.py),
  i.e. what the LM knows when it is given exactly what the image tokens stand for.
Prints one table row per model. Used for docs/experiments/2026-11-25-why-a-reading-stage.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

def auc(scores: list[float], labels: list[bool]) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return float("nan")
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--bench", required=True, help="the folder `kanva eval make-synthetic` wrote (has mme/)")
    ap.add_argument("--subtask", default="existence")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--coco", help="world root, for the scene-text column")
    ap.add_argument("--split", default="test")
    ap.add_argument("--labels", help="vision-pretrained model dir with patch_labels.json (scene-text column)")
    args = ap.parse_args()

    import torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from kanva.eval.prompts import short_answer_prompt

    torch.manual_seed(0)
    mme = Path(args.bench) / "mme"
    rows = [x.split("\t") for x in (mme / f"{args.subtask}.txt").read_text().splitlines() if x.strip()][: args.n]
    texts = None
    if args.coco and args.labels:
        from kanva.grounding.labels import load_label_space
        from kanva.grounding.scene_text import scene_texts

        space, size, patch = load_label_space(args.labels)
        texts = scene_texts(args.coco, args.split, space, size, patch)
    blank = Image.new("RGB", (224, 224), (128, 128, 128))
    labels = [a.strip().lower() == "yes" for _, _, a in rows]
    print(f"{args.subtask}: {len(rows)} questions ({sum(labels)} yes)")
    print("| model | acc (image) | AUC (image) | mean abs(real - blank) | AUC (blank) | acc (scene text) | AUC (scene text) |")
    print("|---|---|---|---|---|---|---|")
    for path in args.models:
        model = LlavaForConditionalGeneration.from_pretrained(path).eval()
        proc = AutoProcessor.from_pretrained(path)
        tok = proc.tokenizer
        yes, no = tok.encode("Yes")[0], tok.encode("No")[0]

        @torch.no_grad()
        def margin(question: str, image=None, scene: str | None = None) -> float:
            content = [{"type": "image"}] if image is not None else []
            text = (scene + "\n" if scene else "") + short_answer_prompt(question, "llava")
            msgs = [{"role": "user", "content": content + [{"type": "text", "text": text}]}]
            prompt = proc.apply_chat_template(msgs, add_generation_prompt=True)
            if image is not None:
                inputs = proc(images=image, text=prompt, return_tensors="pt")
            else:
                inputs = {"input_ids": tok(prompt, return_tensors="pt").input_ids}
            logits = model(**inputs).logits[0, -1]
            return float(logits[yes] - logits[no])

        real, flat, scene = [], [], []
        for f, q, _ in rows:
            with Image.open(mme / "images" / f) as im:
                real.append(margin(q, im.convert("RGB")))
            flat.append(margin(q, blank))
            if texts is not None:
                scene.append(margin(q, scene=texts[f]))
        acc = sum((s > 0) == y for s, y in zip(real, labels)) / len(rows)
        moved = statistics.mean(abs(a - b) for a, b in zip(real, flat))
        cols = [f"{acc:.2f}", f"{auc(real, labels):.2f}", f"{moved:.2f}", f"{auc(flat, labels):.2f}"]
        if scene:
            cols += [f"{sum((s > 0) == y for s, y in zip(scene, labels)) / len(rows):.2f}", f"{auc(scene, labels):.2f}"]
        else:
            cols += ["-", "-"]
        print(f"| {path} | " + " | ".join(cols) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
