"""Multi-image (MUIRBench layout) and video (MVBench layout) multiple choice from a tiny world's sets and clips:
every answer re-derived here from the raw annotation files, letters balanced, determinism, the layouts'
fields, scoring of answer files built from the questions, errors naming file and field, and `kanva eval run`
on the tiny onevision model (and the single-image llava model refused on video)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.bootstrap import accuracy_ci, paired_delta_ci
from kanva.eval.multichoice import score_choices
from kanva.eval.muirbench import FIELDS as MUIR_FIELDS, load_muirbench
from kanva.eval.mvbench import FIELDS as MVB_FIELDS, load_mvbench, mvbench_prompt
from kanva.eval.synthetic import make_synthetic
from kanva.knowledge import load_kb
from kanva.knowledge.properties import FACT_PHRASES
from kanva.world.config import load_world_config
from kanva.world.generate import generate_world
from kanva.words import number_word

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VISIBLE = 0.5  # the benchmarks' "shown" (kanva/eval/synthetic/scenes.py)
BENCHES = ("muirbench", "mvbench")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return generate_world(tmp_path_factory.mktemp("w") / "world", {"train": 0}, seed=0, cfg=load_world_config(),
                          size=64, workers=1, progress=False, sets={"test": 12, "novel": 3}, clips={"test": 10, "novel": 2})


@pytest.fixture(scope="module")
def synth(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s") / "synth"
    make_synthetic(world, out, seed=3, benchmarks=BENCHES)
    return out


def _raw_sets(world):
    d = json.loads((world / "annotations" / "sets_test.json").read_text())
    cats = {c["id"]: c["name"] for c in d["categories"]}
    anns: dict[int, list[dict]] = {}
    for a in d["annotations"]:
        anns.setdefault(a["image_id"], []).append({**a, "name": cats[a["category_id"]]})
    return {s["id"]: [anns.get(i, []) for i in s["image_ids"]] for s in d["sets"]}


def _holds(kb, category, phrase):
    for (kind, value), (_, text) in FACT_PHRASES.items():
        if text == phrase:
            return str(kb.concept(category).facts.get(kind, "")) == value or value in str(kb.concept(category).facts.get(kind, "")).split(" or ")
    return phrase.split(" ", 1)[1] in kb.concept(category).hypernyms


def test_multi_image_answers_hold_in_the_raw_annotations(world, synth):
    rows = json.loads((synth / "muirbench" / "muirbench_synthetic.json").read_text())
    raw = _raw_sets(world)
    kb = load_kb()
    assert {r["task"] for r in rows} == {"Image Finding", "Counting", "Difference Spotting", "Knowledge Finding"}
    for r in rows:
        assert set(MUIR_FIELDS) <= set(r) and len(r["options"]) == 4 == len(set(r["options"]))
        assert all((synth / "muirbench" / p).is_file() for p in r["image_list"])
        images = raw[r["set_id"]]
        right = r["options"]["ABCD".index(r["answer"])]
        f = r["facts"]

        def shown(k, c):
            return any(a["name"] == c and a["visible"] >= VISIBLE for a in images[k])

        def anywhere(k, c):
            return any(a["name"] == c for a in images[k])

        if r["task"] in ("Image Finding", "Knowledge Finding"):
            for opt in r["options"]:
                ks = [int(opt.split()[1]) - 1] if opt.startswith("Image ") else (
                    [0, 1] if opt == "Both images" else [])
                if r["task"] == "Image Finding":
                    c = f["category"]
                    yes = [k for k in range(len(images)) if shown(k, c)]
                    no = [k for k in range(len(images)) if not anywhere(k, c)]
                else:  # the property: some shown object has it in the KB / no object of the image has it
                    yes = [k for k in range(len(images)) if any(_holds(kb, a["name"], f["property"]) for a in images[k]
                                                                if a["visible"] >= VISIBLE)]
                    no = [k for k in range(len(images)) if not any(_holds(kb, a["name"], f["property"]) for a in images[k])]
                true = sorted(yes) == sorted(ks) and sorted(no) == sorted(set(range(len(images))) - set(ks))
                assert true == (opt == right), (r, opt)
        elif r["task"] == "Counting" and right.startswith("Image "):
            per = [sum(a["name"] == f["category"] for a in im) for im in images]
            assert per.index(max(per)) == int(right.split()[1]) - 1 and per.count(max(per)) == 1
        elif r["task"] == "Counting":
            tracks = {a["track"] for im in images for a in im if a["name"] == f["category"]}
            assert right == number_word(len(tracks)) and all(o != right for o in r["options"] if o != right)
        else:  # Difference Spotting: the answer is in image i and nowhere in j; every other option is not
            i, j = f["image"], f["other"]
            assert shown(i, right) and not anywhere(j, right), r
            assert all(shown(j, o) or not anywhere(i, o) for o in r["options"] if o != right), r


def _raw_clips(world):
    d = json.loads((world / "annotations" / "clips_test.json").read_text())
    cats = {c["id"]: c["name"] for c in d["categories"]}
    videos = {v["video"]: v for v in d["videos"]}
    tracks: dict[int, list[dict]] = {}
    for a in d["annotations"]:
        tracks.setdefault(a["video_id"], []).append({**a, "name": cats[a["category_id"]]})
    return {name: tracks.get(v["id"], []) for name, v in videos.items()}


def test_video_answers_hold_in_the_raw_annotations(world, synth):
    raw = _raw_clips(world)
    tasks = {p.stem: json.loads(p.read_text()) for p in sorted((synth / "mvbench" / "json").glob("*.json"))}
    assert {"moving_direction", "count_at_end", "knowledge_motion"} <= set(tasks)
    for task, rows in tasks.items():
        for e in rows:
            assert set(MVB_FIELDS) <= set(e) and len(e["candidates"]) == 4 and e["answer"] in e["candidates"]
            assert (synth / "mvbench" / "video" / e["video"]).is_file()
            tr = raw[e["video"]]
            last = len(tr[0]["bboxes"]) - 1

            def seen(t, k):
                return t["bboxes"][k] is not None and (t["visible"][k] or 0) >= VISIBLE

            if task == "moving_direction":
                d = e["facts"]["direction"]
                for c in e["candidates"]:
                    moves = any(t["name"] == c and t["motion"]["direction"] == d for t in tr)
                    assert moves == (c == e["answer"]), (e, c)
            elif task == "leaving_object":
                assert any(t["name"] == e["answer"] and seen(t, 0) and t["bboxes"][last] is None for t in tr)
                for c in e["candidates"]:
                    if c != e["answer"]:
                        assert all(seen(t, last) for t in tr if t["name"] == c)
            elif task == "appearing_object":
                assert any(t["name"] == e["answer"] and t["bboxes"][0] is None and seen(t, last) for t in tr)
            elif task == "count_at_end":
                n = sum(t["name"] == e["facts"]["category"] and seen(t, last) for t in tr)
                assert e["answer"] == number_word(n)
            elif task == "appearance_order":
                first = {t["name"]: next(k for k in range(last + 1) if seen(t, k)) for t in tr
                         if t["name"] in e["facts"]["first_seen"]}
                if not first:  # two objects the clip does not have
                    assert e["answer"] == "Neither of them appears"
                    assert not {t["name"] for t in tr} & set(e["facts"]["first_seen"])
                    # and only of a clip with two seen objects of one track each to order: else every clip without
                    # them would ask "neither", far more than the quarter of the task the generator means
                    names = [t["name"] for t in tr]
                    orderable = {t["name"] for t in tr if names.count(t["name"]) == 1 and any(seen(t, k) for k in range(last + 1))}
                    assert len(orderable) >= 2, e
                    continue
                a, b = sorted(first, key=first.get)
                assert e["answer"] == ("Both at the same moment" if first[a] == first[b] else f"The {a}")
            elif task == "knowledge_motion":
                holders = [t for t in tr if _holds(load_kb(), t["name"], e["facts"]["property"])]
                assert len(holders) == 1
                d = holders[0]["motion"]["direction"]
                assert e["answer"] == {"left": "It moves to the left", "right": "It moves to the right"}.get(d, "It stays where it is")
                assert e["kind"] == "knowledge"


def test_letters_balanced_and_deterministic(world, synth, tmp_path):
    m = make_synthetic(world, tmp_path / "again", seed=3, benchmarks=BENCHES)
    for sub in ("muirbench/muirbench_synthetic.json", *[f"mvbench/json/{p.name}" for p in (synth / "mvbench" / "json").glob("*")]):
        assert (tmp_path / "again" / sub).read_bytes() == (synth / sub).read_bytes(), sub
    data = [load_muirbench(synth / "muirbench"), load_mvbench(synth / "mvbench")]
    for d in data:
        for task in {q.task for q in d.questions}:
            n = Counter(q.answer for q in d.questions if q.task == task)
            assert max(n.values()) - min(n.get(c, 0) for c in "ABCD") <= 1, (task, n)
    assert m["muirbench"]["questions"] == len(data[0].questions) and m["mvbench"]["questions"] == len(data[1].questions)
    other = make_synthetic(world, tmp_path / "seed4", seed=4, benchmarks=("muirbench",))
    assert (tmp_path / "seed4" / "muirbench" / "muirbench_synthetic.json").read_bytes() != \
        (synth / "muirbench" / "muirbench_synthetic.json").read_bytes()
    assert "mme" not in other and other["muirbench"]["questions"] > 0
    novel = make_synthetic(world, tmp_path / "novel", split="novel", seed=3, benchmarks=BENCHES)
    assert novel["muirbench"]["sets"] == 3 and novel["mvbench"]["clips"] == 2


def _answers(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n" for q, t in rows))
    return path


@pytest.mark.parametrize("bench", BENCHES)
def test_scoring_known_answer_files(synth, bench, tmp_path, capsys):
    data = load_muirbench(synth / bench) if bench == "muirbench" else load_mvbench(synth / bench)
    right = _answers(tmp_path / "right.jsonl", [(q.qid, q.answer) for q in data.questions])
    assert main(["eval", "score", bench, "--data", str(synth / bench), "--predictions", str(right),
                 "--json", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["overall"] == 100.0 and all(t["accuracy"] == 100.0 for t in r["tasks"].values())
    assert r["kinds"]["knowledge"]["questions"] > 0 and "task: " in capsys.readouterr().out
    all_a = [Answer(q.qid, "A") for q in data.questions]
    r = score_choices(data, all_a)
    share_a = sum(q.answer == "A" for q in data.questions) / len(data.questions)
    assert r["overall"] == pytest.approx(100 * share_a) and r["overall_ci"][0] <= r["overall"] <= r["overall_ci"][1]
    texts = score_choices(data, [Answer(q.qid, f"The answer is {q.options[q.answer]}.") for q in data.questions[:5]])
    assert texts["tasks"] and texts["answers"]["missing"] == len(data.questions) - 5
    assert texts["overall"] == pytest.approx(100 * 5 / len(data.questions))


def test_bad_files_name_file_and_field(synth, tmp_path, capsys):
    rows = json.loads((synth / "muirbench" / "muirbench_synthetic.json").read_text())
    rows[2]["answer"] = "E"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    with pytest.raises(KanvaError, match=r"bad.json: \[2\] \(idx 2\): field 'answer' must be one of A, B, C, D"):
        load_muirbench(bad)
    folder = tmp_path / "mvb" / "json"
    folder.mkdir(parents=True)
    entries = json.loads(next((synth / "mvbench" / "json").glob("*.json")).read_text())
    del entries[0]["candidates"]
    (folder / "moving_direction.json").write_text(json.dumps(entries))
    ans = _answers(tmp_path / "a.jsonl", [("moving_direction/0", "A")])
    assert main(["eval", "score", "mvbench", "--data", str(tmp_path / "mvb"), "--predictions", str(ans)]) == 2
    err = capsys.readouterr().err
    assert "moving_direction.json: [0]: field 'candidates' must be a list of strings" in err
    other = _answers(tmp_path / "other.jsonl", [("nope", "A")])
    with pytest.raises(KanvaError, match="none of the 1 answers matches"):
        score_choices(load_muirbench(synth / "muirbench"), [Answer("nope", "A", where=str(other))])
    with pytest.raises(KanvaError, match="--benchmarks: unknown 'mmmu'"):
        make_synthetic(synth, tmp_path / "x", benchmarks=("mmmu",))


def test_bootstrap_intervals():
    lo, hi = accuracy_ci([True] * 30 + [False] * 10, seed=1)
    assert lo < 75 < hi and (lo, hi) == accuracy_ci([True] * 30 + [False] * 10, seed=1)
    delta, (dlo, dhi) = paired_delta_ci([True] * 40, [True] * 20 + [False] * 20)
    assert delta == 50 and dlo <= 50 <= dhi and dlo > 30


def test_run_onevision_end_to_end_and_llava_refused_on_video(synth, tiny_ov_model, tiny_model, tmp_path, capsys):
    for bench in BENCHES:
        out = tmp_path / f"{bench}.jsonl"
        assert main(["eval", "run", bench, "--model", str(tiny_ov_model), "--data", str(synth / bench), "--out", str(out),
                     "--limit", "2", "--max-new-tokens", "3", "--batch-size", "2"]) == 0
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        r = json.loads(out.with_name(f"{bench}.results.json").read_text())
        assert len(rows) == 2 and r["answers"]["matched"] == 2 and r["questions"] == 2
        data = load_muirbench(synth / bench) if bench == "muirbench" else load_mvbench(synth / bench)
        tasks = {q.qid: q.task for q in data.questions}
        assert all(row["category"] == tasks[row["question_id"]] and row["prompt"].endswith("directly.") for row in rows)
    runs = [str(tmp_path / f"{b}.results.json") for b in BENCHES]
    assert main(["eval", "report", *runs, "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "Multi-image MC" in page and "Video MC" in page
    # a single-image llava model: several images are placed one after the other; a video is refused
    out = tmp_path / "llava.jsonl"
    assert main(["eval", "run", "muirbench", "--model", str(tiny_model), "--data", str(synth / "muirbench"),
                 "--out", str(out), "--limit", "1", "--max-new-tokens", "2"]) == 0
    assert main(["eval", "run", "mvbench", "--model", str(tiny_model), "--data", str(synth / "mvbench"),
                 "--out", str(tmp_path / "v.jsonl"), "--limit", "1"]) == 2
    assert "this model takes no video (a single-image llava model)" in capsys.readouterr().err


def test_lmms_eval_prompt_style(synth):
    q = load_mvbench(synth / "mvbench").questions[0]
    p = mvbench_prompt(q, "lmms-eval")
    assert p.startswith(f"Question:{q.question}\nOption:\n(A) {q.options['A']}\n") and p.endswith("Only give the best option.\n")


def test_lmms_plugin_reads_videos_for_onevision(synth, tiny_ov_model, tiny_model, monkeypatch):
    """The lmms-eval `kanva` model entry with lmms-eval's two base names stubbed (lmms-eval is not installed
    here; tests/test_lmms_eval_run.py runs the real one where it is): a video path becomes a Video for an
    onevision model and is refused, naming the task, for a llava model."""
    import importlib
    import sys
    import types

    api = types.ModuleType("lmms_eval.api")
    inst, model = types.ModuleType("lmms_eval.api.instance"), types.ModuleType("lmms_eval.api.model")
    inst.Instance = object
    model.lmms = type("lmms", (), {"__init__": lambda self: None})
    for name, mod in {"lmms_eval": types.ModuleType("lmms_eval"), "lmms_eval.api": api,
                      "lmms_eval.api.instance": inst, "lmms_eval.api.model": model}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "kanva.lmms.models.kanva", raising=False)
    try:
        Kanva = importlib.import_module("kanva.lmms.models.kanva").Kanva
        _plugin_checks(Kanva, synth, tiny_ov_model, tiny_model)
    finally:  # not left built on the stubs for a later import with the real lmms-eval
        sys.modules.pop("kanva.lmms.models.kanva", None)


def _plugin_checks(Kanva, synth, tiny_ov_model, tiny_model):
    import types

    from kanva.model.video import Video

    video = str(next((synth / "mvbench" / "video").glob("*.mp4")))
    req = types.SimpleNamespace(args=("<image>Which way?", {}, lambda doc: [doc["v"]], 0, "mvb", "test"))
    ov = Kanva(pretrained=str(tiny_ov_model))
    ov.task_dict = {"mvb": {"test": {0: {"v": video}}}}
    media, messages = ov._row(req)
    assert isinstance(media[0], Video) and len(media[0].frames) == ov.generator.proc.max_frames
    assert messages == [{"role": "user", "content": "Which way?"}]
    assert ov.generator.generate([(media, messages)], max_new_tokens=2)
    llava = Kanva(pretrained=str(tiny_model))
    llava.task_dict = ov.task_dict
    with pytest.raises(ValueError, match="task 'mvb' gives video input, and this model takes no video"):
        llava._row(req)


def test_every_question_has_one_of_its_tasks_wordings(synth):
    import re

    from kanva.eval.synthetic import multi, video

    tables = {"Image Finding": multi.FIND, "Counting": multi.TOTAL + multi.MOST, "Difference Spotting": multi.DIFF,
              "Knowledge Finding": multi.KNOW, "moving_direction": video.DIRECTION, "leaving_object": video.LEAVING,
              "appearing_object": video.APPEARING, "appearance_order": video.ORDER, "count_at_end": video.END_COUNT,
              "knowledge_motion": video.KNOW_MOTION}

    def fits(text, t):
        pattern = re.sub(r"\\\{\w+\\\}", ".+", re.escape(t))
        return re.fullmatch(pattern, text) is not None

    used: dict[str, set] = {}
    for data in (load_muirbench(synth / "muirbench"), load_mvbench(synth / "mvbench")):
        for q in data.questions:
            hit = [t for t in tables[q.task] if fits(q.question, t)]
            assert hit, (q.task, q.question)
            used.setdefault(q.task, set()).update(hit)
    assert sum(len(v) > 1 for v in used.values()) >= 5  # several wordings in use, not one per task


def test_wordings_are_not_evolutions():
    """A benchmark question never reuses a training wording (kanva/data/ops/sets.py, clips.py), whatever the
    slots are called."""
    import re

    from kanva.data.ops import clips, sets
    from kanva.eval.synthetic import multi, video

    def norm(t):
        return re.sub(r"\{\w+\}", "{}", t.lower())

    def templates(mod):
        out = set()
        for v in vars(mod).values():
            for x in (v.values() if isinstance(v, dict) else [v]):
                if isinstance(x, tuple) and all(isinstance(t, str) for t in x):
                    out |= {norm(t) for t in x}
        return out

    ours = {norm(t) for tab in (multi.FIND, multi.TOTAL, multi.MOST, multi.DIFF, multi.KNOW, video.DIRECTION,
                                  video.LEAVING, video.APPEARING, video.ORDER, video.END_COUNT, video.KNOW_MOTION)
            for t in tab}
    assert len(ours) >= 30 and not ours & (templates(sets) | templates(clips))
