"""Instruction-data throughput and acceptance: rule-only evolution on 10,000 world-like images, local-model
paraphrase, acceptance per operator.

    python benchmarks/data_throughput.py [--images 10000] [--rounds 3] [--repeat 1] [--paraphrase 16]
                                         [--llm-images 8] [--no-local]

1. Rule-only: world-like annotations for N images are synthesized in memory (kanva.data.synth, the same
   fields as the knowledge world writes), seeded by the rule templates, then evolved by
   `kanva.data.evolve.Evolver` (the loop `kanva data evolve` runs) in chunks of 64 images, with the shipped KB.
   Units/s counts candidate question-answer units made and judged (elimination, dedup, caps, provenance
   record). One process, one thread; CPU time is reported beside wall time because a shared machine's
   wall clock measures the neighbours too.
2. Local paraphrase: SmolLM2-135M-Instruct (in-process, batch 8, 1 torch thread) paraphrases K units.
3. Acceptance per operator: the rule run above, plus one LLM-only round with the local model on a few images
   (which operators a 135M model can do).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter


def rule_run(n_images: int, rounds: int, repeat: int = 1):
    from kanva.data.coco import coco_from_dicts
    from kanva.data.config import EvolveConfig
    from kanva.data.evolve import Evolver
    from kanva.data.join import seed_units
    from kanva.data.runner import load_knowledge
    from kanva.data.seed import make_seeds
    from kanva.data.synth import synth_coco

    inst, caps = synth_coco(n_images, seed=0)
    coco = coco_from_dicts(inst, caps, ".", "bench")
    kb = load_knowledge(None, coco.category_names)
    t0 = time.perf_counter()
    samples, _ = make_seeds(coco, kb, ["conversation", "detail", "reasoning"], seed=0, progress=False)
    seed_s = time.perf_counter() - t0
    by_image: dict[int, list] = {}
    for s in samples:
        rec = coco.lookup(s["image"])
        by_image.setdefault(rec.id, []).extend(seed_units(s, rec))
    ids = sorted(by_image)
    cfg = EvolveConfig()
    import gc

    gc.freeze()  # as `kanva data evolve` does: the loaded annotations and seeds live for the whole run
    best = None
    for _ in range(repeat):  # best of N: a busy machine only ever makes a run slower
        ev = Evolver(coco, kb, cfg, seed=0, rounds=rounds)
        stats: dict[str, Counter] = {}
        n = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for k in range(0, len(ids), cfg.chunk_size):
            chunk = ids[k : k + cfg.chunk_size]
            recs, _ = ev.run_chunk([(coco.images[i], by_image[i]) for i in chunk])
            for r in recs:  # provenance serialization is part of the work (the disk write is not)
                json.dumps(r, ensure_ascii=False)
                count(stats, r)
            n += len(recs)  # like `kanva data evolve`, keep nothing but counts once a chunk is written
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if best is None or cpu < best[3]:
            best = (stats, n, wall, cpu)
    stats, n, wall, cpu = best
    return coco, kb, samples, stats, n, seed_s, wall, cpu


def count(stats: dict, r: dict) -> None:
    c = stats.setdefault(r["operator"], Counter())
    c["n"] += 1
    c["kept"] += r["status"] == "kept"
    if r["status"] != "kept":
        c[r["reason"]] += 1


def local_paraphrase(coco, kb, samples, k: int):
    from kanva.data.config import EvolveConfig
    from kanva.data.eliminate import LLMTrace, check
    from kanva.data.join import seed_units
    from kanva.data.llm.local import LocalBackend
    from kanva.data.ops.base import Context
    from kanva.data.ops.llm import LLMParaphrase

    be = LocalBackend(batch_size=8, threads=1)
    cfg = EvolveConfig()
    op = LLMParaphrase()
    jobs = []
    rng = random.Random(0)
    for s in samples:
        rec = coco.lookup(s["image"])
        ctx = Context(rec, coco, kb, cfg, coco.popular())
        for u in seed_units(s, rec)[:1]:
            jobs.append((ctx, u, op.options(ctx, u)[0][1](ctx, u, rng)))
        if len(jobs) >= k:
            break
    t0 = time.perf_counter()
    replies = be.complete([j.request for _, _, j in jobs])
    dt = time.perf_counter() - t0
    reasons = Counter()
    for (ctx, parent, job), reply in zip(jobs, replies):
        if reply.text is None:
            reasons[reply.error] += 1
            continue
        out = job.finish(reply.text)
        if isinstance(out, str):
            reasons[out] += 1
            continue
        from kanva.data.unit import Unit

        unit = Unit("p", parent.image, parent.image_id, out.question, out.answer, out.fmt, out.options,
                    objects=out.objects, absent=out.absent, slots=out.slots, facts=out.facts)
        trace = LLMTrace(job.prompt.static_text(), job.request.prompt_text(), reply.text)
        reasons[check(unit, ctx.rec, parent, trace, paraphrase=True) or "kept"] += 1
    return len(jobs), dt, reasons, be


def local_llm_round(coco, kb, samples, be, n_images: int):
    from kanva.data.config import EvolveConfig
    from kanva.data.evolve import Evolver
    from kanva.data.join import seed_units

    cfg = EvolveConfig()
    cfg.weights = {k: (1.0 if k.startswith("llm_") else 0.0) for k in cfg.weights}
    by_image: dict[int, list] = {}
    for s in samples:
        rec = coco.lookup(s["image"])
        if rec.id in by_image or len(by_image) < n_images:
            by_image.setdefault(rec.id, []).extend(seed_units(s, rec)[:2])
    ev = Evolver(coco, kb, cfg, seed=0, rounds=1, backend=be)
    t0 = time.perf_counter()
    recs, _ = ev.run_chunk([(coco.images[i], by_image[i]) for i in sorted(by_image)])
    return recs, time.perf_counter() - t0


def acceptance_rows(stats: dict) -> list[tuple[str, str]]:
    rows = []
    for op in sorted(stats):
        c = stats[op]
        top = ", ".join(f"{k} {v}" for k, v in c.most_common() if k not in ("n", "kept"))[:60]
        rows.append((f"acceptance {op}", f"{c['kept']}/{c['n']} = {c['kept'] / c['n']:.2f}" + (f" ({top})" if top
                                                                                               else "")))
    return rows


def calibration() -> float:
    """CPU seconds of a fixed pure-Python loop (about 0.4 s on an idle modern core): how busy the core is."""
    c = time.process_time()
    x = 0
    for i in range(10**7):
        x += i
    return time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paraphrase", type=int, default=16)
    ap.add_argument("--llm-images", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1, help="best of N rule-only runs (default 1)")
    ap.add_argument("--no-local", action="store_true", help="skip the local-model measurements")
    args = ap.parse_args()

    rows = [("calibration before: 10^7-step Python loop, CPU s", f"{calibration():.2f}")]
    coco, kb, samples, stats, n, seed_s, wall, cpu = rule_run(args.images, args.rounds, args.repeat)
    rows.append(("calibration after", f"{calibration():.2f}"))
    kept = sum(c["kept"] for c in stats.values())
    rows.append((f"rule seeds ({args.images} images, 3 types)", f"{len(samples)} samples in {seed_s:.1f} s"))
    rows.append((f"rule-only evolve, {args.rounds} rounds: candidates", f"{n} ({kept} kept)"))
    rows.append(("rule-only units/s (CPU time, one core)", f"{n / cpu:,.0f}  [{cpu:.1f} s]"))
    rows.append(("rule-only kept units/s (CPU time)", f"{kept / cpu:,.0f}"))
    rows.append(("rule-only units/s (wall clock)", f"{n / wall:,.0f}  [{wall:.1f} s]"))
    rows += acceptance_rows(stats)
    if not args.no_local:
        n, dt, reasons, be = local_paraphrase(coco, kb, samples, args.paraphrase)
        rows.append((f"local SmolLM2 paraphrase ({n} items, batch 8)", f"{n / dt:.2f} items/s  [{dt:.1f} s]"))
        rows.append(("local paraphrase outcomes", ", ".join(f"{k} {v}" for k, v in reasons.most_common())))
        recs, dt = local_llm_round(coco, kb, samples, be, args.llm_images)
        rows.append((f"local LLM-only round ({args.llm_images} images)", f"{len(recs)} candidates in {dt:.1f} s"))
        llm_stats: dict[str, Counter] = {}
        for r in recs:
            count(llm_stats, r)
        rows += acceptance_rows(llm_stats)
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k:<{width}} | {v} |")


if __name__ == "__main__":
    main()
