"""Training throughput: Kanva's loop (padded, length-grouped, packed batches) vs plain `transformers.Trainer`,
same model, data and global batch, side by side.

    python benchmarks/train_throughput.py [--loops trainer,padded,grouped,packed] [--steps 6] [--warmup 2]

`padded`: random batches padded to the longest sample; `grouped`: length-grouped batches (Kanva's
default); `packed`: the same length-grouped micro-batches as one padding-free row with position ids
restarting per sample (`packing: true`): the same samples per step as `grouped`, so the same loss.
`lm`: `grouped` with the LM alone trained (the reading stages' trainable set); `lm-frozen`: `lm` with the LM's
embeddings and first N decoder layers frozen (`lm_frozen_layers`, N from --lm-frozen-layers), so backward stops at
layer N. MFU counts every loop's FLOPs by the full-backward formula below, so for `lm-frozen` it reads as speed
against a full step, not as a share of the work done.

All loops train the `smol` preset's projector + LM (the `instruct` stage; vision tower frozen) on the
toy instruction set, encoded by the same `KanvaProcessor.encode`. The Trainer gets a standard
collator (pad to the longest sample, labels -100) and computes logits at every position, as
`LlavaForConditionalGeneration.forward(labels=...)` does. Kanva computes logits only at supervised
positions and batches samples of similar length. Tokens are non-padding input tokens (text + image).

MFU = model FLOPs per second / float32 matmul peak, measured here by timing a large matmul with the
same number of threads (default 1; see --threads).
Model FLOPs per step = 6 * (non-embedding LM + projector params) * tokens + 6 * hidden * vocab *
supervised tokens (the LM head's useful work; computing logits elsewhere is waste, not model FLOPs).
Left out: attention scores (a few % at these lengths) and the frozen 1.8M-param vision tower's
forward (<1%). The same formula serves every loop.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """Float32 FLOP/s of an n x n matmul on this machine (best of `reps`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up the BLAS threads
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


class FlopModel:
    """Analytic model FLOPs of one training step from its token counts."""

    def __init__(self, model):
        lm = model.model.language_model
        emb = lm.get_input_embeddings().weight.numel()
        self.body = sum(p.numel() for p in lm.parameters()) - emb  # tied head: embeddings counted once
        self.body += sum(p.numel() for p in model.model.multi_modal_projector.parameters())
        self.head = model.config.text_config.hidden_size * model.config.text_config.vocab_size

    def step(self, tokens: int, supervised: int) -> float:
        return 6 * self.body * tokens + 6 * self.head * supervised


def kanva_run(model_dir: Path, data: Path, args, out: Path, group: bool = True, packing: bool = False,
              lm_only: bool = False, frozen: bool = False) -> dict:
    from kanva.train.metrics import read_metrics
    from kanva.train.recipe import recipe_from_dict
    from kanva.train.trainer import run_recipe

    trained = ["lm"] if lm_only else ["projector", "lm"]
    stage = {
        "name": "instruct", "trainable": trained, "lr": {m: 2e-5 for m in trained},
        "data": [{"path": str(data)}], "steps": args.warmup + args.steps, "batch_size": args.batch_size,
        "grad_accum": args.grad_accum, "max_length": args.max_length, "warmup_ratio": 0.1,
        "group_by_length": group, "packing": packing, "lm_frozen_layers": args.lm_frozen_layers if frozen else 0,
    }  # fmt: skip
    recipe = recipe_from_dict({"model": {"path": str(model_dir)}, "seed": 0, "stages": [stage]}, source="bench")
    run_recipe(recipe, out)
    rows = read_metrics(out / "instruct" / "metrics.jsonl")[args.warmup :]
    return {
        "seconds": sum(r["step_time"] for r in rows),
        "cpu": sum(r["cpu_time"] for r in rows),
        "tokens": sum(r["tokens"] for r in rows),
        "supervised": sum(r["supervised_tokens"] for r in rows),
        "positions": round(sum(r["tokens"] / (1 - r["padding"]) for r in rows)),
        "loss": sum(r["loss"] for r in rows) / len(rows),
    }


def trainer_run(model_dir: Path, data: Path, args, out: Path) -> dict:
    """Plain transformers.Trainer: random batches, pad to longest, full logits."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from kanva.data.llava import load_llava
    from kanva.model import load_model

    model, proc = load_model(model_dir)
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)  # the same trainable set as Kanva's instruct stage
    samples = load_llava(data)

    class Encoded(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            return proc.encode(samples[i], image_root=data.parent, max_length=args.max_length, template="chat")

    seen: list[tuple[int, int, int]] = []  # per micro-batch: tokens, supervised, padded positions

    def collate(encs):
        n = max(len(e.input_ids) for e in encs)
        pad = proc.tokenizer.pad_token_id
        ids = torch.tensor([e.input_ids + [pad] * (n - len(e.input_ids)) for e in encs])
        labels = torch.tensor([e.labels + [-100] * (n - len(e.labels)) for e in encs])
        mask = torch.tensor([[1] * len(e.input_ids) + [0] * (n - len(e.input_ids)) for e in encs])
        seen.append((int(mask.sum()), int((labels[:, 1:] != -100).sum()), mask.numel()))
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        pix = [e.pixel_values for e in encs if e.pixel_values is not None]
        if pix:
            batch["pixel_values"] = torch.cat(pix)
        return batch

    ends: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        # Step i's time is end(i) - end(i-1): it then includes fetching and encoding the step's batches,
        # which Trainer does before `on_step_begin` (Kanva's per-step time includes them too).
        def on_step_end(self, a, state, control, **kw):
            ends.append((time.perf_counter(), time.process_time()))

    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
        max_steps=args.warmup + args.steps, learning_rate=2e-5, lr_scheduler_type="cosine", warmup_steps=0.1,
        weight_decay=0.0, max_grad_norm=1.0, use_cpu=True, report_to="none", save_strategy="no",
        logging_strategy="no", dataloader_num_workers=0, dataloader_pin_memory=False, remove_unused_columns=False,
        disable_tqdm=False, seed=0,
    )  # fmt: skip
    Trainer(model=model, args=targs, train_dataset=Encoded(), data_collator=collate, callbacks=[Clock()]).train()
    # Trainer fetches a step's micro-batches before the step begins: step i used micro-batches i*A .. i*A+A-1.
    a = args.grad_accum
    steps = range(args.warmup, args.warmup + args.steps)
    mb = [seen[i * a + j] for i in steps for j in range(a)]
    first, last = ends[args.warmup - 1], ends[args.warmup + args.steps - 1]
    return {
        "seconds": last[0] - first[0],
        "cpu": last[1] - first[1],
        "tokens": sum(m[0] for m in mb),
        "supervised": sum(m[1] for m in mb),
        "positions": sum(m[2] for m in mb),
        "loss": float("nan"),  # other samples per step (random batches): not comparable
    }


# The loops side by side: (runner, kwargs). Kanva's three differ only in how a micro-batch is formed.
LOOPS = {
    "trainer": ("transformers.Trainer", trainer_run, {}),
    "padded": ("kanva padded", kanva_run, {"group": False}),
    "grouped": ("kanva grouped", kanva_run, {"group": True}),
    "packed": ("kanva packed", kanva_run, {"group": True, "packing": True}),
    "lm": ("kanva lm only", kanva_run, {"lm_only": True}),
    "lm-frozen": ("kanva lm, frozen", kanva_run, {"lm_only": True, "frozen": True}),
}


def _add(acc: dict, r: dict) -> None:
    for k, v in r.items():
        acc[k] = acc.get(k, 0) + v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="timed optimizer steps per loop and round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the loops, alternating which goes first")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine two OpenMP threads spin-wait on each "
                         "other and run ~4x slower; with more, also set OMP_WAIT_POLICY=PASSIVE)")
    ap.add_argument("--images", type=int, default=96, help="toy images (instruction samples)")
    ap.add_argument("--loops", default="trainer,padded,grouped,packed",
                    help="comma-separated, side by side: trainer (HF Trainer), padded (random batches padded to the "
                         "longest), grouped (length-grouped), packed (length-grouped, one padding-free row), lm "
                         "(grouped, the LM alone trained), lm-frozen (lm with --lm-frozen-layers frozen)")
    ap.add_argument("--lm-frozen-layers", type=int, default=15, help="for the lm-frozen loop (SmolLM2-135M has 30)")
    ap.add_argument("--model-dir", help="a built smol model (default: build it into a temp dir)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    if args.warmup < 1:
        ap.error("--warmup must be >= 1 (the Trainer's first timed step is measured from the end of the last warmup step)")
    torch.set_num_threads(args.threads)

    from kanva.model import build_preset, load_model
    from kanva.train.toy import make_toy_data

    names = [n.strip() for n in args.loops.split(",")]
    unknown = [n for n in names if n not in LOOPS]
    if unknown:
        ap.error(f"--loops: unknown {unknown}; known: {list(LOOPS)}")
    totals = {LOOPS[n][0]: {} for n in names}
    with tempfile.TemporaryDirectory(prefix="kanva-bench-") as tmp:
        tmp = Path(tmp)
        model_dir = Path(args.model_dir) if args.model_dir else build_preset("smol", tmp / "smol")
        data = make_toy_data(tmp / "toy", n_images=args.images)["instruct"]
        model, proc = load_model(model_dir)
        flops = FlopModel(model)
        per_image = proc.num_image_tokens
        del model

        peaks = [matmul_peak()]
        for rnd in range(args.rounds):
            for n in names[:: 1 if rnd % 2 == 0 else -1]:  # alternate which loop goes first
                label, run, kw = LOOPS[n]
                _add(totals[label], run(model_dir, data, args, tmp / f"{n}-{rnd}", **kw))
            peaks.append(matmul_peak())  # between rounds too: the machine may be shared
    peak = max(peaks)

    rows = []
    for name, r in totals.items():
        tps = r["tokens"] / r["seconds"]
        fl = flops.step(r["tokens"], r["supervised"]) / r["seconds"]
        rows.append((name, tps, r["tokens"] / r["cpu"], r["seconds"] / (args.steps * args.rounds),
                     1 - r["tokens"] / r["positions"], fl / 1e9, fl / peak, r["loss"] / args.rounds))  # fmt: skip
    threads = torch.get_num_threads()
    gb = args.batch_size * args.grad_accum
    print(f"\nsmol preset (SmolLM2-135M + 4-layer SigLIP), projector + LM trained (lm loops: the LM alone), "
          f"global batch {gb} ({args.batch_size} x {args.grad_accum} accum), {args.steps} timed steps x "
          f"{args.rounds} round(s) after {args.warmup} warmup, {threads} threads, float32 matmul peak {peak / 1e9:.1f} GFLOP/s, "
          f"{per_image} image tokens/image, max_length {args.max_length}")  # fmt: skip
    head = ("loop", "tokens/s", "tok/CPU-s", "s/step", "padding", "GFLOP/s", "MFU", "loss", "vs first", "vs (CPU)")
    print("| " + " | ".join(f"{h:>14}" for h in head) + " |")
    print("|" + "|".join("-" * 16 for _ in head) + "|")
    for name, tps, tpc, sps, pad, gf, mfu, loss in rows:
        cells = (name.replace("transformers.", "HF "), f"{tps:.1f}", f"{tpc:.1f}", f"{sps:.2f}", f"{pad:.1%}",
                 f"{gf:.1f}", f"{mfu:.1%}", f"{loss:.4f}", f"{tps / rows[0][1]:.2f}x", f"{tpc / rows[0][2]:.2f}x")  # fmt: skip
        print("| " + " | ".join(f"{c:>14}" for c in cells) + " |")
    load = os.getloadavg()[0]
    print(f"(tokens/s: wall clock; tok/CPU-s: per CPU-second of the training process, steadier on a shared "
          f"machine; 1-min load average now {load:.1f} on {os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_flops": peak, "totals": totals, "args": vars(args)}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
