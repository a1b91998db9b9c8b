"""Can the LM learn left/right from scene text, and in what layout? A text-only fine-tune on position questions.

    python benchmarks/position_reading_probe.py --world OUT/world --labels OUT/models/vision --model OUT/models/base
        [--layout raster|side] [--question pair|single] [--n 800] [--epochs 3] [--held 200] [--seed 0]

Every perception subtask but position is learnt in the reading stage; left/right stays at chance whatever its
share (docs/experiments/2026-11-26-left-right-and-a-cheaper-reading-stage.md). This separates the layout from
the amount: it trains the model's LM on N position questions alone, over the exact scene text of train images
(kanva/grounding/scene_text.py), as recipes/quickstart-smol.yaml's `train.read` stage trains (its trainable set,
lr, batch, warmup and cosine schedule, and samples encoded by the model's processor), and reports accuracy and AUC of the first-token
"Yes" - "No" logit on `--held` other train images four times during training.
- `--layout raster`: the scene text as the encoder writes it (an object's column is its index modulo the grid);
  `side`: each single-instance object's word followed by the half of the image its box centre lies in ("bus left").
- `--question pair`: the benchmark's relation ("Is the bus on the left of the umbrella?", MME's wordings, pairs
  drawn as `kanva eval make-synthetic` draws them, yes and no balanced); `single`: one object's half ("Is the
  bus on the left side of the image?"), a one-word lookup like colour.
Unseen train images, not val: a probe of what can be learnt, not a recipe choice.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from image_use_probe import auc  # noqa: E402  (benchmarks/ is on the path when run as a script)


def scene_words(cells: list[str], scene, layout: str, categories: set[str]) -> str:
    from kanva.grounding.labels import side_of

    if layout == "raster":
        return " ".join(cells)
    # Single-instance objects only (the ones position questions ask about): two dogs have no one side.
    sides = {o.category: side_of(o.bbox, scene.width) for o in scene.objects if len(scene.instances(o.category)) == 1}
    out = []
    for cell in cells:
        out.append(cell)
        out += [sides[w] for w in cell.split() if w in categories and w in sides]
    return " ".join(out)


def questions(scenes, cells, layout, question, n, rng, categories):
    from kanva.eval.synthetic.questions import POSITION, left_pairs  # (kanva is imported lazily: --help stays fast)
    from kanva.grounding.labels import side_of

    out = []
    for s in scenes:
        a, b = rng.choice(left_pairs(s))
        yes = rng.random() < 0.5
        q = rng.choice(POSITION).format(a=a, b=b) if yes else rng.choice(POSITION).format(a=b, b=a)
        if question == "single":
            obj = s.instances(rng.choice((a, b)))[0]
            side = side_of(obj.bbox, s.width) if yes else {"left": "right", "right": "left"}[side_of(obj.bbox, s.width)]
            q = f"Is the {obj.category} on the {side} side of the image?"
        out.append((scene_words(cells[s.file_name], s, layout, categories), q, yes))
        if len(out) == n:
            break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", required=True)
    ap.add_argument("--labels", required=True, help="vision-pretrained model dir with patch_labels.json")
    ap.add_argument("--model", required=True, help="a built or trained Kanva model (its LM is fine-tuned)")
    ap.add_argument("--layout", choices=("raster", "side"), default="raster")
    ap.add_argument("--question", choices=("pair", "single"), default="pair")
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--held", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForImageTextToText

    from kanva.data.coco import load_coco
    from kanva.eval.prompts import short_answer_prompt
    from kanva.eval.synthetic.questions import left_pairs
    from kanva.eval.synthetic.scenes import load_world_split
    from kanva.grounding.labels import load_label_space
    from kanva.grounding.scene_text import scene_cells
    from kanva.model.processor import KanvaProcessor
    from kanva.quickstart.config import load_quickstart_config
    from kanva.train.data import Collator
    from kanva.train.modules import param_groups, set_trainable
    from kanva.train.schedule import lr_factor

    read = load_quickstart_config("smol").train.read.stage
    torch.manual_seed(args.seed)
    space, size, patch = load_label_space(args.labels)
    categories = {space.reads[i] for i, k in enumerate(space.kinds) if k == "category"}
    cells = scene_cells(load_coco(args.world, "train", captions=False), space, size, patch)
    scenes = [s for s in load_world_split(Path(args.world), "train").scenes if left_pairs(s)]
    random.Random(7).shuffle(scenes)
    held = questions(scenes[: args.held], cells, args.layout, args.question, args.held, random.Random(99), categories)
    train = questions(scenes[args.held:], cells, args.layout, args.question, args.n, random.Random(args.seed),
                      categories)
    print(f"{len(train)} training questions ({sum(y for *_, y in train)} yes), {len(held)} held out; e.g. "
          f"{train[0][1]!r} over {train[0][0]!r}", flush=True)

    proc = KanvaProcessor.from_pretrained(args.model)
    tok = proc.tokenizer
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=torch.float32)
    yes_id, no_id = tok.encode("Yes")[0], tok.encode("No")[0]

    def ask(scene: str, q: str) -> str:
        return scene + "\n" + short_answer_prompt(q, "llava")

    @torch.no_grad()
    def evaluate() -> str:
        model.eval()
        margins = []
        for scene, q, _ in held:
            ids, _ = proc.encode_prompt([], [{"role": "user", "content": ask(scene, q)}])
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            margins.append(float(logits[yes_id] - logits[no_id]))
        labels = [y for *_, y in held]
        acc = sum((m > 0) == y for m, y in zip(margins, labels)) / len(labels)
        return f"acc {acc:.3f} AUC {auc(margins, labels):.3f} yes-share {sum(m > 0 for m in margins) / len(margins):.2f}"

    print(f"before training: {evaluate()}", flush=True)
    # The reading stage's trainable set, AdamW groups, schedule and sample encoding (kanva/train).
    groups = set_trainable(model, read, [])
    params = [p for ps in groups.values() for p in ps]
    opt = torch.optim.AdamW(param_groups(groups, read))
    collate = Collator(tok.pad_token_id)
    order = [x for e in range(args.epochs) for x in random.Random(args.seed + e).sample(train, len(train))]
    bs = read.batch_size
    steps = math.ceil(len(order) / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, read.warmup_ratio, read.schedule))
    marks = {round(steps * k / 4) for k in range(1, 5)}
    t0 = time.time()
    for step in range(steps):
        model.train()
        batch = collate([proc.encode({"id": str(i), "conversations": [
            {"from": "human", "value": ask(s, q)}, {"from": "gpt", "value": "Yes" if y else "No"}]})
            for i, (s, q, y) in enumerate(order[step * bs:(step + 1) * bs])])
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, read.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step + 1 in marks:
            print(f"step {step + 1}/{steps} ({(step + 1) * bs} questions, {time.time() - t0:.0f} s): {evaluate()}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
