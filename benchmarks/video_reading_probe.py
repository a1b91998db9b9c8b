"""Where video multiple choice is lost: in the words a frame is written as, in the encoder, or in the reading.

    python benchmarks/video_reading_probe.py --bench VAL/bench/mvbench --world VAL/world --split val \
        --labels OUT/models/vision [--model MODEL --out ANSWERS.jsonl]

Per task of an MVBench-style set made by `kanva eval make-synthetic` from world clips, two columns:
- `words`: a perfect reader of the clip's exact block words (kanva/grounding/frames.py: one word per 2x2 block,
  the largest object whose centre is in it, on the frames the processor samples). It answers from the words by
  the task's rule and guesses uniformly among the options the words leave open, so this is the most any model
  reading those words can score: below 100 where a mover shares its block with a larger object or stays in one
  column;
- `model on words` (with --model): the model asked each question over those exact words as text (as the
  OneVision stage's scene text writes a clip) instead of the frames, so its gap to `kanva eval run mvbench` on
  the frames is the encoder's, and its gap to `words` is the reading's. With `--frame-separator WORD` the words
  have WORD between frames, a layout LlavaOnevision never gives a video (one newline after all frames): for a
  model trained on scene text written that way, it measures whether frame boundaries are what the reading lacks.
Used for docs/experiments/2026-12-06-what-limits-video-multiple-choice.md and
docs/experiments/2026-12-07-what-the-onevision-stage-draws-on-val.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def _columns(frames: list[list[str | None]], word: str, side: int) -> list[tuple[int, float]]:
    """(frame, mean column) of the word's blocks, in the frames that show it."""
    out = []
    for t, f in enumerate(frames):
        cols = [i % side for i, w in enumerate(f) if w == word]
        if cols:
            out.append((t, sum(cols) / len(cols)))
    return out


def _moves(frames, word: str, side: int) -> str | None:
    seen = _columns(frames, word, side)
    if len(seen) < 2 or seen[-1][1] == seen[0][1]:
        return None
    return "right" if seen[-1][1] > seen[0][1] else "left"


def readable(q: dict, frames: list[list[str | None]], side: int) -> list[str]:
    """The options a perfect reader of the words keeps for an MVBench-style world question (its task's rule)."""
    task, cands, facts = q["question_id"].split("/")[0], q["candidates"], q.get("facts", {})
    shown = [set(f) - {None} for f in frames]
    if task == "moving_direction":
        return [c for c in cands if _moves(frames, c, side) == facts["direction"]]
    if task == "leaving_object":
        return [c for c in cands if any(c in s for s in shown[:-1]) and c not in shown[-1]]
    if task == "appearing_object":
        return [c for c in cands if c not in shown[0] and any(c in s for s in shown[1:])]
    if task == "count_at_end":
        from kanva.words import number_word

        return [c for c in cands if c == number_word(frames[-1].count(facts["category"]))]
    if task == "appearance_order":
        (a, ta), (b, tb) = [(c, next((t for t, s in enumerate(shown) if c in s), None)) for c in facts["first_seen"]]
        if ta is None and tb is None:
            pick = "Neither of them appears"
        elif ta == tb:
            pick = "Both at the same moment"
        else:
            pick = f"The {a}" if tb is None or (ta is not None and ta < tb) else f"The {b}"
        return [c for c in cands if c == pick]
    if task == "knowledge_motion":  # the reader is given the category the property names (the knowledge part)
        cat = facts.get("category")
        if not cat or not _columns(frames, cat, side):
            pick = "There is no such thing in the video"
        else:
            d = _moves(frames, cat, side)
            pick = "It stays where it is" if d is None else f"It moves to the {d}"
        return [c for c in cands if c == pick]
    raise SystemExit(f"{task}: no reading rule for this task")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="an MVBench-style folder (json/, video/) of world clips")
    ap.add_argument("--world", required=True, help="the world the clips are from")
    ap.add_argument("--split", default="test")
    ap.add_argument("--labels", required=True, help="a OneVision model folder whose label space writes the words")
    ap.add_argument("--model", help="also ask MODEL every question over the exact words")
    ap.add_argument("--out", help="where to write the answers of --model (default: a temporary file)")
    ap.add_argument("--frame-separator", metavar="WORD", help="with --model: WORD between the frames' words (a "
                    "diagnostic layout no OneVision model gets from a video; for a model trained on it)")
    a = ap.parse_args()
    if a.frame_separator and not a.model:
        ap.error("--frame-separator changes only the words --model is asked over; give --model too")

    from kanva.data.sequences import load_clips
    from kanva.grounding.frames import pooled_side
    from kanva.grounding.labels import load_label_space, read_label_file
    from kanva.grounding.layout import OnevisionLayout
    from kanva.grounding.scene_text import clip_cells, sampled_frames

    space, size, patch = load_label_space(a.labels)
    layout = OnevisionLayout.of(a.labels, read_label_file(a.labels))
    side = pooled_side(size // patch)
    videos = clip_cells(load_clips(a.world, a.split), space, size // patch)
    sampled = {name: sampled_frames(f, layout) for name, f in videos.items()}
    words = {name: [[None if w == space.background else w for w in f] for f in fr] for name, fr in sampled.items()}

    tasks: dict[str, list[float]] = {}
    for path in sorted((Path(a.bench) / "json").glob("*.json")):
        for q in json.loads(path.read_text()):
            keep = readable(q, words[q["video"]], side)
            score = (1 / len(keep) if q["answer"] in keep else 0.0) if keep else 1 / len(q["candidates"])
            tasks.setdefault(q["question_id"].split("/")[0], []).append(score)

    model_tasks: dict[str, float] = {}
    if a.model:
        import tempfile

        from kanva.eval.run import run_benchmark
        from kanva.infer import Generator

        def as_text(frames: list[list[str]]) -> str:
            if not a.frame_separator:
                return " ".join(layout.video(frames))
            return f" {a.frame_separator} ".join(" ".join(cells) for cells in frames) + " " + layout.newline

        text = {name: as_text(fr) for name, fr in sampled.items()}

        class OnWords:
            """A Generator that replaces each question's video with its clip's exact words, as text."""

            def __init__(self, g):
                self.g, self.proc, self.share_prefix = g, g.proc, False

            def generate(self, rows, **kw):
                return self.g.generate([([], [{"role": "user", "content": text[Path(m[0].source).name] + "\n"
                                               + msgs[0]["content"]}]) for m, msgs in rows], **kw)

        out = Path(a.out) if a.out else Path(tempfile.mkdtemp()) / "mvbench-on-words.jsonl"
        gen = OnWords(Generator.load(Path(a.model), device="cpu", share_prefix=False))
        r = run_benchmark("mvbench", Path(a.model), [Path(a.bench)], out, max_new_tokens=6, generator=gen,
                          progress=False)
        model_tasks = {k: v["accuracy"] for k, v in r["tasks"].items()} | {"all": r["overall"]}

    print("| task | questions | words (perfect reader) |" + (" model on words |" if a.model else ""))
    print("|---|---|---|" + ("---|" if a.model else ""))
    every = [s for v in tasks.values() for s in v]
    for k, v in sorted(tasks.items()) + [("all", every)]:
        row = f"| {k} | {len(v)} | {100 * sum(v) / len(v):.1f} |"
        print(row + (f" {model_tasks[k]:.1f} |" if a.model else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
