"""Generate a world: images under `OUT/{split}/`, COCO files under `OUT/annotations/`, `OUT/world.json`.

Workers render images in parallel (each image depends only on its seed, so the bytes are the same for any
number of workers); the main process appends each image's record, in index order, to
`OUT/.progress/{split}.jsonl`. An interrupted run continues from there with `resume=True`; the COCO files
are written from those records once a split is complete, and `.progress` is removed at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import shutil
from pathlib import Path

from kanva.errors import KanvaError
from kanva.world.coco_export import captions_json, clips_json, instances_json, sets_captions_json, sets_json, write_json
from kanva.world.config import WorldConfig
from kanva.world.glyphs import font_path, sign_font_path
from kanva.world.seeds import SET_IMAGE_STRIDE, SPLITS, held_out_pairs, image_id, image_seed

KINDS = ("images", "sets", "clips")  # generated in this order; sets and clips only when asked for

MANIFEST = "world.json"
FORMAT_VERSION = 1


@dataclasses.dataclass
class _Job:
    """What a worker needs to render any image of the run (pickled once per worker)."""

    out: str
    cfg: WorldConfig
    size: int
    seed: int
    forbidden: set
    pairs: list[tuple[str, str]]


def _save(pixels, path: Path, cfg: WorldConfig) -> None:
    from PIL import Image

    tmp = path.with_name(path.name + ".tmp")
    if cfg.image_format == "png":
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=1)
    else:
        Image.fromarray(pixels).save(tmp, format="JPEG", quality=cfg.jpeg_quality)
    tmp.replace(path)


def _render_one(job: _Job, renderer, task: tuple[str, str, int]) -> dict:
    """Render item `index` of `kind` in `split` with `renderer` (a WorldRenderer), write its files, return
    its record (an image's; a set's with one image record each; a clip's)."""
    kind, split, index = task
    cfg = job.cfg
    seed = image_seed(job.seed, split, index, kind)
    novel = job.pairs if split == "novel" else None
    fmt = cfg.image_format
    if kind == "images":
        pixels, rec = renderer.render(seed, job.forbidden, novel)
        rec["id"] = image_id(split, index)
        rec["file_name"] = f"{rec['id']:012d}.{fmt}"
        _save(pixels, Path(job.out) / split / rec["file_name"], cfg)
        return rec
    if kind == "sets":
        from kanva.world.sets import render_set

        pixels, rec = render_set(renderer, seed, job.forbidden, novel)
        rec = {"id": image_id(split, index, kind), **rec}
        for k, (px, img) in enumerate(zip(pixels, rec["images"])):
            img["id"] = rec["id"] * SET_IMAGE_STRIDE + k
            img["file_name"] = f"{rec['id']:012d}_{k}.{fmt}"
            _save(px, Path(job.out) / "sets" / split / img["file_name"], cfg)
        return rec
    from kanva.world.clips import write_mp4, render_clip

    frames, rec = render_clip(renderer, seed, job.forbidden, novel)
    rec = {"id": image_id(split, index, kind), **rec}
    folder = Path(job.out) / "clips" / split
    name = f"{rec['id']:012d}"
    (folder / name).mkdir(exist_ok=True)
    rec["file_names"] = [f"{name}/{t:05d}.{fmt}" for t in range(len(frames))]
    for px, fname in zip(frames, rec["file_names"]):
        _save(px, folder / fname, cfg)
    rec["video"] = f"{name}.mp4"
    write_mp4(frames, folder / rec["video"])
    return rec


# A pool worker's render function, bound once per worker process by _init_worker (the multiprocessing
# initializer idiom: the fonts and glyph cache are built once per process, not once per image).
_worker_render = None


def _init_worker(job: _Job) -> None:
    global _worker_render
    from kanva.world.render import WorldRenderer

    _worker_render = functools.partial(_render_one, job, WorldRenderer(job.cfg, job.size))


def _worker_task(task: tuple[str, str, int]) -> dict:
    return _worker_render(task)


def _manifest(cfg: WorldConfig, counts: dict[str, int], seed: int, size: int, pairs, extra: dict) -> dict:
    """The run's manifest; `sets`/`clips` (with the fixed set and clip sizes) only when some are asked for,
    so a world without them keeps its bytes."""
    return {
        "kanva_world": FORMAT_VERSION,
        "seed": seed,
        "size": size,
        "splits": {s: counts.get(s, 0) for s in SPLITS},
        "held_out_pairs": [list(p) for p in pairs],
        "categories_drawn": cfg.drawn_categories(),
        "config": dataclasses.asdict(cfg),
        **extra,
        "complete": False,
    }


def _read_progress(path: Path, split: str, kind: str = "images") -> list[dict]:
    """Records written so far; a torn last line (the run died mid-write) is dropped and redone."""
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().split("\n")
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n >= len(lines) - 2:  # only the last line may be torn
                break
            raise KanvaError(f"{path}:{n + 1}: corrupt progress record; rerun with --overwrite") from None
        if rec.get("id") != image_id(split, len(records), kind):
            raise KanvaError(f"{path}:{n + 1}: record out of order; rerun with --overwrite")
        records.append(rec)
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return records


def _prepare_out(out: Path, manifest: dict, overwrite: bool, resume: bool) -> None:
    ours = [out / MANIFEST, out / ".progress", out / "annotations", out / "sets", out / "clips", *(out / s for s in SPLITS)]
    if out.exists() and not out.is_dir():
        raise KanvaError(f"{out}: exists and is not a directory")
    if resume and (out / MANIFEST).is_file():
        try:
            old = json.loads((out / MANIFEST).read_text())
        except json.JSONDecodeError:
            raise KanvaError(f"{out / MANIFEST}: not valid JSON; rerun with --overwrite") from None
        for key in ("seed", "size", "splits", "config", "sets", "clips"):
            if old.get(key) != manifest.get(key):
                raise KanvaError(
                    f"{out / MANIFEST}: cannot resume, {key} differs (was {old.get(key)!r}); "
                    "use the same options or --overwrite"
                )
        return
    if resume:
        raise KanvaError(f"{out}: nothing to resume (no {MANIFEST}); drop --resume")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise KanvaError(f"{out}: already exists; pass --overwrite to replace it or --resume to finish it")
        for p in ours:  # only what a world run writes: never a user's other files
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif out.exists() and not overwrite:
        raise KanvaError(f"{out}: already exists (empty); pass --overwrite to use it")
    out.mkdir(parents=True, exist_ok=True)
    write_json(manifest, out / MANIFEST)


def _check_counts(counts: dict[str, int], kind: str) -> None:
    """Known splits, no negative count; errors name the flag (`--train`, `--sets train`)."""
    unknown = sorted(set(counts) - set(SPLITS))
    if unknown:
        raise KanvaError(f"{'' if kind == 'images' else f'--{kind}: '}unknown split(s) {unknown}; splits: {list(SPLITS)}")
    for split, n in counts.items():
        if n < 0:
            raise KanvaError(f"--{split if kind == 'images' else f'{kind} {split}'}: must be >= 0, got {n}")


def generate_world(
    out: str | Path,
    counts: dict[str, int],
    seed: int,
    cfg: WorldConfig,
    size: int = 224,
    workers: int = 2,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    sets: dict[str, int] | None = None,
    clips: dict[str, int] | None = None,
) -> Path:
    """Write a world to `out` with `counts[split]` images per split, and `sets[split]` multi-image sets and
    `clips[split]` clips (kanva/world/sets.py, clips.py; none by default); return `out`.

    Raises KanvaError for bad counts or sizes, an existing `out` without `overwrite`/`resume`,
    or a novel split the config cannot hold out pairs for.
    """
    from tqdm import tqdm

    out = Path(out)
    wanted = {"images": counts, "sets": dict(sets or {}), "clips": dict(clips or {})}
    for kind, c in wanted.items():
        _check_counts(c, kind)
    if sum(sum(c.values()) for c in wanted.values()) == 0:
        raise KanvaError("--train/--val/--test/--novel: all are 0; nothing to generate")
    if not 64 <= size <= 2048:
        raise KanvaError(f"--size: must be in 64..2048, got {size}")
    if sum(wanted["clips"].values()) and size % 2:
        raise KanvaError(f"--size: clips are yuv420p video, which needs an even side; got {size}")
    if workers < 1:
        raise KanvaError(f"--workers: must be >= 1, got {workers}")
    font_path(), sign_font_path()  # a missing font package fails here, before anything is written
    pairs = held_out_pairs(cfg, seed)
    for kind, flag in (("images", "--novel"), ("sets", "--sets novel"), ("clips", "--clips novel")):
        if wanted[kind].get("novel", 0) > 0 and not pairs:
            raise KanvaError(f"{flag}: the config holds out no category pairs (novel_pairs: 0, or no scene pairs two categories)")
    extra = {}
    if sum(wanted["sets"].values()):
        from kanva.world.sets import SET_IMAGES

        extra["sets"] = {s: wanted["sets"].get(s, 0) for s in SPLITS}
        extra["set_images"] = list(SET_IMAGES)
    if sum(wanted["clips"].values()):
        from kanva.world.clips import CLIP_FPS, CLIP_FRAMES

        extra["clips"] = {s: wanted["clips"].get(s, 0) for s in SPLITS}
        extra["clip_frames"], extra["clip_fps"] = list(CLIP_FRAMES), CLIP_FPS
    manifest = _manifest(cfg, counts, seed, size, pairs, extra)
    _prepare_out(out, manifest, overwrite, resume)
    if resume and load_manifest(out).get("complete"):
        return out
    (out / ".progress").mkdir(exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    job = _Job(str(out), cfg, size, seed, {frozenset(p) for p in pairs}, pairs)
    meta = {"seed": seed, "size": size, "held_out_pairs": manifest["held_out_pairs"]}

    pool = None
    local = None  # the in-process renderer when workers == 1
    try:
        for kind in KINDS:
            for split in SPLITS:
                n = wanted[kind].get(split, 0)
                if n == 0:
                    continue
                folder = out / split if kind == "images" else out / kind / split
                folder.mkdir(parents=True, exist_ok=True)
                prog = out / ".progress" / (f"{split}.jsonl" if kind == "images" else f"{kind}_{split}.jsonl")
                records = _read_progress(prog, split, kind)
                todo = [(kind, split, i) for i in range(len(records), n)]
                if todo:
                    if workers > 1 and pool is None:
                        ctx = multiprocessing.get_context("spawn")  # no fork: safe even after torch is imported
                        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(job,))
                    elif workers == 1 and local is None:
                        from kanva.world.render import WorldRenderer

                        local = functools.partial(_render_one, job, WorldRenderer(cfg, size))
                    results = pool.imap(_worker_task, todo, chunksize=8 if kind == "images" else 1) if pool else map(local, todo)
                    desc = f"world {split}" if kind == "images" else f"world {kind} {split}"
                    unit = {"images": "img", "sets": "set", "clips": "clip"}[kind]
                    with prog.open("a") as f, tqdm(total=n, initial=len(records), desc=desc, unit=unit, disable=not progress) as bar:
                        for rec in results:
                            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
                            f.flush()
                            records.append(rec)
                            bar.update(1)
                ann = out / "annotations"
                if kind == "images":
                    write_json(instances_json(split, records, meta), ann / f"instances_{split}.json")
                    write_json(captions_json(split, records, meta), ann / f"captions_{split}.json")
                elif kind == "sets":
                    write_json(sets_json(split, records, meta), ann / f"sets_{split}.json")
                    write_json(sets_captions_json(split, records, meta), ann / f"sets_captions_{split}.json")
                else:
                    write_json(clips_json(split, records, meta), ann / f"clips_{split}.json")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    manifest["complete"] = True
    write_json(manifest, out / MANIFEST)
    shutil.rmtree(out / ".progress")
    return out


def load_manifest(world: str | Path) -> dict:
    path = Path(world) / MANIFEST
    if not path.is_file():
        raise KanvaError(f"{path}: not a Kanva world (no {MANIFEST}); make one with `kanva world generate`")
    return json.loads(path.read_text())

