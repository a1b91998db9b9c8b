"""Conformance: LLaVA-1.5-13B's released MME and POPE answers must score exactly the published figures."""

import json
from pathlib import Path

import pytest

from kanva.cli import main
from kanva.eval.answers import load_answers
from kanva.eval.mme import load_mme, score_mme
from kanva.eval.pope import load_pope, score_pope
from kanva.eval.prompts import normalize_question
from kanva.eval.score import score

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
pytestmark = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"golden data not found at {GOLDEN} (needs shared/ beside the repo)")

MME_SUBTASKS = {
    "existence": 185.00, "count": 155.00, "position": 133.33, "color": 170.00, "posters": 160.54,
    "celebrity": 152.94, "scene": 161.25, "landmark": 170.50, "artwork": 117.75, "OCR": 125.00,
    "commonsense_reasoning": 127.86, "numerical_calculation": 42.50, "text_translation": 77.50,
    "code_reasoning": 47.50,
}
POPE = {  # split: (n, TP, FP, TN, FN, F1)
    "adversarial": (3000, 1182, 117, 1383, 318, 0.84459),
    "popular": (3000, 1182, 59, 1441, 318, 0.86246),
    "random": (2910, 1182, 31, 1379, 318, 0.87136),
}


def _check_mme(r):
    assert round(r["perception"], 2) == 1531.32
    assert round(r["cognition"], 2) == 295.36
    assert {k: round(v, 2) for k, v in r["subtasks"].items()} == MME_SUBTASKS
    assert r["details"]["artwork"]["other"] == 11
    assert r["answers"]["missing"] == 0 and r["answers"]["unmatched"] == 0


def test_mme_template_with_llava_answers():
    r = score_mme(load_mme(GOLDEN / "mme" / "ground_truth"), load_answers(GOLDEN / "mme" / "llava-v1.5-13b.jsonl"))
    _check_mme(r)


def test_mme_results_dir_and_shuffled_lines(tmp_path):
    # Build the eval tool's results folder as LLaVA's converter would, with every file's lines shuffled:
    # grouping is by image, so the score must not move.
    import random

    answers = load_answers(GOLDEN / "mme" / "llava-v1.5-13b.jsonl")
    pred = {(a.image or a.question_id, a.prompt.split("\n")[0]): a.text for a in answers}
    questions = [json.loads(line) for line in open(GOLDEN / "mme" / "llava_mme.jsonl")]
    by_key = {(q["category"], Path(q["image"]).name, normalize_question(q["text"])): pred[(q["question_id"], q["text"].split("\n")[0])] for q in questions}
    rng = random.Random(0)
    out = tmp_path / "results"
    out.mkdir()
    for f in sorted((GOLDEN / "mme" / "ground_truth").glob("*.txt")):
        lines = []
        for line in f.read_text().splitlines():
            image, q, gt = line.split("\t")
            lines.append(f"{image}\t{q}\t{gt}\t{by_key[(f.stem, image, normalize_question(q))]}")
        rng.shuffle(lines)
        (out / f.name).write_text("\n".join(lines) + "\n")
    _check_mme(score("mme", None, [out]))


def test_pope_annotation_folder_and_question_file():
    r = score_pope(load_pope([GOLDEN / "pope"]), load_answers(GOLDEN / "pope" / "llava-v1.5-13b.jsonl"))
    for split, (n, tp, fp, tn, fn, f1) in POPE.items():
        m = r["splits"][split]
        assert (m["n"], m["tp"], m["fp"], m["tn"], m["fn"]) == (n, tp, fp, tn, fn)
        assert round(m["f1"], 5) == f1
    assert round(r["mean_f1"], 5) == 0.85947
    assert r["answers"]["matched"] == 8910


def test_pope_join_survives_reordered_answers(tmp_path):
    # Reverse the answers and strip the prompt: the join goes through the question file's ids, never position.
    rows = [json.loads(line) for line in open(GOLDEN / "pope" / "llava-v1.5-13b.jsonl")][::-1]
    for r in rows:
        del r["prompt"]
    p = tmp_path / "answers.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = [GOLDEN / "pope" / f"coco_pope_{s}.json" for s in POPE] + [GOLDEN / "pope" / "llava_pope_test.jsonl"]
    r = score("pope", data, [p])
    assert round(r["mean_f1"], 5) == 0.85947
    assert {s: r["splits"][s]["tp"] for s in POPE} == {s: v[1] for s, v in POPE.items()}


def test_cli_json_keys(tmp_path, capsys):
    out = tmp_path / "pope.json"
    rc = main(["eval", "score", "pope", "--data", str(GOLDEN / "pope"), "--predictions",
               str(GOLDEN / "pope" / "llava-v1.5-13b.jsonl"), "--json", str(out)])
    assert rc == 0
    assert "0.85947" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert set(r["splits"]["random"]) == {"accuracy", "precision", "recall", "f1", "yes_ratio", "tp", "fp", "tn", "fn", "n"}
    assert round(r["mean_f1"], 5) == 0.85947
    out = tmp_path / "mme.json"
    assert main(["eval", "score", "mme", "--data", str(GOLDEN / "mme" / "ground_truth"), "--predictions",
                 str(GOLDEN / "mme" / "llava-v1.5-13b.jsonl"), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert {"perception", "cognition", "subtasks"} <= set(r)
    assert round(r["subtasks"]["artwork"], 2) == 117.75
