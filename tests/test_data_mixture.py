"""A LLaVA-665K-style mixture evolves: annotated COCO images, images in no annotation file (grounded by their
answers, or not at all), text-only, multi-image and multi-turn samples; several --coco files; the report's
per-grounding counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kanva.cli import main
from kanva.data.image_sources import Lexicon
from kanva.data.llava import load_llava
from kanva.data.report import build_summary
from kanva.data.runner import run_evolve
from kanva.errors import KanvaError
from test_data_evolve import make_world


def turn(q: str, a: str, image: bool = True) -> list[dict]:
    return [{"from": "human", "value": ("<image>\n" if image else "") + q}, {"from": "gpt", "value": a}]


EXTRA = [
    {"id": "ocr-1", "image": "ocr_vqa/images/0439023483.jpg",
     "conversations": turn("Who wrote this book?", "Suzanne Collins") + turn("Is this a comedy book?", "No", False)},
    {"id": "gqa-1", "image": "gqa/images/2354786.jpg",
     "conversations": turn("What animal is on the grass?", "A dog; a bird sits on the fence.")},
    {"id": "vg-1", "image": "vg/VG_100K/2354786.jpg", "conversations": turn("What is on the table?", "A pizza.")},
    {"id": "tvqa-1", "image": "textvqa/train_images/0a0bc918.jpg",
     "conversations": turn("Is there a cat?", "There is no cat, only a sign.")},
    {"id": "text-1", "conversations": turn("What is the capital of France?", "Paris.", False)},
    {"id": "two-images", "image": ["a/1.jpg", "b/2.jpg"],
     "conversations": [{"from": "human", "value": "<image>\n<image>\nSame place?"}, {"from": "gpt", "value": "Yes."}]},
]


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    w, seed = make_world(root, 24)
    samples = json.loads(seed.read_text())
    first = samples[0]
    multi = {"id": "multi-coco", "image": first["image"],
             "conversations": first["conversations"] + turn("Anything else?", "Not really.", False)}
    path = root / "mix.json"
    path.write_text(json.dumps(samples + [multi] + EXTRA))
    return w, path


def prov(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "provenance.jsonl").read_text().splitlines()]


def test_mixture_evolves_with_a_grounding_per_image(mix, tmp_path):
    w, path = mix
    out = run_evolve(path, w, "train", tmp_path / "o", seed=0, progress=False)
    evolved = load_llava(out)
    records = prov(tmp_path / "o")
    inputs = {r["id"]: r for r in records if r.get("stage") == "input"}
    assert inputs["ocr-1"]["grounding"] == "none" and inputs["tvqa-1"]["grounding"] == "none"  # "no cat" names none
    assert inputs["gqa-1"]["grounding"] == inputs["vg-1"]["grounding"] == "text-grounded"
    assert inputs["gqa-1"]["image_id"] == inputs["vg-1"]["image_id"]  # one image: GQA and VG share base names
    assert inputs["multi-coco"]["grounding"] == "coco" and len(inputs["multi-coco"]["units"]) >= 2
    assert inputs["text-1"]["status"] == inputs["two-images"]["status"] == "passthrough"
    # every input sample is in the output unchanged
    by_id = {str(s["id"]): s for s in evolved}
    for s in json.loads(path.read_text()):
        assert by_id[str(s["id"])] == s
    # text-grounded and ungrounded images draw only operators that need no more than they have
    ids = {inputs[k]["image_id"]: inputs[k]["grounding"] for k in ("gqa-1", "ocr-1", "tvqa-1")}
    cands = [r for r in records if r.get("round") and r["image_id"] in ids]
    assert cands and {r["operator"] for r in cands} == {"knowledge"}
    assert all(ids[r["image_id"]] == "text-grounded" and r["answer"] == "Yes" for r in cands)
    assert all(set(r["objects"]) <= {"dog", "bird", "pizza"} for r in cands)
    # the report counts samples per grounding
    g = build_summary(tmp_path / "o")["provenance"]["grounding"]
    assert g["text-grounded"]["samples"] == 2 and g["none"]["samples"] == 2 and g["(passthrough)"]["samples"] == 2
    assert g["coco"]["samples"] == len(json.loads(path.read_text())) - len(EXTRA)
    assert g["text-grounded"]["candidates"] == len(cands)
    assert sum(c["kept"] for c in g.values()) == build_summary(tmp_path / "o")["provenance"]["kept"]


def test_rule_only_mixture_is_byte_identical_and_file_specs_equal_the_root(mix, tmp_path):
    w, path = mix
    a = run_evolve(path, w, "train", tmp_path / "a", seed=5, progress=False)
    b = run_evolve(path, [w / "annotations" / "instances_train.json"], None, tmp_path / "b", seed=5, progress=False)
    assert a.read_bytes() == b.read_bytes()
    # the annotations split over two files (categories listed in both) give the same output
    inst = json.loads((w / "annotations/instances_train.json").read_text())
    caps = json.loads((w / "annotations/captions_train.json").read_text())
    files = []
    for part, keep in (("p0", lambda i: i % 2 == 0), ("p1", lambda i: i % 2 == 1)):
        ids = {im["id"] for im in inst["images"] if keep(im["id"])}
        d = tmp_path / part / "annotations"
        d.mkdir(parents=True)
        sub = dict(inst, images=[im for im in inst["images"] if im["id"] in ids],
                   annotations=[x for x in inst["annotations"] if x["image_id"] in ids])
        (d / f"instances_{part}.json").write_text(json.dumps(sub))
        (d / f"captions_{part}.json").write_text(json.dumps(dict(caps, annotations=[
            x for x in caps["annotations"] if x["image_id"] in ids])))
        files.append(d / f"instances_{part}.json")
    c = run_evolve(path, files, None, tmp_path / "c", seed=5, progress=False)
    assert a.read_bytes() == c.read_bytes()
    # the same image id in two files is an error naming both
    with pytest.raises(KanvaError, match=r"image id \d+ .* is also in .*instances_p0.json"):
        run_evolve(path, [files[0], files[0]], None, tmp_path / "d", progress=False)


def test_cli_takes_several_coco_files_or_none(mix, tmp_path, capsys):
    w, path = mix
    assert main(["data", "evolve", "--input", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    records = prov(tmp_path / "o")
    assert {r["grounding"] for r in records if r.get("stage") == "input" and "grounding" in r} == {
        "text-grounded", "none"}
    assert main(["data", "evolve", "--input", str(path), "--coco", str(w), "--out", str(tmp_path / "p")]) == 2
    assert "needs --split" in capsys.readouterr().err
    assert main(["data", "evolve", "--input", str(path), "--coco", str(tmp_path / "nope.json"), "--out",
                 str(tmp_path / "p")]) == 2
    assert "nope.json: no such file or directory" in capsys.readouterr().err


def test_lexicon_finds_named_categories_not_negated_ones():
    lex = Lexicon(["dog", "cat", "aerosol can", "goose", "can", "top"])
    assert lex.named("Two dogs and no cat.") == {"dog"}
    assert lex.named("The aerosol cans are on the shelf.") == {"aerosol can"}
    assert lex.named("I can see it on top of the shelf.") == set()  # everyday words, not nouns here
    assert lex.named("There is a can and two tops.") == {"can", "top"}
    assert lex.named("There isn't any aerosol can here.") == set()
    assert lex.named("A sign that says \"dog\".") == set()  # printed words are not objects
