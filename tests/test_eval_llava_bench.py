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


def test_unparseable_review_names_the_line(tmp_path):
    p = _write(tmp_path / "r.jsonl", [{"category": "conv", "content": "8 7\nx"}, {"category": "conv", "content": "great answer"}])
    with pytest.raises(KanvaError, match=r"r\.jsonl:2.*two scores"):
        score_llava_bench([p])
