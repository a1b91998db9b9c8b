"""SEED-Bench image accuracy per dimension, and the MMBench test submission spreadsheet."""

import json

import pytest

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.score import score
from kanva.eval.seed import load_seed, score_seed


@pytest.fixture
def seed_file(tmp_path):
    def q(qid, tid, ans, kind="image"):
        return {"question_id": qid, "question": f"Q{qid}?", "choice_a": "a", "choice_b": "b", "choice_c": "c",
                "choice_d": "d", "answer": ans, "question_type_id": tid, "data_type": kind, "data_id": f"{qid}.jpg"}
    obj = {"question_type": {"Scene Understanding": 1, "Instance Identity": 2, "Action Recognition": 10},
           "questions": [q("101", 2, "B"), q("102", 1, "A"), q("103", 1, "C"), q("104", 10, "D", "video")]}
    p = tmp_path / "SEED-Bench.json"
    p.write_text(json.dumps(obj))
    return p


def test_seed_exact_letter_per_dimension(seed_file):
    data = load_seed(seed_file)
    assert [q.qid for q in data.questions] == ["101", "102", "103"] and data.skipped_video == 1
    r = score_seed(data, [Answer("101", "B"), Answer("102", "A."), Answer("104", "D")])  # 103 missing
    assert r["image_accuracy"] == pytest.approx(100 / 3)  # only "B" is exactly the letter
    assert list(r["dimensions"]) == ["Scene Understanding", "Instance Identity"]  # by question_type_id
    assert r["dimensions"] == {"Scene Understanding": 0.0, "Instance Identity": 100.0}
    assert r["answers"]["missing"] == 1 and r["answers"]["unmatched"] == 1  # the video answer fits nothing
    assert "video" in r["notes"][0]


def _tsv(path, rows):
    head = ["index", "question", "hint", "A", "B", "C", "D", "category", "source", "l2-category", "comment", "split", "image"]
    path.write_text("\t".join(head) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_mmbench_test_submission_has_every_pass(tmp_path, capsys):
    from openpyxl import load_workbook

    tsv = _tsv(tmp_path / "mmbench_test_en.tsv", [
        [0, "What is it?", "nan", "cat", "dog", "cow", "", "c1", "s", "l2", "nan", "test", "aGVsbG8="],
        [1000000, "What is it?", "nan", "dog", "cow", "cat", "", "c1", "s", "l2", "nan", "test", "0"],
        [1, "How many?", "a hint", "1", "2", "3", "4", "c2", "s", "l2", "nan", "test", "aGVsbG8="],
    ])
    with pytest.raises(KanvaError, match="--upload FILE.xlsx"):
        score("mmbench", [tsv], [_answers(tmp_path, [(0, "A")])])
    ans = _answers(tmp_path, [(0, "A"), (1000000, "C. cat")])
    out = tmp_path / "sub" / "kanva.xlsx"
    assert main(["eval", "score", "mmbench", "--data", str(tsv), "--predictions", str(ans), "--upload", str(out)]) == 0
    assert "1 without an answer" in capsys.readouterr().out
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    assert rows[0] == ("index", "question", "A", "B", "C", "D", "prediction", "split")
    assert rows[1] == (0, "What is it?", "cat", "dog", "cow", None, "A", "test")
    assert rows[2] == (1000000, "What is it?", "dog", "cow", "cat", None, "C. cat", "test")
    assert rows[3] == (1, "How many?", "1", "2", "3", "4", None, "test")


def _answers(tmp_path, pairs):
    p = tmp_path / "answers.jsonl"
    p.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n" for q, t in pairs))
    return p
