"""VQAv2 / VizWiz / TextVQA / GQA: the official normalizations, soft accuracy, matching, server files.

Every figure below is computed by hand in the comment beside it.
"""

import json

import pytest

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.gqa import load_gqa, score_gqa
from kanva.eval.vqa import build_prompt, load_vqa, question_accuracy, score_vqa
from kanva.eval.vqa_normalize import evalai_answer, soft_accuracy, vqa_answer, vqa_punctuation


@pytest.mark.parametrize(
    "raw, want",
    [
        ("Two dogs.", "2 dogs"),
        ("It's a cat!", "it's cat"),  # "!" touches no space: becomes a space, then split away
        ("yes.", "yes"),
        ("3.5", "3.5"),  # a period before a digit stays
        ("the end", "end"),
        ("dont", "don\u2019t"),  # the VQA tool's table writes a typographic apostrophe
        ("  left\tside\n", "left side"),
    ],
)
def test_vqa_answer(raw, want):
    assert vqa_answer(raw) == want


def test_punctuation_rules():
    assert vqa_punctuation("1,000") == "1000"  # digit-comma-digit: marks are deleted, not spaced
    assert vqa_punctuation("a-b") == "a b"  # touches no space: replaced by a space
    assert vqa_punctuation("a - b") == "a  b"  # touches a space: deleted
    assert vqa_punctuation("." * 40) == "." * 8  # at most 32 periods go (the tool's count quirk)


def test_evalai_answer():
    assert evalai_answer("The man's hat?") == "man 's hat"
    assert evalai_answer("dont") == "don't"
    assert evalai_answer("Coca-Cola.") == "coca cola"


def test_soft_accuracy_by_hand():
    humans = ["yes"] * 2 + ["no"] * 8
    # "yes": leaving out a "yes" (2 subsets) leaves 1 agreeing -> 1/3; the other 8 leave 2 -> 2/3.
    assert soft_accuracy("yes", humans) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)  # 0.6
    assert soft_accuracy("no", humans) == 1.0
    # three "red": leaving one out leaves 2 -> 2/3 (3 subsets), else 3 -> 1 (7 subsets): 0.9
    assert soft_accuracy("red", ["red"] * 3 + ["blue"] * 7) == pytest.approx(0.9)
    assert soft_accuracy("green", ["red"] * 10) == 0.0


def test_vqav2_normalizes_humans_only_when_they_differ():
    # All ten identical: the humans are compared unprocessed, the prediction processed ("the cat" -> "cat").
    assert question_accuracy("vqav2", "the cat", ("the cat",) * 10) == 0.0
    assert question_accuracy("vqav2", "two", ("2",) * 10) == 1.0
    # They differ: humans get punctuation only, never digits, so "two" (-> "2") matches no "two".
    assert question_accuracy("vqav2", "two", ("two",) * 9 + ("three",)) == 0.0
    assert question_accuracy("vqav2", "Red", ("red.",) * 4 + ("blue",) * 6) == 1.0  # 4 agree after "." goes


def test_vizwiz_and_textvqa_rules():
    assert question_accuracy("vizwiz", "Unanswerable.", ("unanswerable",) * 10) == 1.0
    assert question_accuracy("vizwiz", "red", ("Red",) * 10) == 0.0  # humans compared as written
    assert question_accuracy("textvqa", "Coca-Cola.", ("Coca Cola",) * 3 + ("coca-cola",) * 7) == 1.0


@pytest.fixture
def vqav2_files(tmp_path):
    q = {"data_subtype": "val2014", "questions": [
        {"image_id": 42, "question": "How many dogs?", "question_id": 1},
        {"image_id": 42, "question": "Is it sunny?", "question_id": 2},
        {"image_id": 7, "question": "What color?", "question_id": 3},
    ]}
    def ans(texts):
        return [{"answer": t, "answer_confidence": "yes", "answer_id": i + 1} for i, t in enumerate(texts)]
    a = {"annotations": [
        {"question_id": 1, "image_id": 42, "answer_type": "number", "question_type": "how many", "answers": ans(["2"] * 10)},
        {"question_id": 2, "image_id": 42, "answer_type": "yes/no", "question_type": "is it", "answers": ans(["yes"] * 2 + ["no"] * 8)},
        {"question_id": 3, "image_id": 7, "answer_type": "other", "question_type": "what color", "answers": ans(["red"] * 10)},
    ]}
    (tmp_path / "q.json").write_text(json.dumps(q))
    (tmp_path / "a.json").write_text(json.dumps(a))
    return tmp_path


def test_vqav2_score_missing_counted_wrong(vqav2_files):
    data = load_vqa("vqav2", [vqav2_files / "q.json", vqav2_files / "a.json"])
    assert data.questions[0].image == "COCO_val2014_000000000042.jpg"
    r = score_vqa(data, [Answer("1", "Two"), Answer("2", "yes")])  # question 3 unanswered
    assert r["accuracy"] == pytest.approx((1.0 + 0.6 + 0.0) / 3 * 100)  # 53.33
    assert r["answer_types"] == pytest.approx({"number": 100.0, "other": 0.0, "yes/no": 60.0})
    assert r["answers"]["missing"] == 1
    assert r["question_types"] == pytest.approx({"how many": 100.0, "is it": 60.0, "what color": 0.0})


def test_vqav2_test_dev_upload(vqav2_files, tmp_path, capsys):
    q = json.loads((vqav2_files / "q.json").read_text())
    q["data_subtype"] = "test-dev2015"
    (tmp_path / "testdev.json").write_text(json.dumps(q))
    ans = tmp_path / "answers.jsonl"
    ans.write_text(json.dumps({"question_id": 1, "text": "Two."}) + "\n" + json.dumps({"question_id": 3, "text": "Red"}) + "\n")
    up = tmp_path / "up" / "vqav2_test.json"
    assert main(["eval", "score", "vqav2", "--data", str(tmp_path / "testdev.json"), "--predictions", str(ans),
                 "--upload", str(up)]) == 0
    rows = json.loads(up.read_text())
    assert rows == [{"question_id": 1, "answer": "2"}, {"question_id": 2, "answer": ""}, {"question_id": 3, "answer": "red"}]
    out = capsys.readouterr().out
    assert "1 without an answer" in out and "no human answers" in out
    assert load_vqa("vqav2", [tmp_path / "testdev.json"]).questions[0].image == "COCO_test2015_000000000042.jpg"


def test_vizwiz_matches_llava_index_ids_and_upload(tmp_path):
    rows = [
        {"image": "VizWiz_val_00000000.jpg", "question": "What is this?", "answer_type": "unanswerable",
         "answers": [{"answer": "unanswerable", "answer_confidence": "yes"}] * 10},
        {"image": "VizWiz_val_00000001.jpg", "question": "What color?", "answer_type": "other",
         "answers": [{"answer": "blue", "answer_confidence": "yes"}] * 3 + [{"answer": "navy", "answer_confidence": "no"}] * 7},
    ]
    (tmp_path / "val.json").write_text(json.dumps(rows))
    data = load_vqa("vizwiz", [tmp_path / "val.json"])
    assert build_prompt(data, data.questions[0]).split("\n")[1].startswith("When the provided information is insufficient")
    r = score_vqa(data, [Answer("0", "Unanswerable"), Answer("VizWiz_val_00000001", "Blue")])
    assert r["accuracy"] == pytest.approx((1.0 + 0.9) / 2 * 100)  # 95.0
    assert r["answer_types"]["unanswerable"] == 100.0 and r["answers"]["missing"] == 0


def test_textvqa_ocr_prompt_and_llava_matching(tmp_path):
    qa = {"data": [
        {"question_id": 11, "image_id": "abc", "question": "what brand is this?", "answers": ["dakota"] * 10},
        {"question_id": 12, "image_id": "abc", "question": "what year?", "answers": ["1999"] * 5 + ["99"] * 5},
    ]}
    ocr = {"data": [{"image_id": "abc", "ocr_tokens": ["DAKOTA", "1999"]}]}
    (tmp_path / "TextVQA_0.5.1_val.json").write_text(json.dumps(qa))
    (tmp_path / "ocr.json").write_text(json.dumps(ocr))
    data = load_vqa("textvqa", [tmp_path / "TextVQA_0.5.1_val.json", tmp_path / "ocr.json"])
    prompt = build_prompt(data, data.questions[0])
    assert prompt == ("what brand is this?\nReference OCR token: DAKOTA, 1999\n"
                      "Answer the question using a single word or phrase.")
    # LLaVA's answer file: question_id is the image id, the question is read back from the prompt.
    answers = [Answer("abc", "Dakota", prompt=prompt), Answer("12", "99")]
    r = score_vqa(data, answers)
    assert r["accuracy"] == pytest.approx((1.0 + 1.0) / 2 * 100)  # "99": 5 agree -> 1 in every subset
    assert r["answers"]["matched"] == 2


def test_gqa_exact_match_after_llava_normalization(tmp_path):
    qs = {
        "q1": {"imageId": "n1", "question": "Is it red?", "answer": "yes", "isBalanced": True,
               "types": {"structural": "verify", "semantic": "attr"}},
        "q2": {"imageId": "n1", "question": "What is it?", "answer": "table", "isBalanced": True,
               "types": {"structural": "query", "semantic": "obj"}},
        "q3": {"imageId": "n2", "question": "Which?", "answer": "red", "isBalanced": False,
               "types": {"structural": "query", "semantic": "attr"}},
    }
    (tmp_path / "testdev_balanced_questions.json").write_text(json.dumps(qs))
    data = load_gqa([tmp_path / "testdev_balanced_questions.json"])
    r = score_gqa(data, [Answer("q1", "Yes."), Answer("q2", " table"), Answer("q3", "red")])
    # q1 right ("Yes." -> "yes"); q2 wrong (the leading space stays); q3 is not balanced: not counted.
    assert r["accuracy"] == 50.0 and r["binary"] == 100.0 and r["open"] == 0.0 and r["questions"] == 2
    assert r["structural"] == {"query": 0.0, "verify": 100.0}


def test_gqa_cli_upload_and_bad_file(tmp_path):
    (tmp_path / "g.json").write_text(json.dumps({"q1": {"imageId": "n1", "question": "Is it?", "answer": "no"}}))
    ans = tmp_path / "a.jsonl"
    ans.write_text(json.dumps({"question_id": "q1", "text": "No."}) + "\n")
    up = tmp_path / "pred.json"
    assert main(["eval", "score", "gqa", "--data", str(tmp_path / "g.json"), "--predictions", str(ans), "--upload", str(up)]) == 0
    assert json.loads(up.read_text()) == [{"questionId": "q1", "prediction": "no"}]
    (tmp_path / "bad.json").write_text(json.dumps({"q1": {"question": "no image"}}))
    with pytest.raises(KanvaError, match=r"bad.json \(question q1\): needs 'question' and 'imageId'"):
        load_gqa([tmp_path / "bad.json"])


class _Echo:
    """A stand-in generator: answers every prompt with a fixed text and records the prompts."""

    proc = None  # run_benchmark hands it to items that load media through the processor (video); none here

    def __init__(self, text):
        self.text, self.prompts = text, []

    def generate(self, rows, **_):
        self.prompts += [msgs[0]["content"] for _, msgs in rows]
        return [self.text] * len(rows)


def test_run_vizwiz_writes_answers_and_scores(tmp_path):
    from PIL import Image

    from kanva.eval.run import run_benchmark

    (tmp_path / "val").mkdir()
    rows = []
    for i in range(3):
        name = f"VizWiz_val_{i:08d}.jpg"
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / name)
        humans = ["unanswerable"] * 10 if i < 2 else ["cup"] * 10
        rows.append({"image": name, "question": f"q{i}?", "answer_type": "unanswerable" if i < 2 else "other",
                     "answers": [{"answer": h} for h in humans]})
    (tmp_path / "val.json").write_text(json.dumps(rows))
    gen = _Echo("Unanswerable")
    r = run_benchmark("vizwiz", tmp_path, [tmp_path / "val.json"], tmp_path / "out.jsonl", generator=gen, progress=False)
    assert r["accuracy"] == pytest.approx(200 / 3) and r["answer_types"] == {"other": 0.0, "unanswerable": 100.0}
    assert gen.prompts[0].startswith("q0?\nWhen the provided information is insufficient")
    assert (tmp_path / "out.results.json").is_file()
