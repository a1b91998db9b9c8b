"""`kanva data seed`: rule seeds agree with the annotations, every type is made, align pairs an image with one of
its captions, excluded images are left out, prompts are versioned files whose hash reaches provenance; and the
whole CLI chain seed -> evolve -> report on a rendered knowledge world."""

from __future__ import annotations

import json
import re

import pytest

from kanva.cli import main
from kanva.data.coco import load_coco
from kanva.data.kbview import KBView
from kanva.data.llava import load_llava
from kanva.data.prompts import PROMPT_DIR, load_prompt, prompt_hashes
from kanva.data.seed import make_seeds
from kanva.data.synth import MiniKB, synth_coco, write_coco
from kanva.data.eliminate import wrong_counts
from kanva.data.unit import Unit
from kanva.data.vocab import mentions
from kanva.errors import KanvaError
from kanva.words import NUMBER_VALUES, plural


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("seedworld")
    inst, caps = synth_coco(30, seed=2)
    write_coco(root, "train", inst, caps, images=False)
    return load_coco(root, "train")


def test_rule_seeds_of_every_type_agree_with_annotations(coco):
    kb = KBView(MiniKB(), coco.category_names)
    samples, prov = make_seeds(coco, kb, ["conversation", "detail", "reasoning", "align"], seed=0, progress=False)
    kinds = {s["id"].split("-", 1)[1] for s in samples}
    assert kinds == {"conversation", "detail", "reasoning", "align"}
    assert all(r["status"] in ("kept", "skipped") for r in prov)
    for s in samples:
        rec = coco.lookup(s["image"])
        conv = s["conversations"]
        assert conv[0]["value"].startswith("<image>\n")
        for turn in conv[1::2]:  # every "There are N things" matches the annotation count
            for n_word, noun in re.findall(r"There are (\w+) ([a-z ]+?) in the image", turn["value"]):
                cat = next(c for c in rec.counts if plural(c) == noun)
                assert NUMBER_VALUES.get(n_word, n_word) in (rec.counts[cat], str(rec.counts[cat]))
        if s["id"].endswith("-align"):
            assert len(conv) == 2 and conv[1]["value"].rstrip(".") in [c.rstrip(".") for c in rec.captions]


def test_seeds_are_deterministic_and_exclude_images(coco):
    kb = KBView(MiniKB(), coco.category_names)
    a, _ = make_seeds(coco, kb, ["conversation"], seed=3, progress=False)
    b, _ = make_seeds(coco, kb, ["conversation"], seed=3, progress=False)
    c, _ = make_seeds(coco, kb, ["conversation"], seed=4, progress=False)
    assert a == b and a != c
    first = coco.images[1].key
    d, _ = make_seeds(coco, kb, ["conversation"], seed=3, exclude={first}, progress=False)
    assert first not in {s["image"] for s in d} and len(d) == len(a) - 1
    with pytest.raises(KanvaError, match="unknown type"):
        make_seeds(coco, kb, ["captions"], progress=False)


def test_prompts_are_versioned_files_with_hashes():
    hashes = prompt_hashes()
    assert {"seed_conversation.v1", "seed_detail.v1", "seed_reasoning.v1", "evolve_knowledge.v1",
            "evolve_paraphrase.v1", "judge.v1"} <= set(hashes)
    p = load_prompt("seed_conversation")
    assert p.version == 1 and len(p.hash) == 16 and (PROMPT_DIR / "seed_conversation.v1.txt").is_file()
    msgs = p.messages(objects="dog [0.1, 0.1, 0.5, 0.5]", captions="- a dog")
    assert msgs[0][0] == "system" and "dog [0.1, 0.1, 0.5, 0.5]" in msgs[1][1]
    with pytest.raises(KanvaError, match="no value for field"):
        p.messages(objects="x")


def test_cli_chain_on_a_rendered_world(tmp_path, capsys):
    # The real pipeline: knowledge world images + annotations, the shipped KB, seed -> evolve -> report.
    w = tmp_path / "world"
    assert main(["world", "generate", "--out", str(w), "--train", "12", "--seed", "1", "--workers", "1",
                 "--quiet"]) == 0
    assert main(["data", "seed", "--coco", str(w), "--split", "train", "--out", str(tmp_path / "seed.json"),
                 "--types", "conversation,detail,reasoning"]) == 0
    assert main(["data", "seed", "--coco", str(w), "--split", "train", "--out", str(tmp_path / "align.json"),
                 "--types", "align"]) == 0
    assert main(["data", "evolve", "--input", str(tmp_path / "seed.json"), "--coco", str(w), "--split", "train",
                 "--out", str(tmp_path / "ev"), "--rounds", "2", "--quiet"]) == 0
    assert main(["data", "report", str(tmp_path / "ev")]) == 0
    evolved = load_llava(tmp_path / "ev/evolved.json")
    for s in evolved:  # every image path resolves under the split folder
        assert (w / "train" / s["image"]).is_file()
    summary = json.loads((tmp_path / "ev/summary.json").read_text())
    assert summary["evolved"]["units"] > summary["seed"]["units"]
    assert summary["evolved"]["chair"]["chair_i"] == 0.0
    assert (tmp_path / "ev/report.md").is_file() and (tmp_path / "ev/report.html").is_file()
    prov = [json.loads(x) for x in (tmp_path / "seed.provenance.jsonl").read_text().splitlines()]
    assert prov and all(r["source"] == "rules" for r in prov)
    # The world's captions are true statements: the grounding checks must accept every one of them.
    coco = load_coco(w, "train")
    for rec in coco.images.values():
        for cap in rec.captions:
            unit = Unit("c", rec.file_name, rec.id, "Describe the picture.", cap, "open")
            assert not wrong_counts(unit, rec), cap
            assert all(m.category in rec.counts for m in mentions(cap) if not m.negated), cap
