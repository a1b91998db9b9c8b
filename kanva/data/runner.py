"""`kanva data evolve` and `kanva data merge`: inputs, shards, resumable chunks, finalize, outputs.

evolve: load annotations, the KB and the input LLaVA file; join by image; keep this shard's images; evolve
them chunk by chunk (each chunk committed with a marker, see rundir.py); then balance globally and write
`DIR/evolved.json`. merge: combine the finished shard directories of one configuration and finalize once, which
gives exactly the output of an unsharded run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kanva.data.coco import CocoSet
from kanva.data.config import EvolveConfig
from kanva.data.evolve import Evolver
from kanva.data.exclude import read_excludes
from kanva.data.finalize import balance, to_samples
from kanva.data.image_sources import (GROUNDING_LABELS, Lexicon, annotation_files, coco_specs, load_annotations,
                                      no_annotations)
from kanva.data.join import SeedItem, in_shard, join
from kanva.data.kbview import KBView
from kanva.data.llava import load_llava, save_llava
from kanva.data.llm.base import Backend
from kanva.data.prompts import prompt_hashes
from kanva.data.rundir import RunDir
from kanva.data.unit import Unit
from kanva.errors import KanvaError


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def default_kb() -> Any:
    try:
        from kanva.knowledge import load_kb
    except ImportError as e:
        raise KanvaError(f"the knowledge base (kanva.knowledge.load_kb) is not available: {e}") from None
    return load_kb()


def load_knowledge(kb: Any, categories: Iterable[str]) -> KBView:
    """The KB view: `kb` when given (tests, other KBs), else the curated KB of `kanva.knowledge`."""
    if kb is None:
        kb = default_kb()
    return kb if isinstance(kb, KBView) else KBView(kb, categories)


def kb_vocabulary(kb: Any) -> list[str]:
    """The categories a KB knows: what the answers of unannotated images are matched against."""
    if isinstance(kb, KBView):
        return sorted(kb.info)
    return list(getattr(kb, "categories", ()))


def kb_digest(kb: KBView) -> str:
    blob = json.dumps({c: asdict(i) for c, i in sorted(kb.info.items())}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chunk_items(items: list[SeedItem], size: int) -> list[list[SeedItem]]:
    """Group seed items by image (sorted by image id), `size` images per chunk; non-evolvable ones in chunk 0."""
    by_image: dict[int, list[SeedItem]] = {}
    other: list[SeedItem] = []
    for it in items:
        if it.status == "seed":
            by_image.setdefault(it.rec.id, []).append(it)
        else:
            other.append(it)
    ids = sorted(by_image)
    chunks = [[it for iid in ids[k : k + size] for it in by_image[iid]] for k in range(0, len(ids), size)]
    if other:
        if chunks:
            chunks[0] = other + chunks[0]
        else:
            chunks = [other]
    return chunks


def input_records(items: list[SeedItem]) -> tuple[list[dict], list[dict]]:
    """Provenance records and units.jsonl lines for the input samples of a chunk."""
    prov, lines = [], []
    for it in items:
        sid = str(it.sample["id"])
        rec: dict[str, Any] = {"id": sid, "stage": "input", "status": it.status, "index": it.index}
        if it.rec is not None:
            rec.update(image=it.rec.key, image_id=it.rec.id, grounding=GROUNDING_LABELS[it.rec.grounding],
                       units=[u.id for u in it.units])
        prov.append(rec)
        if it.status != "excluded":
            lines.append({"kind": "seed", "index": it.index, "sample": it.sample})
    return prov, lines


def run_evolve(input_path: str | Path, coco_dir: str | Path | Iterable[str | Path] | None, split: str | None,
               out: str | Path, *, rounds: int = 3,
               seed: int = 0, shard: tuple[int, int] = (0, 1), exclude: Iterable[str | Path] = (),
               cfg: EvolveConfig | None = None, backend: Backend | None = None, llm_spec: str = "none",
               kb: Any = None, coco: CocoSet | None = None, overwrite: bool = False, progress: bool = True,
               stop_after: int | None = None, freeze_gc: bool = False) -> Path:
    """Evolve `input_path` into `out/evolved.json` (+ provenance). Resumes an interrupted run in `out`.

    `coco_dir`: the annotations, as one or more COCO roots (with `split`) or instances files, or None; images
    in none of them are grounded by their answers (kanva/data/image_sources.py).

    `stop_after` (tests) returns after that many chunks, as a kill would, without finalizing. `freeze_gc`
    (the CLI sets it) moves the loaded annotations and samples, which live for the whole run, out of the
    cyclic garbage collector's sight (`gc.freeze`): on 10,000 images its full collections otherwise rescan
    millions of them (measured 1.4x slower).
    """
    cfg = cfg or EvolveConfig()
    if rounds < 0:
        raise KanvaError(f"--rounds {rounds}: must be >= 0")
    specs = coco_specs(coco_dir)
    coco = coco or load_annotations(specs, split) or no_annotations()
    exclude = [str(p) for p in exclude]
    excluded = read_excludes(exclude)
    samples = load_llava(input_path)
    if kb is None:
        kb = default_kb()
    items = join(samples, coco, str(input_path), excluded, Lexicon(kb_vocabulary(kb)))
    named = {c for it in items if it.rec is not None for c in it.rec.named}  # all shards: one KB digest
    items = [it for it in items if in_shard(it.shard_key, shard)]
    kbv = load_knowledge(kb, [*coco.category_names, *sorted(named)])

    config = {
        "input": str(input_path), "input_sha256": file_sha256(input_path), "coco": specs, "split": split,
        "instances_sha256": {str(p): file_sha256(p) for p in annotation_files(specs, split)},
        "rounds": rounds, "seed": seed, "shard": list(shard), "llm": llm_spec,
        "model": backend.model if backend is not None else None,
        "exclude": {p: file_sha256(p) for p in exclude}, "evolve": cfg.record(), "config_digest": cfg.digest(),
        "prompts": prompt_hashes(), "kb": kb_digest(kbv),
    }
    rd = RunDir(out)
    rd.start(config, overwrite=overwrite)
    done, final = rd.recover()
    if final:
        return rd.path / "evolved.json"

    chunks = chunk_items(items, cfg.chunk_size)
    evolver = Evolver(coco, kbv, cfg, seed, rounds, backend)
    if freeze_gc:
        import gc

        gc.freeze()
    if not evolve_chunks(rd, chunks, evolver, done, f"evolve {shard[0]}/{shard[1]}", progress, stop_after):
        return rd.path / "evolved.json"
    return finalize_dir(rd, cfg)


def evolve_chunks(rd: RunDir, chunks: list[list[SeedItem]], evolver: Evolver, done: set[int], desc: str,
                  progress: bool, stop_after: int | None) -> bool:
    """Evolve and commit every chunk not in `done`, in order; False when `stop_after` chunks ran first."""
    from tqdm import tqdm

    n_images = sum(len({it.rec.id for it in ch if it.rec is not None}) for ch in chunks)
    done_images = sum(len({it.rec.id for it in chunks[k] if it.rec is not None}) for k in done if k < len(chunks))
    bar = tqdm(total=n_images, initial=done_images, desc=desc, unit="img", disable=not progress)
    ran = 0
    for k, chunk in enumerate(chunks):
        if k in done:
            continue
        if stop_after is not None and ran >= stop_after:
            bar.close()
            return False
        prov, lines = input_records(chunk)
        by_image: dict[int, list[Unit]] = {}
        recs = {}
        for it in chunk:
            if it.status == "seed":
                by_image.setdefault(it.rec.id, []).extend(it.units)
                recs[it.rec.id] = it.rec
        records, states = evolver.run_chunk([(recs[i], by_image[i]) for i in sorted(by_image)])
        prov += records
        for st in states:
            lines += [{"kind": "unit", **u.to_dict()} for u in st.kept]
        kept = sum(r.get("status") == "kept" for r in records)
        rd.commit_chunk(k, prov, lines, {"images": len(states), "candidates": len(records), "kept": kept})
        bar.update(len(states))
        ran += 1
    bar.close()
    return True


def finalize_dir(rd: RunDir, cfg: EvolveConfig) -> Path:
    """Balance the kept units of `rd`, write evolved.json, append the finalize records and the final marker."""
    seeds: list[tuple[int, dict]] = []
    units: list[Unit] = []
    for line in rd.read_units():
        if line["kind"] == "seed":
            seeds.append((line["index"], line["sample"]))
        else:
            units.append(Unit.from_dict({k: v for k, v in line.items() if k != "kind"}))
    units, records = balance(units, cfg)
    samples = [s for _, s in sorted(seeds, key=lambda x: x[0])] if cfg.keep_seeds else []
    samples += to_samples(units, cfg.pack, cfg.mc_answer)
    path = save_llava(samples, rd.path / "evolved.json")
    rd.commit_final(records, {"samples": len(samples), "units": len(units), "seeds": len(seeds)})
    return path


def merge_runs(shard_dirs: list[str | Path], out: str | Path) -> Path:
    """Merge finished shard runs of one configuration into `out` (finalized once over all of them)."""
    if not shard_dirs:
        raise KanvaError("merge: no shard directories given")
    rds = [RunDir(d) for d in shard_dirs]
    configs = [rd.config() for rd in rds]
    base = {k: v for k, v in configs[0].items() if k != "shard"}
    n = configs[0]["shard"][1]
    seen: dict[int, Path] = {}
    for rd, c in zip(rds, configs):
        if {k: v for k, v in c.items() if k != "shard"} != base:
            diff = sorted(k for k in set(base) | set(c) if k != "shard" and base.get(k) != c.get(k))
            raise KanvaError(f"{rd.path}: not the same run configuration as {rds[0].path} (differs in {diff})")
        i, m = c["shard"]
        if m != n:
            raise KanvaError(f"{rd.path}: shard {i}/{m}, but {rds[0].path} is one of {n} shards")
        if i in seen:
            raise KanvaError(f"{rd.path}: shard {i}/{n} is also in {seen[i]}")
        seen[i] = rd.path
        if not any(mk.get("final") for mk in rd.markers()):
            raise KanvaError(f"{rd.path}: shard {i}/{n} has not finished (run its evolve command again to resume)")
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise KanvaError(f"merge: shard(s) {missing} of {n} are missing")

    cfg = EvolveConfig(**base["evolve"])
    dest = RunDir(out)
    dest.start({**base, "shard": [0, 1], "merged_from": [str(rd.path) for rd in rds]}, overwrite=True)
    dest.recover()
    prov: list[str] = []
    lines: list[str] = []
    for rd in sorted(rds, key=lambda r: r.config()["shard"][0]):
        with rd.prov.open(encoding="utf-8") as f:
            prov += [ln for ln in f if json.loads(ln).get("stage") != "finalize"]
        with rd.units.open(encoding="utf-8") as f:
            lines += [ln for ln in f if ln.strip()]
    with dest.prov.open("w", encoding="utf-8") as f:
        f.writelines(prov)
    with dest.units.open("w", encoding="utf-8") as f:
        f.writelines(lines)
    return finalize_dir(dest, cfg)
