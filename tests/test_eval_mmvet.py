"""MM-Vet: the official grade-file format, totals per capability and combination, grading with a judge
(failures counted, replies cached, version and prompt hash recorded). Figures computed by hand."""

import json

import httpx
import pytest

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.judge import Judge
from kanva.eval.mmvet import grade_answers, judge_prompt, load_grades, load_mmvet, score_grades


@pytest.fixture
def mmvet(tmp_path):
    meta = {
        "v1_0": {"imagename": "v1_0.png", "capability": ["rec"], "question": "What is it?", "answer": "a cat"},
        "v1_1": {"imagename": "v1_1.png", "capability": ["rec", "ocr"], "question": "What does it say?", "answer": "stop"},
        "v1_2": {"imagename": "v1_2.png", "capability": ["ocr", "rec"], "question": "Which brand?", "answer": "acme <OR> ACME"},
        "v1_3": {"imagename": "v1_3.png", "capability": ["know", "rec"], "question": "Which two?", "answer": "x<AND>y"},
    }
    d = tmp_path / "mm-vet"
    d.mkdir()
    (d / "mm-vet.json").write_text(json.dumps(meta))
    return d


GRADES = {  # two runs; v1_3 was graded once only
    "v1_0": {"model": ["gpt-4-0613"] * 2, "content": ["1.0", "0.5"], "score": [1.0, 0.5]},
    "v1_1": {"model": ["gpt-4-0613"] * 2, "content": ["0.5", "0.5"], "score": [0.5, 0.5]},
    "v1_2": {"model": ["gpt-4-0613"] * 2, "content": ["0.0", "1.0"], "score": [0.0, 1.0]},
    "v1_3": {"model": ["gpt-4-0613"], "content": ["1.0"], "score": [1.0]},
}


def test_scores_as_the_official_grader(mmvet):
    r = score_grades(GRADES, load_mmvet(mmvet))
    # run 1: (1 + .5 + 0 + 1) / 4 = 62.5; run 2: (.5 + .5 + 1 + 0 [ungraded]) / 4 = 50
    assert r["runs"] == pytest.approx([62.5, 50.0])
    assert r["total"] == pytest.approx(56.25) and r["std"] == pytest.approx(6.25)
    # rec (4 questions) as total; ocr: (.5+0)/2=25, (.5+1)/2=75; know: 100, 0.
    assert list(r["capabilities"]) == ["rec", "ocr", "know"]  # by question count
    assert r["capabilities"] == pytest.approx({"rec": 56.25, "ocr": 50.0, "know": 50.0})
    # combinations: {rec, ocr} twice (either order in the metadata), then rec, then rec+know
    assert list(r["capability_integrations"]) == ["rec_ocr", "rec", "rec_know"]
    assert r["capability_integrations"] == pytest.approx({"rec_ocr": 50.0, "rec": 75.0, "rec_know": 50.0})
    assert r["grades"]["ungraded"] == 1 and r["judge_versions"] == ["gpt-4-0613"]


def test_grade_file_cli_with_and_without_metadata(mmvet, tmp_path, capsys):
    g = tmp_path / "model_gpt-4-0613-grade-2runs.json"
    g.write_text(json.dumps(GRADES))
    assert main(["eval", "score", "mm-vet", "--predictions", str(g), "--data", str(mmvet), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "56.2" in out and "rec_ocr" in out and "[62.5, 50.0]" in out
    assert main(["eval", "score", "mm-vet", "--predictions", str(g)]) == 0
    # no metadata: total over the grade file's 4 questions, the same here
    assert json.loads((tmp_path / "r.json").read_text())["total"] == pytest.approx(56.25)
    bad = tmp_path / "bad-grade.json"
    bad.write_text(json.dumps({"v1_0": {"score": [1.5]}}))
    with pytest.raises(KanvaError, match=r"bad-grade.json \(question v1_0\): scores must lie in \[0, 1\]"):
        load_grades(bad)


def _fake_judge(replies, model_version="judge-v2"):
    """A judge behind httpx's mock transport: `replies(user_text, temperature)` gives the reply text."""
    calls = []

    def handler(request):
        body = json.loads(request.content)
        calls.append(body)
        content = replies(body["messages"][-1]["content"], body["temperature"])
        return httpx.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": model_version,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        })

    return httpx.Client(transport=httpx.MockTransport(handler)), calls


def test_grading_request_failures_cache_and_record(mmvet, tmp_path):
    (tmp_path / "evaluator.py").write_text('import os\nprompt = """Grade it.\\n"""\n')
    prompt, official = judge_prompt(tmp_path / "evaluator.py")
    assert (prompt, official) == ("Grade it.\n", True)

    def replies(user, temperature):
        if "Which two?" in user:
            return "unsure"  # never a number: a failure after 5 tries at rising temperature
        return "0.5 because" if "stop" in user else "1.0"

    client, calls = _fake_judge(replies)
    judge = Judge("gpt-x", base_url="http://judge/v1", api_key="k", http_client=client, cache=tmp_path / "cache.jsonl")
    data = load_mmvet(mmvet)
    answers = [Answer("0", "a cat"), Answer("v1_1", "stop"), Answer("v1_2", "Acme"), Answer("v1_3", "x and y")]
    r = grade_answers(data, answers, judge, tmp_path / "grades.json", runs=1, prompt_file=tmp_path / "evaluator.py")
    first = calls[0]
    assert first["messages"] == [{"role": "user", "content": "Grade it.\n\nWhat is it? | a cat | a cat | "}]
    assert first["max_tokens"] == 3 and first["temperature"] == 0.0
    assert any("x <AND> y" in c["messages"][0]["content"] for c in calls)  # <AND> spaced as the grader does
    assert [c["temperature"] for c in calls if "Which two?" in c["messages"][0]["content"]] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert r["judge_failures"]["count"] == 1 and "v1_3" in r["judge_failures"]["examples"][0]
    grades = json.loads((tmp_path / "grades.json").read_text())
    assert "v1_3" not in grades  # no default score written
    assert grades["v1_1"] == {"model": ["judge-v2"], "content": ["0.5 because"], "score": [0.5]}
    # v1_3 counts 0 in the denominator and is reported: (1 + .5 + 1 + 0) / 4
    assert r["total"] == pytest.approx(62.5) and r["grades"]["ungraded"] == 1
    assert r["judge"]["model"] == "gpt-x" and r["judge"]["versions"] == ["judge-v2"] and r["judge"]["comparable"]
    n = len(calls)
    # A rerun asks only what failed; cached replies answer the rest (here all of them, from the cache file).
    judge2 = Judge("gpt-x", base_url="http://judge/v1", api_key="k", http_client=client, cache=tmp_path / "cache.jsonl")
    r2 = grade_answers(data, answers, judge2, tmp_path / "grades.json", runs=1, prompt_file=tmp_path / "evaluator.py")
    assert len(calls) == n and judge2.calls == 0 and r2["total"] == r["total"]
    # Kanva's own prompt is another request (not a cached reply) and is marked not comparable.
    r3 = grade_answers(data, answers, judge2, tmp_path / "grades-own.json", runs=1)
    assert judge2.calls > 0 and r3["judge"]["comparable"] is False
    assert r3["judge"]["prompt_hash"] != r["judge"]["prompt_hash"]


def test_answer_file_needs_a_judge(mmvet, tmp_path):
    ans = tmp_path / "answers.jsonl"
    ans.write_text(json.dumps({"question_id": "v1_0", "text": "a cat"}) + "\n")
    with pytest.raises(KanvaError, match="graded by a judge"):
        from kanva.eval.score import score

        score("mm-vet", [mmvet], [ans])


def test_run_mm_vet_answers_then_grades(mmvet, tmp_path):
    from PIL import Image

    from kanva.eval.run import run_benchmark

    (mmvet / "images").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8)).save(mmvet / "images" / f"v1_{i}.png")

    class Echo:  # a stand-in generator: the same answer to every question
        proc = None  # run_benchmark hands it to items that load media through the processor (video); none here

        def generate(self, rows, **_):
            return ["stop"] * len(rows)

    client, calls = _fake_judge(lambda user, t: "1.0" if "| stop | stop |" in user else "0.0")
    judge = Judge("gpt-x", base_url="http://judge/v1", api_key="k", http_client=client)
    r = run_benchmark("mm-vet", tmp_path, [mmvet], tmp_path / "answers.jsonl", generator=Echo(), judge=judge,
                      progress=False)
    assert r["total"] == pytest.approx(25.0)  # only v1_1 ("stop") is right: 1/4
    assert r["capabilities"]["ocr"] == pytest.approx(50.0) and r["judge"]["comparable"] is False
    grade_file = tmp_path / "answers_gpt-x-grade-1runs.json"  # the official grader's naming
    assert set(json.loads(grade_file.read_text())) == {"v1_0", "v1_1", "v1_2", "v1_3"}
    assert (tmp_path / "answers_gpt-x-grade-1runs.judge-cache.jsonl").is_file() and len(calls) == 4


def test_upload_writes_the_graders_results_file(mmvet, tmp_path):
    ans = tmp_path / "answers.jsonl"
    ans.write_text(json.dumps({"question_id": 1, "text": "stop"}) + "\n" + json.dumps({"question_id": "v1_0", "text": "cat"}) + "\n")
    assert main(["eval", "score", "mm-vet", "--data", str(mmvet), "--predictions", str(ans), "--upload", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == {"v1_0": "cat", "v1_1": "stop", "v1_2": "", "v1_3": ""}
