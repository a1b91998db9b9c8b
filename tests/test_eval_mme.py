"""MME rules: official parsing, grouping by image, layouts, bad input."""

import json

import pytest

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, load_answers
from kanva.eval.mme import load_mme, load_mme_results, parse_yes_no, score_mme
from kanva.eval.score import score


@pytest.mark.parametrize(
    "pred, parsed",
    [
        ("Yes", "yes"),
        ("NO", "no"),
        ("yes", "yes"),
        ("Yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("Nope", "no"),  # "no" within the first 4 characters
        ("not sure", "no"),
        ("The answer is yes", "other"),  # "yes" is beyond the first 4 characters
        ("I think no", "other"),
        (" yes", "yes"),
        ("\nyes", "yes"),
        ("yes\tand more", "yes"),
        ("", "other"),
        ("Maybe", "other"),
        ("ayes", "yes"),  # first 4 characters contain "yes"
        ("know", "no"),  # the official rule is a substring test: "know"[:4] contains "no"
    ],
)
def test_parse_yes_no(pred, parsed):
    assert parse_yes_no(pred) == parsed


def _template(tmp_path, lines_by_subtask):
    d = tmp_path / "gt"
    d.mkdir()
    for s, lines in lines_by_subtask.items():
        (d / f"{s}.txt").write_text("".join("\t".join(x) + "\n" for x in lines))
    return d


GT = {
    "existence": [
        ("a.jpg", "Is there a dog in this image? Please answer yes or no.", "Yes"),
        ("b.jpg", "Is there a cat in this image? Please answer yes or no.", "No"),
        ("a.jpg", "Is there a cat in this image? Please answer yes or no.", "No"),
        ("b.jpg", "Is there a dog in this image? Please answer yes or no.", "Yes"),
    ],
    "code_reasoning": [
        ("0001.png", "Is the output 3? Please answer yes or no.", "Yes"),
        ("0001.png", "Is the output 4? Please answer yes or no.", "No"),
    ],
}


def _ans(qid, prompt, text, **kw):
    return Answer(question_id=qid, text=text, prompt=prompt, **kw)


def test_grouping_is_by_image_not_line_position(tmp_path):
    # Lines of an image are not adjacent: a position-based pairing would pair a.jpg with b.jpg.
    data = load_mme(_template(tmp_path, GT))
    sfx = "\nAnswer the question using a single word or phrase."
    answers = [
        _ans("existence/a.jpg", "Is there a dog in this image?" + sfx, "Yes"),
        _ans("existence/a.jpg", "Is there a cat in this image?" + sfx, "No"),
        _ans("existence/b.jpg", "Is there a cat in this image?" + sfx, "Yes"),  # wrong
        _ans("existence/b.jpg", "Is there a dog in this image?" + sfx, "Yes"),
        _ans("code_reasoning/0001.png", "Is the output 3? Please answer yes or no.", "yes"),
        _ans("code_reasoning/0001.png", "<image>\nIs the output 4?", "no"),
    ]
    r = score_mme(data, answers)
    # existence: acc 3/4, acc+ 1/2 (a.jpg both right, b.jpg not) -> 75 + 50
    assert r["subtasks"]["existence"] == pytest.approx(125.0)
    assert r["subtasks"]["code_reasoning"] == pytest.approx(200.0)
    assert r["perception"] == pytest.approx(125.0) and r["cognition"] == pytest.approx(200.0)


def test_missing_and_duplicate_answers_are_counted_and_missing_is_wrong(tmp_path):
    data = load_mme(_template(tmp_path, {"existence": GT["existence"][:1] + GT["existence"][2:3]}))
    answers = [
        _ans("existence/a.jpg", "Is there a dog in this image?", "Yes"),
        _ans("existence/a.jpg", "Is there a dog in this image?", "No"),  # duplicate: first kept
        _ans("existence/zzz.jpg", "Is there a dog in this image?", "Yes"),  # unmatched
    ]
    r = score_mme(data, answers)
    assert r["answers"]["missing"] == 1 and r["answers"]["duplicates"] == 1 and r["answers"]["unmatched"] == 1
    assert r["subtasks"]["existence"] == pytest.approx(50.0)  # acc 1/2, acc+ 0/1


def test_odd_number_of_lines_for_an_image_is_an_error(tmp_path):
    gt = {"existence": GT["existence"] + [("a.jpg", "Is there a bus in this image? Please answer yes or no.", "No")]}
    with pytest.raises(KanvaError, match=r"a\.jpg.*3 question"):
        load_mme(_template(tmp_path, gt))


def test_bad_ground_truth_value_names_file_and_line(tmp_path):
    d = _template(tmp_path, {"count": [("x.jpg", "q1", "Yes"), ("x.jpg", "q2", "Maybe")]})
    with pytest.raises(KanvaError, match=r"count\.txt:2.*Yes or No"):
        load_mme(d)


def test_release_layout_both_folder_styles(tmp_path):
    root = tmp_path / "MME"
    (root / "artwork" / "images").mkdir(parents=True)
    (root / "artwork" / "questions_answers_YN").mkdir()
    (root / "artwork" / "images" / "1.jpg").write_bytes(b"x")
    (root / "artwork" / "questions_answers_YN" / "1.txt").write_text(
        "Is this a painting? Please answer yes or no.\tYes\nIs this a statue? Please answer yes or no.\tNo\n"
    )
    (root / "OCR").mkdir()
    (root / "OCR" / "7.png").write_bytes(b"x")
    (root / "OCR" / "7.txt").write_text("Is the word \"cold\"? Please answer yes or no.\tYes\r\nIs the word \"hot\"?\tNo\r\n")
    data = load_mme(root)
    assert data.layout == "release"
    assert [(q.subtask, q.image, q.gt) for q in data.questions] == [
        ("artwork", "1.jpg", "yes"), ("artwork", "1.jpg", "no"), ("OCR", "7.png", "yes"), ("OCR", "7.png", "no"),
    ]
    assert data.questions[0].image_rel == "artwork/images/1.jpg"
    ans = [Answer(q.image_rel, "Yes" if q.gt == "yes" else "No", q.core + "\nAnswer the question using a single word or phrase.") for q in data.questions]
    r = score_mme(data, ans)
    assert r["subtasks"] == {"artwork": 200.0, "OCR": 200.0}


def test_results_dir_prediction_with_tab_is_kept_and_newline_is_an_error(tmp_path):
    d = tmp_path / "res"
    d.mkdir()
    (d / "color.txt").write_text("i.jpg\tIs it red?\tYes\tYes\tbecause\ni.jpg\tIs it blue?\tNo\tno\n")
    data, answers = load_mme_results(d)
    assert answers[0].text == "Yes\tbecause"
    assert score_mme(data, answers)["subtasks"]["color"] == 200.0
    (d / "color.txt").write_text("i.jpg\tIs it red?\tYes\tYes\nbecause\ni.jpg\tIs it blue?\tNo\tno\n")
    with pytest.raises(KanvaError, match=r"color\.txt:2.*newline"):
        load_mme_results(d)


def test_llava_question_file_without_answers_cannot_be_scored(tmp_path):
    q = tmp_path / "q.jsonl"
    rows = [
        {"question_id": "count/1.jpg", "image": "count/1.jpg", "text": "Is there one cat?", "category": "count"},
        {"question_id": "count/1.jpg", "image": "count/1.jpg", "text": "Is there two cats?", "category": "count"},
    ]
    q.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_mme(q)
    assert data.layout == "llava-questions" and len(data.questions) == 2
    with pytest.raises(KanvaError, match="no ground truth"):
        score_mme(data, [])


def test_answer_file_errors_name_file_and_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"question_id": "x", "text": "yes"}\n{"question_id": "y"}\n')
    with pytest.raises(KanvaError, match=r"a\.jsonl:2.*'text'"):
        load_answers(p)
    p.write_text('{"question_id": "x", "text": "yes"}\nnot json\n')
    with pytest.raises(KanvaError, match=r"a\.jsonl:2.*JSON"):
        load_answers(p)


def test_unknown_benchmark_is_an_error():
    with pytest.raises(KanvaError, match="unknown benchmark 'mmmu'"):
        score("mmmu", None, ["x"])


def test_cli_unknown_benchmark_exits_nonzero(capsys):
    from kanva.cli import main

    assert main(["eval", "score", "mmmu", "--predictions", "x.jsonl"]) == 2
    assert "unknown benchmark 'mmmu'" in capsys.readouterr().err
