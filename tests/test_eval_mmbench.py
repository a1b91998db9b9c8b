"""MMBench: TSV loading (NaN hints/options), judge-free extraction, CircularEval grouping."""

import base64
import csv
import io

import pytest
from PIL import Image

from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.mmbench import extract_choice, load_mmbench, score_mmbench

OPTS = {"A": "red", "B": "green", "C": "blue", "D": "red car"}


@pytest.mark.parametrize(
    "answer, choice",
    [
        ("B", "B"),
        (" C\n", "C"),
        ("B.", "B"),  # letter as a token once punctuation is stripped
        ("(C) blue", "C"),
        ("The answer is D", "D"),
        ("A or B", None),  # two letters: ambiguous, and no single option text either
        ("green", "B"),  # option text contained
        ("It is Green!", "B"),
        ("red", "A"),  # contains option A's text; "red car" is not inside "red"
        ("E", None),  # not an option letter
        ("b", None),  # letters are upper case
        ("purple", None),
        ("", None),
    ],
)
def test_extract_choice(answer, choice):
    assert extract_choice(answer, OPTS) == choice


def test_extract_choice_text_contained_in_two_options_is_wrong():
    assert extract_choice("a red car", OPTS) is None  # contains "red" and "red car"


def _png_b64():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "L2-category", "split"]


def write_tsv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(HEADER)
        for r in rows:
            w.writerow([r.get(h, "") for h in HEADER])
    return path


@pytest.fixture
def tsv(tmp_path):
    img = _png_b64()
    base = [
        # question 0: 4 options, 4 circular passes (answer rotates with the options)
        dict(index=0, question="What colour is the car?", hint="nan", A="red", B="green", C="blue", D="black", answer="A"),
        dict(index=1000000, question="What colour is the car?", hint="nan", A="green", B="blue", C="black", D="red", answer="D"),
        dict(index=2000000, question="What colour is the car?", hint="nan", A="blue", B="black", C="red", D="green", answer="C"),
        dict(index=3000000, question="What colour is the car?", hint="nan", A="black", B="red", C="green", D="blue", answer="B"),
        # question 1: two options only (C, D empty / "nan"): two passes
        dict(index=1, question="Is it day?", hint="Look at the sky.", A="yes", B="no", C="", D="nan", answer="A"),
        dict(index=1000001, question="Is it day?", hint="Look at the sky.", A="no", B="yes", C="", D="", answer="B"),
        # question 2: a single pass
        dict(index=2, question="How many?", hint="", A="1", B="2", C="3", D="", answer="C"),
    ]
    cats = {0: ("color", "attribute"), 1: ("scene", "coarse"), 2: ("count", "attribute")}
    for r in base:
        r["category"], r["L2-category"] = cats[r["index"] % 1000000]
        r["image"] = img if r["index"] < 1000000 else str(r["index"] % 1000000)  # later passes refer by index
        r["split"] = "dev"
    return write_tsv(tmp_path / "mmb.tsv", base)


def test_load_nan_hints_and_options(tsv):
    data = load_mmbench(tsv)
    rows = {r.index: r for r in data.rows}
    assert rows[0].hint is None and rows[2].hint is None and rows[1].hint == "Look at the sky."
    assert list(rows[1].options) == ["A", "B"]
    assert list(rows[2].options) == ["A", "B", "C"]
    assert rows[1000001].image == rows[1].image and len(rows[1].image) > 20  # image by reference resolved
    assert rows[0].l2 == "attribute"


def test_circular_eval(tsv):
    data = load_mmbench(tsv)
    answers = [
        Answer("0", "A"), Answer("1000000", "D. red"), Answer("2000000", "red"), Answer("3000000", "A"),  # last wrong
        Answer("1", "A"), Answer("1000001", "yes"),  # text "yes" -> B: right
        Answer("2", "The answer is C."),
    ]
    r = score_mmbench(data, answers)
    assert r["questions"] == 3 and r["rows"] == 7
    assert r["overall"] == pytest.approx(100 * 2 / 3)  # question 0 fails on its last pass
    assert r["circ0"] == pytest.approx(100.0)  # the first passes are all right
    assert r["category"] == {"color": 0.0, "count": 100.0, "scene": 100.0}
    assert r["l2"] == {"attribute": 50.0, "coarse": 100.0}


def test_missing_pass_makes_the_question_wrong(tsv):
    data = load_mmbench(tsv)
    answers = [Answer(str(i), r.answer) for i, r in ((r.index, r) for r in data.rows) if i != 1000001]
    answers.append(Answer("1", "B"))  # duplicate of row 1 (first kept)
    r = score_mmbench(data, answers)
    assert r["answers"]["missing"] == 1 and r["answers"]["duplicates"] == 1
    assert r["overall"] == pytest.approx(100 * 2 / 3)


def test_bad_tsv_rows(tmp_path):
    p = write_tsv(tmp_path / "a.tsv", [dict(index=5, question="q", A="x", B="y", answer="C", category="c")])
    with pytest.raises(KanvaError, match=r"a\.tsv:2 \(index 5\).*answer 'C'"):
        load_mmbench(p)
    p = write_tsv(tmp_path / "b.tsv", [dict(index=5, question="q", A="x", B="nan", answer="A", category="c")])
    with pytest.raises(KanvaError, match="fewer than two options"):
        load_mmbench(p)
    p = write_tsv(tmp_path / "c.tsv", [dict(index="x", question="q", A="x", B="y", answer="A", category="c")])
    with pytest.raises(KanvaError, match="not an integer"):
        load_mmbench(p)
    p = write_tsv(tmp_path / "d.tsv", [dict(index=1, question="q", A="x", B="y", answer="A", category="c")] * 2)
    with pytest.raises(KanvaError, match="duplicate index"):
        load_mmbench(p)
