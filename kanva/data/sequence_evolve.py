"""`kanva data evolve --kind set|clip`: evolution of set and clip samples, by the single-image machinery.

The loop is the single-image one (kanva/data/evolve.py: per-unit RNG, elimination with one reason code,
exact + MinHash dedup, caps, provenance for every candidate), run over the set and clip operators
(kanva/data/ops/sets.py, ops/clips.py) with each set or clip as the "image": its record is the union of its
images or tracks (kanva/data/sequence_join.py) and `Context.media` the set or clip the operators read their
facts from. Chunks, markers, resume, shards and finalize (yes/no 1:1, uniform letters, template share) are
the single-image runner's (kanva/data/runner.py), so a run killed at any point resumes without lost or
repeated samples and the output is byte-identical per seed and config.

Without the knowledge base (`knowledge: false`, `--no-knowledge`) the operators see an empty KB, as
single-image ones do: `set_knowledge` and `clip_knowledge` have nothing to ask and distractors skip KB
siblings. Only rule operators run here (no LLM operator reads sets or clips yet).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kanva.data.coco import ImageRec
from kanva.data.config import EvolveConfig
from kanva.data.evolve import Evolver, ImageState
from kanva.data.exclude import read_excludes
from kanva.data.join import in_shard
from kanva.data.kbview import KBView
from kanva.data.llava import load_llava
from kanva.data.ops.base import Operator
from kanva.data.rundir import RunDir
from kanva.data.runner import chunk_items, evolve_chunks, file_sha256, finalize_dir, kb_digest, load_knowledge
from kanva.data.sequence_join import Sequences, join_sequences, load_sequences
from kanva.data.unit import Unit
from kanva.errors import KanvaError


def sequence_operators(kind: str) -> list[Operator]:
    from kanva.data.ops.clips import clip_operators
    from kanva.data.ops.sets import set_operators

    return set_operators() if kind == "set" else clip_operators()


class SequenceEvolver(Evolver):
    """The Evolver over sets or clips: their operators, weighted by `EvolveConfig.sequence_weights`."""

    def __init__(self, seqs: Sequences, kb: KBView, cfg: EvolveConfig, seed: int, rounds: int):
        super().__init__(seqs.coco, kb, cfg, seed, rounds, None)
        self.seqs = seqs
        ops = [(op, cfg.sequence_weights.get(op.name, 0.0)) for op in sequence_operators(seqs.kind)]
        self.ops = [(op, w) for op, w in ops if w > 0]

    def new_state(self, rec: ImageRec, seeds: list[Unit]) -> ImageState:
        st = super().new_state(rec, seeds)
        st.ctx.media = self.seqs.items[rec.id]
        return st


def run_sequence_evolve(input_path: str | Path, world: str | Path, split: str, out: str | Path, kind: str, *,
                        rounds: int = 3, seed: int = 0, shard: tuple[int, int] = (0, 1),
                        exclude: Iterable[str | Path] = (), cfg: EvolveConfig | None = None, kb: Any = None,
                        overwrite: bool = False, progress: bool = True, stop_after: int | None = None) -> Path:
    """Evolve the set (`kind` "set") or clip ("clip") samples of `input_path` against `world`'s `split`, into
    `out/evolved.json` (+ provenance); resumes an interrupted run in `out`. Samples of another kind pass
    through unchanged."""
    cfg = cfg or EvolveConfig()
    if rounds < 0:
        raise KanvaError(f"--rounds {rounds}: must be >= 0")
    seqs = load_sequences(world, split, kind)
    exclude = [str(p) for p in exclude]
    items = join_sequences(load_llava(input_path), seqs, str(input_path), read_excludes(exclude))
    items = [it for it in items if in_shard(it.shard_key, shard)]
    kbv = load_knowledge(kb, seqs.coco.category_names)
    annotations = Path(world) / "annotations" / f"{kind}s_{split}.json"
    config = {
        "input": str(input_path), "input_sha256": file_sha256(input_path), "kind": kind, "world": str(world),
        "split": split, "annotations_sha256": file_sha256(annotations), "rounds": rounds, "seed": seed,
        "shard": list(shard), "llm": "none", "exclude": {p: file_sha256(p) for p in exclude},
        "evolve": cfg.record(), "config_digest": cfg.digest(), "kb": kb_digest(kbv),
    }
    rd = RunDir(out)
    rd.start(config, overwrite=overwrite)
    done, final = rd.recover()
    if final:
        return rd.path / "evolved.json"
    evolver = SequenceEvolver(seqs, kbv, cfg, seed, rounds)
    chunks = chunk_items(items, cfg.chunk_size)
    if not evolve_chunks(rd, chunks, evolver, done, f"evolve {kind}s {shard[0]}/{shard[1]}", progress, stop_after):
        return rd.path / "evolved.json"
    return finalize_dir(rd, cfg)
