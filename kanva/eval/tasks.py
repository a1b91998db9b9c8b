"""What `kanva eval run` needs from each benchmark: the questions to ask, and how to score a subset.

A `Task` turns loaded data into `RunItem`s (kanva/eval/items.py: unique id, prompt, image, extra answer
fields, and the unit that `--limit` must keep whole: an MME image's two questions, an MMBench question's
circular passes), and restricts data to the items that were run so `--limit` scores what it ran.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from kanva.errors import KanvaError
from kanva.eval.items import RunItem, b64_image, first_file, open_image


@dataclass
class Task:
    name: str
    max_new_tokens: int  # default answer budget (LLaVA uses 128 for short answers, 1024 for open ones)
    load: Callable[..., Any]
    items: Callable[..., list[RunItem]]
    subset: Callable[[Any, set[str]], Any]
    score: Callable[..., dict]


# --- MME -----------------------------------------------------------------------------------------------
def _mme_load(paths, split):
    from kanva.eval.mme import load_mme

    return load_mme(paths[0])


def _mme_items(data, style, image_root):
    from kanva.eval.prompts import short_answer_prompt

    roots = [Path(image_root)] if image_root else [data.root]
    out = []
    for q in data.questions:
        cands = [r / rel for r in roots for rel in (q.image_rel, f"images/{q.image}", f"{q.subtask}/images/{q.image}", q.image)]
        path = first_file(cands)
        out.append(
            RunItem(
                q.uid,
                short_answer_prompt(q.question, style),
                open_image(path, q.where),
                {"category": q.subtask, "image": q.image_rel},
                unit=f"{q.subtask}/{q.image}",
                media_key=str(path),  # one file may serve several subtasks (image_rel names the subtask)
            )
        )
    return out


def _mme_subset(data, uids):
    return replace(data, questions=[q for q in data.questions if q.uid in uids])


def _mme_score(data, answers, **_):
    from kanva.eval.mme import score_mme

    return score_mme(data, answers)


# --- POPE ----------------------------------------------------------------------------------------------
def _pope_load(paths, split):
    from kanva.eval.pope import load_pope

    return load_pope(paths)


def _pope_items(data, style, image_root):
    from kanva.eval.prompts import short_answer_prompt

    folders = sorted({Path(s).parent for s in data.sources})
    roots = [Path(image_root)] if image_root else [d / "images" for d in folders] + folders
    return [
        RunItem(
            q.uid,
            short_answer_prompt(q.question, style),
            open_image(first_file([r / q.image for r in roots]), q.where),
            {"category": q.split, "image": q.image},
            unit=q.uid,
        )
        for q in data.asked
    ]


def _pope_subset(data, uids):
    from kanva.eval.pope import _text_index

    asked = [q for q in data.asked if q.uid in uids]
    if not data.question_file:
        return replace(data, questions=asked)
    find = _text_index(data.questions)
    keep = {find(q.split, q.image, q.question) for q in asked}
    return replace(data, questions=[q for i, q in enumerate(data.questions) if i in keep], question_file=asked)


def _pope_score(data, answers, **_):
    from kanva.eval.pope import score_pope

    return score_pope(data, answers)


# --- MMBench -------------------------------------------------------------------------------------------
def _mmb_load(paths, split):
    from kanva.eval.mmbench import load_mmbench

    return load_mmbench(paths[0])


def _mmb_items(data, style, image_root):
    from kanva.eval.prompts import choice_prompt

    return [
        RunItem(
            str(r.index),
            choice_prompt(r.question, r.options, r.hint, style, context_label=False),
            b64_image(r.image, r.where),
            {"category": r.category},
            unit=str(r.group),
            media_key=hashlib.blake2b(r.image.encode(), digest_size=16).hexdigest(),
        )
        for r in data.rows
    ]


def _mmb_subset(data, uids):
    return replace(data, rows=[r for r in data.rows if str(r.index) in uids])


def _mmb_score(data, answers, answers_path=None, **_):
    from kanva.eval.mmbench import score_mmbench

    if any(r.answer is None for r in data.rows):  # a test split: answers go to the server
        return {"benchmark": "mmbench", "notes": [
            f"{data.source}: a test split (no answers) is scored by the official server: "
            f"`kanva eval score mmbench --data {data.source} --predictions {answers_path} --upload FILE.xlsx`"]}
    return score_mmbench(data, answers)


# --- ScienceQA -----------------------------------------------------------------------------------------
def _sqa_load(paths, split):
    from kanva.eval.sqa import load_sqa

    return load_sqa(paths[0], split)


def _sqa_items(data, style, image_root):
    from kanva.eval.sqa import build_prompt, image_path

    out = []
    for q in data.questions:
        path = image_path(data, q, image_root) if q.image else None
        out.append(RunItem(q.pid, build_prompt(q, style), open_image(path, q.where) if path else None, {}, unit=q.pid))
    return out


def _sqa_subset(data, uids):
    return replace(data, questions=[q for q in data.questions if q.pid in uids])


def _sqa_score(data, answers, **_):
    from kanva.eval.sqa import score_sqa

    return score_sqa(data, answers)


# --- LLaVA-Bench ---------------------------------------------------------------------------------------
def _lb_load(paths, split):
    from kanva.eval.llava_bench import load_llava_bench

    return load_llava_bench(paths[0])


def _lb_items(data, style, image_root):
    root = Path(image_root) if image_root else data.root / "images"
    return [
        RunItem(q.qid, q.question, open_image(root / q.image, q.where), {"category": q.category, "image": q.image}, unit=q.qid)
        for q in data.questions
    ]


def _lb_score(data, answers, judge=None, judge_runs=None, reviews_dir=None, answers_path=None, **judge_files):
    from kanva.eval.llava_bench import judge_and_score, reviews_dir_for

    if judge is None:
        return {"benchmark": "llava-bench", "notes": ["not scored: give --judge-model (and --judge-base-url) to judge"]}
    return judge_and_score(data, answers, judge, reviews_dir_for(answers_path, reviews_dir), judge_runs, **judge_files)


# --- VQAv2, VizWiz, TextVQA, GQA ------------------------------------------------------------------------
def _vqa_loader(bench):
    def load(paths, split):
        from kanva.eval.vqa import load_vqa

        return load_vqa(bench, paths)

    return load


def _vqa_items(data, style, image_root):
    from kanva.eval.vqa import build_prompt

    root = Path(image_root) if image_root else data.image_dir
    return [RunItem(q.qid, build_prompt(data, q), open_image(root / q.image, q.where), {"image": q.image}, unit=q.qid)
            for q in data.questions]


def _qid_subset(data, uids):
    """The data restricted to the run questions, for every benchmark whose questions carry `qid`."""
    return replace(data, questions=[q for q in data.questions if q.qid in uids])


def _vqa_score(data, answers, **_):
    from kanva.eval.vqa import score_vqa

    return score_vqa(data, answers)


def _gqa_load(paths, split):
    from kanva.eval.gqa import load_gqa

    return load_gqa(paths)


def _gqa_items(data, style, image_root):
    from kanva.eval.prompts import short_answer_prompt

    root = Path(image_root) if image_root else data.image_dir
    return [RunItem(q.qid, short_answer_prompt(q.question, style), open_image(root / q.image, q.where),
                    {"image": q.image}, unit=q.qid) for q in data.questions]


def _gqa_score(data, answers, **_):
    from kanva.eval.gqa import score_gqa

    return score_gqa(data, answers)


# --- MM-Vet ------------------------------------------------------------------------------------------------
def _mmvet_load(paths, split):
    from kanva.eval.mmvet import load_mmvet

    return load_mmvet(paths[0])


def _mmvet_items(data, style, image_root):
    root = Path(image_root) if image_root else data.root / "images"
    return [RunItem(q.qid, q.question, open_image(root / q.image, q.where), {"image": q.image}, unit=q.qid)
            for q in data.questions]


def _mmvet_score(data, answers, judge=None, judge_runs=None, reviews_dir=None, answers_path=None, judge_prompt=None, **_):
    from kanva.eval.score import grade_mmvet_answers

    if judge is None:
        return {"benchmark": "mm-vet", "notes": ["not graded: give --judge-model (and --judge-base-url) to grade"]}
    return grade_mmvet_answers(data, answers, judge, answers_path, judge_runs, reviews_dir, judge_prompt)


# --- SEED-Bench (image) ------------------------------------------------------------------------------------
def _seed_load(paths, split):
    from kanva.eval.seed import load_seed

    return load_seed(paths[0])


def _seed_items(data, style, image_root):
    from kanva.eval.prompts import choice_prompt
    from kanva.eval.seed import image_dir

    root = Path(image_root) if image_root else image_dir(data)
    return [RunItem(q.qid, choice_prompt(q.question, q.options, None, style, context_label=True),
                    open_image(root / q.image, q.where), {"category": q.dimension, "image": q.image}, unit=q.qid)
            for q in data.questions]


def _seed_score(data, answers, **_):
    from kanva.eval.seed import score_seed

    return score_seed(data, answers)


# --- MUIRBench-, MVBench-layout multiple choice (several images, a video) ------------------------------------
def _muir_load(paths, split):
    from kanva.eval.muirbench import load_muirbench

    return load_muirbench(paths[0])


def _muir_media(q, image_root):
    images = [Path(image_root) / p.name for p in q.images] if image_root else list(q.images)
    return lambda proc: [proc.load_image(p, source=q.where) for p in images]


def _muir_items(data, style, image_root):
    from kanva.eval.prompts import choice_prompt

    # MUIRBench's prompt under lmms-eval is this same layout: question, "A. ..." lines, the choice instruction
    return [RunItem(q.qid, choice_prompt(q.question, q.options, None, style, context_label=True), None,
                    {"category": q.task}, unit=q.qid, media=_muir_media(q, image_root),
                    media_key="\n".join(map(str, q.images))) for q in data.questions]


def _mvb_load(paths, split):
    from kanva.eval.mvbench import load_mvbench

    return load_mvbench(paths[0])


def _mvb_media(q, image_root):
    path = Path(image_root) / q.video.name if image_root else q.video

    def load(proc):
        if proc.max_frames is None:
            raise KanvaError(f"{q.where}: a video question, and this model takes no video (a single-image llava "
                             "model); answer mvbench with an onevision model (kanva model build --preset tiny-ov or "
                             "smol-ov, or one trained from them)")
        return [proc.load_video(path, source=q.where)]

    return load


def _mvb_items(data, style, image_root):
    from kanva.eval.mvbench import mvbench_prompt

    return [RunItem(q.qid, mvbench_prompt(q, style), None, {"category": q.task, "video": q.video.name}, unit=q.qid,
                    media=_mvb_media(q, image_root)) for q in data.questions]


def _mc_score(data, answers, **_):
    from kanva.eval.multichoice import score_choices

    return score_choices(data, answers)


TASKS = {
    "mme": Task("mme", 128, _mme_load, _mme_items, _mme_subset, _mme_score),
    "pope": Task("pope", 128, _pope_load, _pope_items, _pope_subset, _pope_score),
    "mmbench": Task("mmbench", 128, _mmb_load, _mmb_items, _mmb_subset, _mmb_score),
    "sqa": Task("sqa", 128, _sqa_load, _sqa_items, _sqa_subset, _sqa_score),
    "llava-bench": Task("llava-bench", 1024, _lb_load, _lb_items, _qid_subset, _lb_score),
    **{b: Task(b, 128, _vqa_loader(b), _vqa_items, _qid_subset, _vqa_score) for b in ("vqav2", "vizwiz", "textvqa")},
    "gqa": Task("gqa", 128, _gqa_load, _gqa_items, _qid_subset, _gqa_score),
    "mm-vet": Task("mm-vet", 1024, _mmvet_load, _mmvet_items, _qid_subset, _mmvet_score),
    "seed": Task("seed", 128, _seed_load, _seed_items, _qid_subset, _seed_score),
    "muirbench": Task("muirbench", 128, _muir_load, _muir_items, _qid_subset, _mc_score),
    "mvbench": Task("mvbench", 128, _mvb_load, _mvb_items, _qid_subset, _mc_score),
}


def get_task(name: str) -> Task:
    from kanva.eval.score import check_bench

    return TASKS[check_bench(name)]
