"""The shipped knowledge base: complete, sourced, no dangling concepts, right senses, working lookups."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from kanva.errors import KanvaError
from kanva.knowledge import load_kb, validate_kb
from kanva.knowledge.kb import default_kb_path
from kanva.world.coco import COCO_CATEGORIES

SOURCE = re.compile(r"^(curated|coco|[a-z0-9_.'-]+\.n\.\d\d)$")


@pytest.fixture(scope="module")
def kb():
    return load_kb()


@pytest.fixture()
def raw() -> dict:
    return json.loads(default_kb_path().read_text())


def test_all_80_categories_with_coco_ids(kb):
    assert kb.categories == [n for _, n, _ in COCO_CATEGORIES]
    for cid, name, sup in COCO_CATEGORIES:
        c = kb.concept(name)
        assert (c.coco_id, c.supercategory) == (cid, sup)
        assert c.gloss and c.hypernyms and c.places and c.parts and c.facts


def test_every_fact_has_a_source(kb):
    n = 0
    for name in kb.concept_names:
        for f in kb.facts(name):
            assert SOURCE.match(f.source), f
            assert f.source != "coco" or f.relation == "supercategory"
            n += 1
    assert n > 1500


def test_no_dangling_concepts(kb, raw):
    names = set(raw["categories"]) | set(raw["concepts"])
    for c in raw["categories"].values():
        assert set(c["hypernyms"]) <= names
    for c in raw["concepts"].values():
        assert c["hypernym"] is None or c["hypernym"] in names


def test_senses_chosen_by_hand(kb):
    assert kb.concept("hot dog").synset == "hotdog.n.02" and "bun" in kb.concept("hot dog").gloss
    assert kb.is_a("hot dog", "sandwich") and kb.is_a("hot dog", "food")
    assert kb.concept("mouse").synset == "mouse.n.04" and kb.is_a("mouse", "electronic device")
    assert not kb.is_a("mouse", "animal")
    assert kb.concept("cake").synset == "cake.n.03" and kb.is_a("cake", "baked goods")
    assert kb.concept("microwave").synset == "microwave.n.02" and kb.is_a("microwave", "kitchen appliance")
    assert kb.concept("kite").synset == "kite.n.03" and kb.is_a("kite", "plaything") and not kb.is_a("kite", "animal")
    for name in ("stop sign", "sports ball", "wine glass", "potted plant", "cell phone"):
        c = kb.concept(name)
        assert c.synset is None and c.sources["gloss"] == "curated" and c.sources["hypernyms"] == "curated"
    assert kb.hypernym_of("giraffe") == "ruminant" and kb.is_a("giraffe", "animal")
    assert kb.concept("giraffe").hypernyms[:3] == ("ruminant", "even-toed ungulate", "ungulate")


def test_facts_by_kind(kb):
    assert kb.concept("cow").facts["diet"] == "herbivore" and kb.concept("bear").facts["diet"] == "omnivore"
    assert kb.concept("bird").facts["legs"] == 2 and kb.concept("dog").facts["wild_or_domestic"] == "domestic"
    assert kb.concept("boat").facts["travels_on"] == "water" and kb.concept("airplane").facts["travels_on"] == "air"
    assert kb.concept("apple").facts["grows_on"] == "tree" and kb.concept("cake").facts["taste"] == "sweet"
    assert kb.concept("bed").facts["room"] == "bedroom"
    animals = [c for _, c, s in COCO_CATEGORIES if s == "animal"]
    assert {f.subject for f in kb.facts_of_kind("diet")} >= set(animals)
    assert {"diet", "legs", "wild_or_domestic", "travels_on", "food_group", "taste", "grows_on", "room"} <= set(kb.kinds())
    with pytest.raises(KanvaError, match="unknown fact kind"):
        kb.facts_of_kind("flavour of the month")


def test_lookups(kb):
    assert kb.categories_under("ruminant") == ["sheep", "cow", "giraffe"]
    assert set(kb.categories_under("equine")) == {"horse", "zebra"}
    assert "giraffe" in kb.siblings("cow") and "cow" not in kb.siblings("cow")
    assert kb.siblings("horse")[0] == "zebra"  # nearest hypernym first, then the supercategory
    assert kb.hypernym_of("giraffe", 99) is None
    facts = kb.facts("giraffe")
    assert any(f.relation == "is_a" and f.value == "ruminant" and f.source == "giraffe.n.01" for f in facts)
    assert any(f.relation == "found_in" and f.value == "savanna" and f.source == "curated" for f in facts)
    assert kb.concept("ruminant").coco_id is None and kb.is_a("ruminant", "mammal")
    with pytest.raises(KanvaError, match="did you mean 'giraffe'"):
        kb.concept("girafe")


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: d["categories"].pop("toaster"), "category 'toaster' missing"),
        (lambda d: d["categories"]["cow"]["hypernyms"].append("unicorn"), "'unicorn' is neither"),
        (lambda d: d["concepts"]["ruminant"].update(hypernym="dragon"), "'dragon' is neither"),
        (lambda d: d["categories"]["cow"]["sources"].pop("places"), "categories.cow.sources.places"),
        (lambda d: d["categories"]["cow"]["sources"].update(facts="my uncle"), "categories.cow.sources.facts"),
        (lambda d: d["categories"]["cow"].update(coco_id=99), "coco_id"),
        (lambda d: d["concepts"].update(orphan={"gloss": "x", "hypernym": None, "sources": {"gloss": "curated"}}), "unused"),
    ],
)
def test_validation_catches(raw, break_it, message):
    bad = copy.deepcopy(raw)
    break_it(bad)
    with pytest.raises(KanvaError, match=re.escape(message)):
        validate_kb(bad, "kb.json")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(KanvaError, match="no such"):
        load_kb(tmp_path / "missing.json")
    bad = tmp_path / "kb.json"
    bad.write_text("{not json")
    with pytest.raises(KanvaError, match="kb.json: invalid JSON"):
        load_kb(bad)


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(), reason="wordnet-base not installed")
def test_shipped_file_agrees_with_wordnet(tmp_path):
    pytest.importorskip("wordfreq")  # the familiarity measure's word lists
    from kanva.knowledge.build import main

    assert main(["--check"]) == 0
    edited = tmp_path / "kb.json"
    shutil.copy(default_kb_path(), edited)
    d = json.loads(edited.read_text())
    d["categories"]["giraffe"]["gloss"] = "a tall horse"
    edited.write_text(json.dumps(d))
    assert main(["--check", "--kb", str(edited)]) == 1


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(), reason="wordnet-base not installed")
@pytest.mark.parametrize("edit, clash", [
    # a category (of another sense) holds the name of dog's hypernym canine.n.02
    (lambda d: d["categories"].__setitem__("canine", {**d["categories"]["dog"], "synset": "canine.n.01"}),
     "canine.n.02 and category 'canine' (canine.n.01) both 'canine'"),
    # a curated category (no synset) holds it
    (lambda d: d["categories"].__setitem__("canine", {**d["categories"]["dog"], "synset": None}),
     "canine.n.02 and category 'canine' (curated, no synset) both 'canine'"),
    # two synsets given one name
    (lambda d: d["wordnet"]["names"].__setitem__("placental.n.01", "carnivore"),
     "placental.n.01 and carnivore.n.01 both 'carnivore'"),
])
def test_name_clash_names_both_holders(tmp_path, capsys, edit, clash):
    from kanva.knowledge.build import main

    d = json.loads(default_kb_path().read_text())
    edit(d)
    (tmp_path / "kb.json").write_text(json.dumps(d))
    assert main(["--check", "--kb", str(tmp_path / "kb.json")]) == 2
    assert f"error: WordNet names {clash}; give" in capsys.readouterr().err
