"""`kanva eval run` with the tiny preset on a synthetic set: answers, resume, --limit, batching, report."""

import json

import pytest

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.eval.answers import load_answers
from kanva.eval.run import run_benchmark
from kanva.eval.synthetic import make_synthetic

from test_eval_llava_bench import judge_server  # noqa: F401  (the fake judge fixture)
from test_eval_synthetic import TinyKB, world  # noqa: F401  (the tiny world fixture)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A 2-layer model gains nothing from threads, and on a shared CPU their spin-waits cost 10x or more."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def generator(tiny_model):
    from kanva.infer import Generator

    return Generator.load(tiny_model)


@pytest.fixture
def synth(world, tmp_path):  # noqa: F811
    make_synthetic(world, tmp_path / "synth", kb=TinyKB(), seed=0)
    return tmp_path / "synth"


def test_run_writes_resumes_and_scores(synth, tiny_model, generator, tmp_path):
    out = tmp_path / "answers" / "mme.jsonl"
    kw = dict(batch_size=4, max_new_tokens=3, generator=generator, progress=False, limit=14)
    r = run_benchmark("mme", tiny_model, [synth / "mme"], out, **kw)
    n = r["run"]["questions"]
    assert r["run"]["generated"] == n == 14 == r["answers"]["expected"] == r["answers"]["matched"]
    assert r["run"]["prompt_style"] == "llava" and r["run"]["decoding"] == "greedy"
    saved = json.loads((tmp_path / "answers" / "mme.results.json").read_text())
    assert saved["subtasks"] == r["subtasks"] and saved["run"]["model_id"] == "tiny"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(row["prompt"].endswith("\nAnswer the question using a single word or phrase.") for row in rows)
    # Interrupt: drop the last 5 answers and leave half a line, as a killed writer would.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-5]) + lines[-5][: len(lines[-5]) // 2])
    r2 = run_benchmark("mme", tiny_model, [synth / "mme"], out, **kw)
    assert r2["run"]["generated"] == 5 and r2["run"]["resumed"] == n - 5
    assert [a.text for a in load_answers(out)] == [row["text"] for row in rows]  # greedy: same answers again
    # Another prompt style on the same file is refused.
    with pytest.raises(KanvaError, match="prompt_style 'llava'"):
        run_benchmark("mme", tiny_model, [synth / "mme"], out, **{**kw, "style": "lmms-eval"})


def test_resume_identifies_the_model_by_content(synth, tiny_model, tmp_path):
    """Two `kanva train` outputs share the path tail `instruct/final`: the answer file tells them apart by a
    hash of config and weights, and a copy of the same model (another path) resumes as itself."""
    import shutil

    from kanva.infer import Generator
    from kanva.model import build_preset
    from kanva.model.fingerprint import model_hash

    first = tmp_path / "run1" / "instruct" / "final"
    shutil.copytree(tiny_model, first)
    second = build_preset("tiny", tmp_path / "run2" / "instruct" / "final", seed=1)  # other weights, same config
    copy = tmp_path / "elsewhere" / "tiny"
    shutil.copytree(first, copy)
    assert model_hash(first) == model_hash(copy) != model_hash(second)

    out = tmp_path / "pope.jsonl"
    kw = dict(batch_size=4, max_new_tokens=2, progress=False)
    run_benchmark("pope", first, [synth / "pope"], out, generator=Generator.load(first), limit=4, **kw)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {row["model_id"] for row in rows} == {"instruct/final"} and {row["model_hash"] for row in rows} == {
        model_hash(first)}
    with pytest.raises(KanvaError, match="model_hash 'sha256:.*model_id 'instruct/final'"):
        run_benchmark("pope", second, [synth / "pope"], out, generator=Generator.load(second), limit=8, **kw)
    r = run_benchmark("pope", copy, [synth / "pope"], out, generator=Generator.load(copy), limit=8, **kw)
    assert r["run"]["resumed"] == 4 and r["run"]["model_hash"] == model_hash(first)
    # A row that does not say which model wrote it (an older answer file) is not resumed into.
    out.write_text(json.dumps({k: v for k, v in rows[0].items() if k != "model_hash"}) + "\n")
    with pytest.raises(KanvaError, match="does not record which model"):
        run_benchmark("pope", copy, [synth / "pope"], out, generator=Generator.load(copy), limit=8, **kw)


def test_batched_answers_equal_single(synth, tiny_model, generator, tmp_path):
    kw = dict(max_new_tokens=5, generator=generator, progress=False, limit=8)
    one = run_benchmark("pope", tiny_model, [synth / "pope"], tmp_path / "b1.jsonl", batch_size=1, **kw)
    many = run_benchmark("pope", tiny_model, [synth / "pope"], tmp_path / "b8.jsonl", batch_size=8, **kw)
    assert [a.text for a in load_answers(tmp_path / "b1.jsonl")] == [a.text for a in load_answers(tmp_path / "b8.jsonl")]
    assert one["splits"] == many["splits"]


def test_limit_keeps_circular_groups_whole_and_scores_the_subset(synth, tiny_model, generator, tmp_path):
    r = run_benchmark("mmbench", tiny_model, [synth / "mmbench" / "mmbench_synthetic.tsv"], tmp_path / "m.jsonl",
                      limit=5, max_new_tokens=2, generator=generator, progress=False, style="lmms-eval")
    # first questions have 4 passes each: 5 rows -> two whole groups (8 rows)
    assert r["run"]["questions"] == 8 and r["rows"] == 8 and r["questions"] == 2
    assert r["answers"]["missing"] == 0
    row = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert "There are several options:\nA. " in row["prompt"]


def test_cli_run_and_report(synth, tiny_model, tmp_path, capsys):
    out = tmp_path / "pope.jsonl"
    assert main(["eval", "run", "pope", "--model", str(tiny_model), "--data", str(synth / "pope"), "--out", str(out),
                 "--limit", "6", "--max-new-tokens", "2", "--batch-size", "3"]) == 0
    text = capsys.readouterr().out
    assert "6 answers generated" in text and "mean F1" in text
    res = tmp_path / "pope.results.json"
    rep = tmp_path / "report"
    assert main(["eval", "report", str(res), str(res), "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "## POPE" in md and md.count("tiny (llava)") >= 2
    assert (rep / "pope.png").stat().st_size > 1000
    assert "<table>" in (rep / "report.html").read_text()
    assert main(["eval", "report", str(out), "--out", str(rep)]) == 2  # an answer file is not a results JSON


def test_sqa_mixed_text_and_image_questions(tiny_model, generator, tmp_path):
    from PIL import Image

    problems = {
        "1": {"question": "Which is shiny?", "choices": ["rock", "spoon"], "answer": 1, "hint": "", "image": "image.png"},
        "2": {"question": "Which is a mammal?", "choices": ["cat", "frog", "fish"], "answer": 0, "hint": "Animals.", "image": None},
    }
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    (tmp_path / "pid_splits.json").write_text(json.dumps({"test": ["1", "2"]}))
    (tmp_path / "images" / "test" / "1").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 200, 200)).save(tmp_path / "images" / "test" / "1" / "image.png")
    r = run_benchmark("sqa", tiny_model, [tmp_path], tmp_path / "sqa.jsonl", batch_size=2, max_new_tokens=2,
                      generator=generator, progress=False)
    assert r["img_questions"] == 1 and r["questions"] == 2 and r["answers"]["matched"] == 2
    rows = [json.loads(line) for line in (tmp_path / "sqa.jsonl").read_text().splitlines()]
    assert rows[1]["prompt"].startswith("Context: Animals.\nWhich is a mammal?\nA. cat\nB. frog\nC. fish\n")


def test_llava_bench_run_with_judge(tiny_model, generator, tmp_path, judge_server):  # noqa: F811
    from PIL import Image

    from kanva.eval.judge import Judge

    d = tmp_path / "lb"
    d.mkdir()
    rows = [{"question_id": 0, "image": "001.jpg", "text": "What is this?", "category": "conv"},
            {"question_id": 1, "image": "001.jpg", "text": "Describe it.", "category": "detail"}]
    (d / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "answers_gpt4.jsonl").write_text('{"question_id": 0, "text": "An apple."}\n{"question_id": 1, "text": "A red apple."}\n')
    (d / "context.jsonl").write_text('{"image": "001.jpg", "caption": "A red apple."}\n')
    (d / "images").mkdir()
    Image.new("RGB", (32, 32), (220, 20, 20)).save(d / "images" / "001.jpg")
    url, calls = judge_server
    r = run_benchmark("llava-bench", tiny_model, [d], tmp_path / "lb.jsonl", max_new_tokens=3, generator=generator,
                      progress=False, judge=Judge("fake-judge", base_url=url), judge_runs=2)
    assert len(r["runs"]) == 2 and r["judge"] == "fake-judge"
    # the tiny model's babble is not the reference: the fake judge gives it 4 + run (0, 1) against 8
    assert r["categories"]["conv"] == pytest.approx(100 * 4.5 / 8)
    assert len(calls) == 4
    assert (tmp_path / "lb_reviews" / "reviews_run2.jsonl").is_file()


def test_questions_about_one_image_are_batched_together_and_written_in_question_order(synth, tiny_model, generator,
                                                                                    tmp_path):
    """MME asks about each image in several subtask files: the run batches an image's questions together (they
    share its prompt prefix), and the answer file is the unshared run's, rows in question order."""
    from kanva.eval.tasks import get_task
    from kanva.infer import Generator

    batches = []

    class Recording(Generator):
        def generate(self, rows, **kw):
            batches.append([media[0].tobytes() for media, _ in rows])
            return super().generate(rows, **kw)

    kw = dict(batch_size=4, max_new_tokens=3, progress=False)
    shared = run_benchmark("mme", tiny_model, [synth / "mme"], tmp_path / "s.jsonl",
                           generator=Recording(generator.model, generator.proc), **kw)
    plain = run_benchmark("mme", tiny_model, [synth / "mme"], tmp_path / "p.jsonl",
                          generator=Generator(generator.model, generator.proc, share_prefix=False), **kw)
    assert shared["run"]["share_prefix"] and not plain["run"]["share_prefix"]
    assert (tmp_path / "s.jsonl").read_text() == (tmp_path / "p.jsonl").read_text()
    task = get_task("mme")
    uids = [it.uid for it in task.items(task.load([synth / "mme"], "test"), "llava", None)]
    assert [a.question_id for a in load_answers(tmp_path / "s.jsonl")] == uids
    # every image's questions fill consecutive batches, and in item order they would not
    where = {}
    for n, batch in enumerate(batches):
        for image in batch:
            where.setdefault(image, set()).add(n)
    assert all(max(ns) - min(ns) + 1 == len(ns) for ns in where.values())
    assert sum(len(set(b)) for b in batches) < len(uids) * 0.75  # several rows per image in a batch
