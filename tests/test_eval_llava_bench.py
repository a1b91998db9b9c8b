"""LLaVA-Bench: judge over an OpenAI-compatible endpoint (a fake server here), review parsing and scoring."""

import json
import re
import socket
import threading
import time

import pytest

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.judge import Judge
from kanva.eval.llava_bench import judge_answers, load_llava_bench, parse_scores, score_llava_bench


@pytest.mark.parametrize(
    "content, pair",
    [
        ("8 6\nAssistant 1 is better.", (8.0, 6.0)),
        ("8,6\nreason", (8.0, 6.0)),
        ("  7.5 9 \n", (7.5, 9.0)),
        ("Scores: 8 and 6\n", (8.0, 6.0)),
        ("8\n6", None),  # the two numbers must be on the first line
        ("8 6 10\n", None),
        ("good\n8 6", None),
        ("", None),
    ],
)
def test_parse_scores(content, pair):
    assert parse_scores(content) == pair


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def bench(tmp_path):
    d = tmp_path / "llava-bench"
    d.mkdir()
    _write(d / "questions.jsonl", [
        {"question_id": 0, "image": "001.jpg", "text": "What is on the table?", "category": "conv"},
        {"question_id": 1, "image": "001.jpg", "text": "Describe the image in detail.", "category": "detail"},
        {"question_id": 2, "image": "002.jpg", "text": "Why might the man be smiling?", "category": "complex"},
    ])
    _write(d / "answers_gpt4.jsonl", [
        {"question_id": 0, "text": "A red apple."},
        {"question_id": 1, "text": "A kitchen table with a red apple and a mug."},
        {"question_id": 2, "text": "He has just won a prize."},
    ])
    _write(d / "context.jsonl", [
        {"id": "001", "image": "001.jpg", "caption": "A red apple and a mug on a kitchen table."},
        {"id": "002", "image": "002.jpg", "caption": "A man holding a trophy."},
    ])
    return d


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def judge_server():
    """A fake OpenAI-compatible judge: reference 8; candidate 8 if it equals the reference, 4 if it is
    non-empty, 2 if empty; + the run number (seed // 1000) to the candidate so runs differ. The first
    try for the "complex" question answers without scores, to exercise the retry."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    calls = []

    @app.post("/v1/chat/completions")
    def completions(body: dict):
        user = body["messages"][1]["content"]
        calls.append(body)
        ref = re.search(r"\[Assistant 1\]\n(.*?)\n\[End of Assistant 1\]", user, re.S).group(1)
        cand = re.search(r"\[Assistant 2\]\n(.*?)\n\[End of Assistant 2\]", user, re.S).group(1)
        run, attempt = divmod(body.get("seed") or 0, 1000)
        score = 8 if cand == ref else (4 if cand else 2)
        if "reasoning" in user and attempt == 0:
            content = "Let me think about both answers."
        else:
            content = f"8 {score + run}\nAssistant 2 is {'as good' if cand == ref else 'worse'}."
        return {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", calls
    server.should_exit = True
    thread.join(timeout=10)


def test_judge_three_runs_resume_and_score(bench, judge_server, tmp_path):
    url, calls = judge_server
    data = load_llava_bench(bench)
    judge = Judge("fake-judge", base_url=url, api_key="k")
    answers = [Answer("0", "A red apple."), Answer("1", "A table.")]  # question 2 unanswered
    files, cov = judge_answers(data, answers, judge, tmp_path / "reviews", runs=3)
    assert cov["missing"] == 1
    assert len(calls) == 3 * 4  # 3 runs x 3 questions, + one retry per run for the complex question
    r = score_llava_bench(files)
    # run k (0-based): conv 8+k vs 8, detail 4+k, complex (empty answer) 2+k.
    for k, run in enumerate(r["runs"]):
        assert run["categories"]["conv"] == pytest.approx(100 * (8 + k) / 8)
        assert run["overall"] == pytest.approx(100 * (14 + 3 * k) / 3 / 8)
    assert r["categories"]["detail"] == pytest.approx(100 * 5 / 8)  # mean over runs of 4, 5, 6
    assert r["overall"] == pytest.approx(100 * 17 / 3 / 8)
    assert r["judge"] == "fake-judge"
    # Resuming judges nothing again.
    judge_answers(data, answers, judge, tmp_path / "reviews", runs=3)
    assert len(calls) == 12
    # The rule of the category reached the judge.
    assert any("detailed description" in c["messages"][1]["content"] for c in calls)


def test_score_review_files_cli(tmp_path, capsys):
    runs = []
    for k in range(3):
        runs.append(_write(tmp_path / f"r{k}.jsonl", [
            {"question_id": 0, "category": "llava_bench_conv", "content": f"8 {6 + k}\nok"},
            {"question_id": 1, "category": "llava_bench_detail", "content": "10, 5\nok"},
        ]))
    out = tmp_path / "lb.json"
    assert main(["eval", "score", "llava-bench", "--predictions", *map(str, runs), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r) >= {"overall", "categories", "runs", "judge"}
    assert r["categories"]["conv"] == pytest.approx(100 * 7 / 8)
    assert r["categories"]["detail"] == pytest.approx(50.0)
    assert r["overall"] == pytest.approx(100 * (12 / 2) / 9)  # per run (6+k+5)/2 over 9, averaged over k
    assert "conv" in capsys.readouterr().out


def test_unparseable_reviews_are_counted_not_defaulted(tmp_path):
    p = _write(tmp_path / "r.jsonl", [{"category": "conv", "content": "8 7\nx"}, {"category": "conv", "content": "great answer"},
                                      {"category": "llava_bench_conv", "content": "8, 6 (LLaVA: unparsed)", "tuple": [-1, -1]}])
    r = score_llava_bench([p])
    assert r["overall"] == pytest.approx(100 * 7 / 8)  # only the parsable review counts
    assert r["judge_failures"]["count"] == 2 and "r.jsonl:2" in r["judge_failures"]["examples"][0]
    assert r["runs"][0]["reviews"] == 1 and "not defaulted" in r["notes"][0]
    bad = _write(tmp_path / "bad.jsonl", [{"category": "conv", "content": "great"}])
    with pytest.raises(KanvaError, match=r"bad.jsonl: no review holds two scores"):
        score_llava_bench([bad])


def _mock_judge(reply, status=200):
    """A judge behind httpx's mock transport; `reply(messages)` gives the text. Returns (Judge, calls)."""
    import httpx

    calls = []

    def handler(request):
        body = json.loads(request.content)
        calls.append(body)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "bad request", "type": "invalid_request_error"}})
        return httpx.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "judge-2024-01-01",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply(body["messages"])},
                         "finish_reason": "stop"}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return Judge("judge", base_url="http://judge/v1", api_key="k", http_client=client), calls


def test_official_rules_build_llavas_request_and_parse(bench, tmp_path):
    rule = {f"llava_bench_{c}": {"role": "Assistant", "prompt": f"RULE {c.upper()}"} for c in ("conv", "detail", "complex")}
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    data = load_llava_bench(bench)
    # "8, 6" is no pair under LLaVA's parse (split on single spaces gives three parts): a counted failure.
    judge, calls = _mock_judge(lambda m: "8, 6\nclose" if "trophy" in m[1]["content"] else "8 6\nok")
    answers = [Answer("0", "An apple."), Answer("1", "A table."), Answer("2", "He won.")]
    with pytest.raises(KanvaError, match="needs --judge-system"):
        judge_answers(data, answers, judge, tmp_path / "rv", runs=1, rules_file=tmp_path / "rule.json")
    from kanva.eval.llava_bench import judge_and_score

    r = judge_and_score(data, answers, judge, tmp_path / "rv", runs=1, judge_rules=tmp_path / "rule.json",
                        judge_system="SYSTEM LINE")
    assert calls[0]["messages"] == [
        {"role": "system", "content": "SYSTEM LINE"},
        {"role": "user", "content": "[Context]\nA red apple and a mug on a kitchen table.\n\n"
                                    "[Question]\nWhat is on the table?\n\n"
                                    "[Assistant 1]\nA red apple.\n\n[End of Assistant 1]\n\n"
                                    "[Assistant 2]\nAn apple.\n\n[End of Assistant 2]\n\n"
                                    "[System]\nRULE CONV\n\n"},
    ]
    assert len(calls) == 3 and calls[0]["max_tokens"] == 1024  # one ask per question, as LLaVA's script
    assert r["judge_failures"]["count"] == 1 and "question 2" in r["judge_failures"]["examples"][0]
    assert r["overall"] == pytest.approx(75.0)  # (6 + 6) / (8 + 8), the failed question left out
    assert r["judge_info"]["comparable"] is True and r["judge_info"]["versions"] == ["judge-2024-01-01"]
    assert len(r["judge_info"]["prompt_hash"]) == 1 and len(r["judge_info"]["prompt_hash"][0]) == 16
    # Kanva's own rules are marked not comparable; a failing endpoint is counted, not raised.
    judge2, _ = _mock_judge(lambda m: "8 6", status=400)
    files, cov = judge_answers(data, answers, judge2, tmp_path / "rv2", runs=1)
    assert len(cov["judge_failures"]) == 3 and "bad request" in cov["judge_failures"][0]
    judge3, _ = _mock_judge(lambda m: "8 4\nok")
    r3 = judge_and_score(data, answers, judge3, tmp_path / "rv3", runs=1)
    assert r3["judge_info"]["comparable"] is False and "not comparable" in " ".join(r3["notes"])
