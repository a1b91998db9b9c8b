"""`kanva eval make-synthetic`: MME-, MMBench- and POPE-format sets from a world's held-out split.

Everything is true by construction from the world's annotations (objects, counts, boxes, colours, printed
texts) and the knowledge base, and written in the official formats so the same loaders and scorers run:

    OUT/mme/<subtask>.txt + OUT/mme/images/    the eval tool's template layout (two questions per image,
                                               one yes, one no); subtasks existence, count, position,
                                               color, OCR and knowledge
    OUT/mmbench/mmbench_synthetic.tsv          MMBench TSV, base64 images, circular passes as their own
                                               rows (index + k * 1000000)
    OUT/pope/coco_pope_<split>.json + images/  POPE annotation files for random, popular, adversarial
    OUT/muirbench/muirbench_synthetic.json     multi-image multiple choice from the split's sets, MUIRBench's
               + images/                       fields (kanva/eval/synthetic/multi.py)
    OUT/mvbench/json/<task>.json + video/      video multiple choice from the split's clips, MVBench's
                                               layout (kanva/eval/synthetic/video.py)
    OUT/synthetic.json                         what was written, per subtask, and the settings

`benchmarks` picks which (default the three single-image ones, as before the multi-image and video sets).

Output is a function of (world, split, seed): question choices are seeded per image and subtask.
"""

from __future__ import annotations

import base64
import csv
import json
import shutil
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError
from kanva.eval.prompts import MME_YES_NO
from kanva.knowledge.properties import build_index
from kanva.eval.synthetic.questions import MME_SUBTASKS, choices, yes_no
from kanva.eval.synthetic.scenes import Scene, WorldSplit, load_world_split

MMB_COLUMNS = [
    "index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category", "comment", "split",
]
POPE_SPLITS = ("random", "popular", "adversarial")
POPE_PER_IMAGE = 3  # POPE asks about three ground-truth objects per image, and as many absent ones


def _default_kb():
    try:
        from kanva.knowledge import load_kb
    except ImportError:
        return None
    return load_kb()


def copy_file(src: Path, dest: Path) -> None:
    """Copies an image or video beside the benchmark files (skipped when the same-sized copy is there)."""
    if not src.is_file():
        raise KanvaError(f"{src}: not found")
    if not dest.is_file() or dest.stat().st_size != src.stat().st_size:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def _copy_image(scene: Scene, folder: Path) -> None:
    copy_file(scene.path, folder / scene.file_name)


def write_mme(world: WorldSplit, kx, seed: int, out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {s: [] for s in MME_SUBTASKS}
    for scene in world.scenes:
        pairs = yes_no(scene, world, kx, seed)
        if pairs:
            _copy_image(scene, out / "images")
        for subtask, (yes, no) in pairs.items():
            lines[subtask].append(f"{scene.file_name}\t{yes} {MME_YES_NO}\tYes")
            lines[subtask].append(f"{scene.file_name}\t{no} {MME_YES_NO}\tNo")
    counts = {}
    for subtask, ls in lines.items():
        path = out / f"{subtask}.txt"
        if ls:
            path.write_text("\n".join(ls) + "\n", encoding="utf-8")
        elif path.exists():
            path.unlink()  # a stale file from an earlier run would be scored as this set
        counts[subtask] = len(ls)
    return counts


def write_mmbench(world: WorldSplit, kx, seed: int, out: Path, split: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mmbench_synthetic.tsv"
    base = 0
    rows = 0
    per_category: dict[str, int] = {}
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(MMB_COLUMNS)
        for scene in world.scenes:
            qs = choices(scene, world, kx, seed)
            if not qs:
                continue
            # The image is stored once, on the scene's first row; later rows hold that row's index instead
            # (the convention of MMBench's released TSVs, which the loader resolves).
            image = base64.b64encode(scene.path.read_bytes()).decode("ascii")
            first = base
            for q in qs:
                n = len(q.options)
                for k in range(n):  # circular passes: rotate the options, the answer follows
                    opts = q.options[k:] + q.options[:k]
                    letters = [opts[i] if i < n else "" for i in range(4)]
                    answer = "ABCD"[opts.index(q.options[q.answer])]
                    index = base + k * 1_000_000
                    w.writerow([index, q.question, "", *letters, answer, q.category,
                                image if index == first else str(first), "kanva-synthetic", q.l2, scene.file_name, split])
                    rows += 1
                per_category[q.category] = per_category.get(q.category, 0) + 1
                base += 1
    return {"file": str(path), "questions": base, "rows": rows, "categories": dict(sorted(per_category.items()))}


def _pope_negatives(scene: Scene, world: WorldSplit, strategy: str, k: int, seed: int) -> list[str]:
    import random

    absent = [c for c in world.vocabulary if c not in scene.present]
    if strategy == "random":
        r = random.Random(f"{seed}:{scene.file_name}:pope-random")
        return r.sample(absent, min(k, len(absent)))
    if strategy == "popular":  # the most frequent categories of the set that the image lacks
        return sorted(absent, key=lambda c: (-world.frequency[c], c))[:k]
    # adversarial: the absent categories that co-occur most with the image's objects

    def co(c: str) -> int:
        return sum(world.cooccur[tuple(sorted((c, g)))] for g in scene.present)

    return sorted(absent, key=lambda c: (-co(c), -world.frequency[c], c))[:k]


def write_pope(world: WorldSplit, seed: int, out: Path) -> dict[str, int]:
    import random

    out.mkdir(parents=True, exist_ok=True)
    files = {s: [] for s in POPE_SPLITS}
    for scene in world.scenes:
        shown = scene.shown
        if not shown:
            continue
        r = random.Random(f"{seed}:{scene.file_name}:pope")
        yes = r.sample(shown, min(POPE_PER_IMAGE, len(shown)))
        used = False
        for strategy in POPE_SPLITS:
            no = _pope_negatives(scene, world, strategy, len(yes), seed)
            n = min(len(yes), len(no))  # balanced yes/no, as POPE
            for y, x in zip(yes[:n], no[:n]):
                for c, label in ((y, "yes"), (x, "no")):
                    rows = files[strategy]
                    rows.append({"question_id": len(rows) + 1, "image": scene.file_name,
                                 "text": f"Is there {'an' if c[0] in 'aeiou' else 'a'} {c} in the image?", "label": label})
                used = used or n > 0
        if used:
            _copy_image(scene, out / "images")
    for strategy, rows in files.items():
        (out / f"coco_pope_{strategy}.json").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {s: len(rows) for s, rows in files.items()}


SINGLE_IMAGE = ("mme", "mmbench", "pope")
SEQUENCES = ("muirbench", "mvbench")  # from the split's multi-image sets / clips (`kanva world generate --sets/--clips`)
BENCHMARKS = SINGLE_IMAGE + SEQUENCES


def check_benchmarks(benchmarks) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(benchmarks))
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown or not chosen:
        raise KanvaError(f"--benchmarks: unknown {', '.join(map(repr, unknown)) or 'empty list'} "
                         f"(choose from {', '.join(BENCHMARKS)})")
    return chosen


def make_synthetic(world: Path, out: Path, split: str = "test", seed: int = 0, kb: Any = None,
                   benchmarks=SINGLE_IMAGE) -> dict:
    """Writes the chosen sets (default the three single-image ones) and a manifest; returns the manifest.

    `muirbench` (multi-image) and `mvbench` (video) are drawn from the split's sets and clips
    (kanva/eval/synthetic/multi.py, video.py); the single-image sets from its still images."""
    chosen = check_benchmarks(benchmarks)
    kb = kb if kb is not None else _default_kb()
    out = Path(out)
    manifest: dict[str, Any] = {"world": str(world), "split": split, "seed": seed, "benchmarks": list(chosen),
                                "knowledge": "kanva.knowledge" if kb is not None else None, "notes": []}
    if any(b in SINGLE_IMAGE for b in chosen):
        ws = load_world_split(world, split)
        if not ws.scenes:
            raise KanvaError(f"{ws.source}: no images in split {split!r}")
        kx = build_index(kb, ws.categories) if kb is not None else None
        manifest["images"] = len(ws.scenes)
        if "mme" in chosen:
            manifest["mme"] = write_mme(ws, kx, seed, out / "mme")
        if "mmbench" in chosen:
            manifest["mmbench"] = write_mmbench(ws, kx, seed, out / "mmbench", split)
        if "pope" in chosen:
            manifest["pope"] = write_pope(ws, seed, out / "pope")
    if "muirbench" in chosen:
        from kanva.eval.synthetic.multi import write_multi_image

        manifest["muirbench"] = write_multi_image(Path(world), split, kb, seed, out / "muirbench")
    if "mvbench" in chosen:
        from kanva.eval.synthetic.video import write_video

        manifest["mvbench"] = write_video(Path(world), split, kb, seed, out / "mvbench")
    if kb is None:
        manifest["notes"].append("no knowledge base available: the knowledge subtasks are empty")
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
