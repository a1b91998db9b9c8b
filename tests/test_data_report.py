"""`kanva data report`: summary figures recomputed independently from the files, CHAIR on a baseline with a
planted hallucination, plots and the markdown/HTML pages."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from kanva.data.coco import load_coco
from kanva.data.kbview import KBView
from kanva.data.llava import load_llava, save_llava
from kanva.data.metrics import chair, dataset_metrics, units_of
from kanva.data.report import write_report
from kanva.data.runner import run_evolve
from kanva.data.seed import make_seeds, write_seeds
from kanva.data.synth import MiniKB, synth_coco, write_coco


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    inst, caps = synth_coco(30, seed=4)
    write_coco(root / "w", "train", inst, caps, images=False)
    coco = load_coco(root / "w", "train")
    kb = KBView(MiniKB(), coco.category_names)
    samples, prov = make_seeds(coco, kb, ["conversation", "reasoning"], seed=0, progress=False)
    write_seeds(samples, prov, root / "seed.json")
    run_evolve(root / "seed.json", root / "w", "train", root / "ev", kb=kb, coco=coco, progress=False)
    paths = write_report(root / "ev", coco=coco)
    return root, coco, paths


def test_report_files_and_plots(run):
    root, _, paths = run
    assert [p.name for p in paths] == ["report.md", "report.html", "summary.json"]
    md = (root / "ev/report.md").read_text()
    assert "## Seed vs evolved" in md and "| CHAIR_i" in md and "## Operators" in md
    pngs = sorted(p.name for p in (root / "ev/report").glob("*.png"))
    assert pngs == ["acceptance.png", "answers.png", "coverage.png", "lengths.png", "rejections.png", "volume.png"]
    assert all(f"report/{n}" in md for n in pngs)
    page = (root / "ev/report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)  # one self-contained file


def test_summary_figures_match_the_files(run):
    root, _, _ = run
    s = json.loads((root / "ev/summary.json").read_text())
    evolved = load_llava(root / "ev/evolved.json")
    answers = Counter(c["value"] for x in evolved for c in x["conversations"][1::2])
    assert s["evolved"]["samples"] == len(evolved)
    assert s["evolved"]["yes_no"]["yes"] == answers["Yes"] and s["evolved"]["yes_no"]["no"] == answers["No"]
    assert s["evolved"]["letters"] == {k: answers[k] for k in "ABCD"}
    for which in ("seed", "evolved"):  # every unit lands in one length bin
        assert sum(s[which]["question_words"]["hist"]) == sum(s[which]["answer_words"]["hist"]) == s[which]["units"]
    recs = [json.loads(x) for x in (root / "ev/provenance.jsonl").read_text().splitlines()]
    cands = [r for r in recs if r.get("round")]
    dropped = {r["id"] for r in recs if r.get("stage") == "finalize" and r.get("status") == "rejected"}
    for op, a in s["provenance"]["acceptance"].items():
        mine = [r for r in cands if r["operator"] == op]
        kept = [r for r in mine if r["status"] == "kept" and r["id"] not in dropped]
        assert (a["candidates"], a["kept"]) == (len(mine), len(kept))
    vol = sum(sum(v.values()) for v in s["provenance"]["volume"].values())
    assert vol == s["provenance"]["kept"] == len(evolved) - s["seed"]["samples"]
    # the KB-built units are what "knowledge-use share" counts
    kb_units = sum(1 for r in cands if r["status"] == "kept" and r["id"] not in dropped and r["facts"])
    units = s["evolved"]["units"]
    assert s["evolved"]["knowledge_share"] == pytest.approx(
        (kb_units + round(s["seed"]["knowledge_share"] * s["seed"]["units"])) / units, abs=1e-3)


def test_chair_counts_a_planted_hallucination(run, tmp_path):
    root, coco, _ = run
    rec = coco.images[1]
    present = sorted(rec.counts)[0]
    absent = next(c for c in ("giraffe", "zebra", "elephant", "toaster") if c not in rec.counts
                  and c not in rec.caption_mentions)
    samples = [{"id": "h", "image": rec.file_name, "conversations": [
        {"from": "human", "value": "<image>\nWhat is in the picture?"},
        {"from": "gpt", "value": f"I can see a {present} and a {absent}, but no bicycle."}]}]
    save_llava(samples, tmp_path / "h.json")
    got = chair(units_of(load_llava(tmp_path / "h.json")), coco)
    assert got == {"chair_i": 0.5, "chair_s": 1.0, "mentions": 2}  # the negated bicycle is not a claim
    m = dataset_metrics(samples, coco)
    assert m["chair"]["chair_i"] == 0.5 and m["categories"]["covered"] == 2
