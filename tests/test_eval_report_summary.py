"""`kanva eval report` opens with one table of every benchmark's headline figure per model."""

import json

from kanva.cli import main


def _result(tmp_path, name, model, body):
    p = tmp_path / f"{name}.results.json"
    p.write_text(json.dumps({**body, "run": {"model_id": model, "prompt_style": "llava"}}))
    return str(p)


def test_report_summary_table(tmp_path):
    runs = [
        _result(tmp_path, "a-vqa", "m1", {"benchmark": "vqav2", "accuracy": 78.5, "answer_types": {"yes/no": 90.0}}),
        _result(tmp_path, "a-seed", "m1", {"benchmark": "seed", "image_accuracy": 66.25, "dimensions": {"Scene": 70.0}}),
        _result(tmp_path, "b-vqa", "m2", {"benchmark": "vqav2", "accuracy": 70.0, "answer_types": {}}),
        _result(tmp_path, "b-mmvet", "m2", {"benchmark": "mm-vet", "total": 31.1, "std": 0.2, "capabilities": {"rec": 30.0},
                                            "judge": {"model": "gpt-x", "versions": ["gpt-x-1"], "prompt_hash": "ab12",
                                                      "comparable": False},
                                            "judge_failures": {"count": 2, "examples": []}}),
    ]
    assert main(["eval", "report", *runs, "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| model | VQAv2 | MM-Vet | SEED-IMG |" in md
    assert "| m1 (llava) | 78.50 |  | 66.25 |" in md
    assert "| m2 (llava) | 70.00 | 31.10* |  |" in md and "not comparable" in md
    assert "All benchmarks" in (tmp_path / "rep" / "report.html").read_text()
    assert "judge: gpt-x (versions gpt-x-1, prompt ab12, not comparable); judge failures: 2 (not defaulted)" in md
