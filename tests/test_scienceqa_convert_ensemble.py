"""ScienceQA: conversion to LLaVA's prompt formats, the fine-tuning recipe, and the judge ensemble."""

import json
from pathlib import Path

import httpx
import pytest

from kanva.cli import main
from kanva.data.llava import load_llava
from kanva.data.scienceqa import example
from kanva.errors import KanvaError
from kanva.eval.judge import Judge
from kanva.eval.sqa import load_sqa
from kanva.eval.sqa_ensemble import ensemble
from kanva.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]

P1 = {"question": "Which is a mammal?", "choices": ["cat", "frog"], "answer": 0, "hint": "", "image": "image.png",
      "lecture": "Mammals have fur.", "solution": "A cat has fur.", "split": "train"}
P2 = {"question": "What is 2+2?", "choices": ["3", "4", "5"], "answer": 1, "hint": "Add  them.", "image": None,
      "lecture": "", "solution": "", "split": "train"}


def test_formats_by_hand():
    assert example(P1, "CQM-A") == ("Context: N/A\nQuestion: Which is a mammal?\nOptions: (A) cat (B) frog",
                                    "The answer is A.")
    assert example(P1, "QCM-LEA") == ("Which is a mammal?\nContext: N/A\nOptions: (A) cat (B) frog",
                                      "Mammals have fur. A cat has fur. The answer is A.")
    # empty lecture/solution: "BECAUSE:" goes, double spaces become single once
    assert example(P2, "QCM-ALE") == ("What is 2+2?\nContext: Add them.\nOptions: (A) 3 (B) 4 (C) 5", "The answer is B.")
    # "Answer:" + 3 spaces: one pass leaves 2, removing "Answer: " leaves one leading space (as LLaVA's files)
    assert example(P2, "QCM-LEA")[1] == " The answer is B."
    assert example(P1, "QCM-LEPA")[1] == "LECTURE: Mammals have fur.\nSOLUTION: A cat has fur.\n###\nANSWER: A."
    with pytest.raises(KanvaError, match="unknown ScienceQA prompt format 'QMC-A'"):
        example(P1, "QMC-A")


@pytest.fixture
def sqa_release(tmp_path):
    d = tmp_path / "scienceqa"
    d.mkdir()
    problems = {"1": P1, "2": P2, "3": {**P2, "question": "Pick one.", "split": "test"},
                "4": {**P1, "question": "Which has fur?", "split": "test"}}
    (d / "problems.json").write_text(json.dumps(problems))
    (d / "pid_splits.json").write_text(json.dumps({"train": ["1", "2"], "val": [], "test": ["3", "4"]}))
    return d


def test_convert_cli_writes_llava_files(sqa_release, capsys):
    assert main(["data", "convert", "scienceqa", "--data", str(sqa_release), "--splits", "train,test"]) == 0
    rows = load_llava(sqa_release / "llava_train_QCM-LEA.json")
    assert rows[0]["image"] == "1/image.png"
    assert rows[0]["conversations"][0]["value"].endswith("(B) frog\n<image>")
    assert "image" not in rows[1]
    assert (sqa_release / "llava_test_CQM-A.json").is_file()
    assert "llava_train_CQM-A.json: 2 samples, 1 with an image" in capsys.readouterr().out


def test_sqa_recipe_states_llavas_settings():
    r = load_recipe(ROOT / "recipes" / "llava-1.5-sqa.yaml")
    sqa = r.stage("sqa")
    assert sqa.epochs == 12 and sqa.lr == {"projector": 2e-5, "lm": 2e-5} and sqa.weight_decay == 0.0
    assert sqa.data[0].path.endswith("llava_train_QCM-LEA.json")
    assert "finetune_sqa.sh" in (ROOT / "recipes" / "llava-1.5-sqa.yaml").read_text()


def test_ensemble_asks_only_on_disagreement(sqa_release, tmp_path):
    from kanva.eval.answers import Answer

    calls = []

    def handler(request):
        body = json.loads(request.content)
        calls.append(body)
        user = body["messages"][1]["content"]
        content = "Answer 2 is right.\nThe answer is B." if "Pick one." in user else "Hmm, unclear."
        return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "j-1",
                                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                                      "finish_reason": "stop"}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    judge = Judge("j", base_url="http://j/v1", api_key="k", http_client=client, cache=tmp_path / "c.jsonl")
    data = load_sqa(sqa_release, "test")
    first = [Answer("3", "A"), Answer("4", "A")]
    second = [Answer("3", "B"), Answer("4", "B. dog")]
    r = ensemble(data, first, second, judge, tmp_path / "ens.jsonl")
    # q3: disagreement settled "B" (right); q4 (answer A): the judge names no option -> failure, scored wrong.
    assert len(calls) == 2 and r["accuracy"] == 50.0 and r["judge_failures"]["count"] == 1
    assert r["ensemble"]["agreed"] == 0 and r["ensemble"]["asked_judge"] == 2
    assert r["judge"]["versions"] == ["j-1"] and r["judge"]["comparable"] is False
    # agreement: no judge call; the rerun answers the disagreement from the cache
    r2 = ensemble(data, first, [Answer("3", "B"), Answer("4", "A")], judge, tmp_path / "ens2.jsonl")
    assert len(calls) == 2 and r2["accuracy"] == 100.0 and r2["ensemble"]["agreed"] == 1  # q4 agreed on A (right)
    rows = [json.loads(x) for x in (tmp_path / "ens2.jsonl").read_text().splitlines()]
    assert [x["source"] for x in rows] == ["judge", "agree"]
