"""ScienceQA-IMG: loading, the LLaVA-1.5 prompt, extraction rules, IMG accuracy."""

import json

import pytest

from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.sqa import build_prompt, extract_letter, load_sqa, score_sqa


@pytest.mark.parametrize(
    "answer, n, letter",
    [
        ("A", 3, "A"),
        ("C. opaque", 3, "C"),
        ("The answer is B.", 3, "B"),
        ("The answer is B. The answer is C.", 3, None),  # two matches: failed
        ("The answer is B", 3, None),  # nothing after the letter
        ("B.", 3, None),  # needs ". " after the letter
        ("a", 3, None),
        ("AB", 3, None),
        ("E", 3, "E"),  # extracted, but beyond 3 choices: scored wrong
        ("F. foo The answer is B.", 3, "B"),  # F is no letter LLaVA reads, so the third rule decides
        ("", 2, None),
        (" A", 3, None),  # exact letter means exact
    ],
)
def test_extract_letter(answer, n, letter):
    assert extract_letter(answer, n) == letter


@pytest.fixture
def sqa_dir(tmp_path):
    problems = {
        "1": {"question": "Which is shiny?", "choices": ["rock", "spoon", "wool"], "answer": 1, "hint": "", "image": "image.png", "split": "test"},
        "2": {"question": "Which is a mammal?", "choices": ["cat", "frog"], "answer": 0, "hint": "Read the text.", "image": None, "split": "test"},
        "3": {"question": "What is 2+2?", "choices": ["3", "4"], "answer": 1, "hint": "", "image": "image.png", "split": "test"},
        "4": {"question": "Train only", "choices": ["x", "y"], "answer": 0, "hint": "", "image": None, "split": "train"},
    }
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    (tmp_path / "pid_splits.json").write_text(json.dumps({"train": ["4"], "test": ["1", "2", "3"]}))
    return tmp_path


def test_prompt_context_line_only_when_hint(sqa_dir):
    data = load_sqa(sqa_dir)
    q1, q2 = data.questions[0], data.questions[1]
    assert build_prompt(q1) == (
        "Which is shiny?\nA. rock\nB. spoon\nC. wool\nAnswer with the option's letter from the given choices directly."
    )
    assert build_prompt(q2).startswith("Context: Read the text.\nWhich is a mammal?\nA. cat\nB. frog\n")


def test_img_accuracy_counts_image_questions_only(sqa_dir):
    data = load_sqa(sqa_dir)
    answers = [Answer("1", "B"), Answer("2", "B"), Answer("3", "C")]  # 1 right; 2 wrong; 3 letter beyond choices
    r = score_sqa(data, answers)
    assert r["img_questions"] == 2 and r["questions"] == 3
    assert r["img_accuracy"] == pytest.approx(50.0)
    assert r["accuracy"] == pytest.approx(100 / 3)
    r = score_sqa(data, [Answer("1", "B"), Answer("9", "A")])
    assert r["answers"]["missing"] == 2 and r["answers"]["unmatched"] == 1
    assert r["accuracy"] == pytest.approx(100 / 3)


def test_bad_problem_names_pid(sqa_dir):
    p = json.loads((sqa_dir / "problems.json").read_text())
    p["3"]["answer"] = 5
    (sqa_dir / "problems.json").write_text(json.dumps(p))
    with pytest.raises(KanvaError, match=r"pid 3.*'answer'"):
        load_sqa(sqa_dir)
    with pytest.raises(KanvaError, match="no split 'minival'"):
        load_sqa(sqa_dir, "minival")
