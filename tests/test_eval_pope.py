"""POPE rules: parsing, joining by split + image + text (never position), metrics, bad input."""

import json

import pytest

from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.pope import load_pope, parse_pope, score_pope


@pytest.mark.parametrize(
    "pred, parsed",
    [
        ("Yes", "yes"),
        ("No", "no"),
        ("no", "no"),
        ("NO", "yes"),  # only "No", "no" and "not" count
        ("No, there is not.", "no"),
        ("Yes. No.", "yes"),  # only the text before the first "."
        ("There is no dog", "no"),
        ("It is not there", "no"),
        ("Nothing", "yes"),  # a word, not a prefix
        ("no, sorry", "no"),  # commas dropped before splitting
        ("No\nthere is none", "yes"),  # split on spaces only: "No\nthere" is one word
        ("", "yes"),
    ],
)
def test_parse_pope(pred, parsed):
    assert parse_pope(pred) == parsed


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def pope_dir(tmp_path):
    d = tmp_path / "pope"
    d.mkdir()
    _write(d / "coco_pope_random.json", [
        {"question_id": 1, "image": "i1.jpg", "text": "Is there a dog in the image?", "label": "yes"},
        {"question_id": 2, "image": "i1.jpg", "text": "Is there a car in the image?", "label": "no"},
        {"question_id": 3, "image": "i2.jpg", "text": "Is there a cat in the image?", "label": "yes"},
        {"question_id": 4, "image": "i2.jpg", "text": "Is there a bus in the image?", "label": "no"},
    ])
    _write(d / "coco_pope_adversarial.json", [
        {"question_id": 1, "image": "i1.jpg", "text": "Is there a dog in the image?", "label": "yes"},
        {"question_id": 2, "image": "i1.jpg", "text": "Is there a leash in the image?", "label": "no"},
    ])
    return d


def test_join_by_split_image_text_and_metrics(pope_dir):
    data = load_pope([pope_dir])
    sfx = "\nAnswer the question using a single word or phrase."
    answers = [  # out of order, with categories naming the split, and a prompt suffix
        Answer("r4", "Yes", "Is there a bus in the image?" + sfx, "random", "i2.jpg"),
        Answer("r1", "Yes", "Is there a dog in the image?" + sfx, "random", "i1.jpg"),
        Answer("a2", "No", "Is there a leash in the image?", "adversarial", "i1.jpg"),
        Answer("r3", "No, it is not.", "Is there a cat in the image?", "random", "i2.jpg"),
        Answer("a1", "yes", "Is there a dog in the image?", "adversarial", "i1.jpg"),
        Answer("r2", "No", "Is there a car in the image?", "random", "i1.jpg"),
    ]
    r = score_pope(data, answers)
    rnd = r["splits"]["random"]
    assert (rnd["tp"], rnd["fp"], rnd["tn"], rnd["fn"]) == (1, 1, 1, 1)
    assert rnd["precision"] == 0.5 and rnd["recall"] == 0.5 and rnd["f1"] == 0.5 and rnd["yes_ratio"] == 0.5
    adv = r["splits"]["adversarial"]
    assert adv["f1"] == 1.0 and adv["accuracy"] == 1.0
    assert r["mean_f1"] == pytest.approx(0.75)


def test_missing_answer_is_wrong_and_ids_join_within_a_split(pope_dir):
    data = load_pope([pope_dir / "coco_pope_random.json"])  # one split: ids are the file's own
    answers = [Answer("1", "yes"), Answer("2", "no"), Answer("3", "yes"), Answer("3", "no"), Answer("99", "no")]
    r = score_pope(data, answers)
    m = r["splits"]["random"]
    # question 4 (label no) is missing -> counted as a yes: a false positive.
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 1, 0)
    assert r["answers"]["missing"] == 1 and r["answers"]["duplicates"] == 1 and r["answers"]["unmatched"] == 1


def test_llava_question_file_supplies_split_for_id_only_answers(pope_dir):
    _write(pope_dir / "llava_pope_test.jsonl", [
        {"question_id": 10000003, "image": "i2.jpg", "text": "Is there a cat in the image?\nAnswer briefly.", "category": "random"},
        {"question_id": 2, "image": "i1.jpg", "text": "Is there a leash in the image?", "category": "adversarial"},
    ])
    data = load_pope([pope_dir])
    assert len(data.asked) == 2 and data.asked[0].label == "yes"
    r = score_pope(data, [Answer("10000003", "Yes"), Answer("2", "Yes")])
    assert r["splits"]["random"]["tp"] == 1
    assert r["splits"]["adversarial"]["fp"] == 1  # id 2 is the adversarial leash question, not random's car
    assert r["answers"]["matched"] == 2


def test_bad_label_and_non_pope_file(pope_dir, tmp_path):
    _write(pope_dir / "coco_pope_popular.json", [{"question_id": 1, "image": "x.jpg", "text": "Is there a cow?", "label": "maybe"}])
    with pytest.raises(KanvaError, match=r"coco_pope_popular\.json:1.*label"):
        load_pope([pope_dir])
    other = _write(tmp_path / "notes.json", [{"hello": 1}])
    with pytest.raises(KanvaError, match="neither a POPE annotation file"):
        load_pope([other])


def test_answers_that_match_no_question_fail_with_the_reason(pope_dir, tmp_path, capsys):
    """Ids and texts from another run (no category, ids unknown here): not an F1 of 0 but an error."""
    from kanva.cli import main

    other_run = _write(tmp_path / "answers.jsonl", [{"question_id": f"q{i}", "text": "Yes"} for i in range(5)])
    assert main(["eval", "score", "pope", "--data", str(pope_dir), "--predictions", str(other_run)]) == 2
    err = capsys.readouterr().err
    assert "none of the 5 answers matches any of the 6 questions" in err and "'q0'" in err
    assert "question file" in err  # two splits and no category: how to place such answers
    with pytest.raises(KanvaError, match="no answers to score"):
        score_pope(load_pope([pope_dir]), [])
