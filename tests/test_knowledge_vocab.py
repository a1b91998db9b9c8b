"""`kanva knowledge build --vocab`: a KB for any noun list (LVIS's 1,203 categories), curated facts kept, and
the familiarity measure that keeps hypernyms no reader would use out of every question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kanva.cli import main
from kanva.data.kbview import KBView
from kanva.errors import KanvaError
from kanva.knowledge import load_kb
from kanva.knowledge.vocabulary import read_vocab

WORDNET = Path("/usr/share/wordnet/data.noun").is_file()
needs_wordnet = pytest.mark.skipif(not WORDNET, reason="wordnet-base not installed")
LVIS = Path(__file__).resolve().parents[1] / "kanva/knowledge/vocab/lvis_v1.txt"


def test_vocabulary_file_errors_name_the_line(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("# comment\ndog\ncat/kitty\ndog\n")
    with pytest.raises(KanvaError, match=r"v.txt:4: 'dog' is also on line 2"):
        read_vocab(f)
    f.write_text("dog//puppy\n")
    with pytest.raises(KanvaError, match=r"v.txt:1: empty name"):
        read_vocab(f)
    f.write_text("bat/bat animal\nbow (weapon)\n")
    bat, bow = read_vocab(f)
    assert bat.qualifiers == {"animal"} and bow.forms == ("bow",) and bow.qualifiers == {"weapon"}
    assert len(read_vocab(LVIS)) == 1203


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory):
    pytest.importorskip("wordfreq")
    if not WORDNET:
        pytest.skip("wordnet-base not installed")
    d = tmp_path_factory.mktemp("kb")
    (d / "v.txt").write_text("dog\narmchair\nbatter/batter food\ngoldfish\nqqzx bucket\nzzxqv\n")
    assert main(["knowledge", "build", "--vocab", str(d / "v.txt"), "--out", str(d / "kb.json")]) == 0
    return load_kb(d / "kb.json")


def test_small_vocabulary_keeps_curated_facts_and_lists_what_wordnet_lacks(small_kb):
    kb = small_kb
    assert kb.categories == ["dog", "armchair", "batter", "goldfish", "qqzx bucket"]  # in the file's order
    assert kb.data["vocabulary"] == "v.txt" and kb.data["unresolved"] == ["zzxqv"]
    assert kb.concept("qqzx bucket").synset == "bucket.n.01"  # by its last word
    dog = kb.concept("dog")
    assert dog.facts["diet"] == "omnivore" and dog.sources["facts"] == "curated"  # curated facts kept
    assert kb.concept("batter").synset == "batter.n.02" and kb.is_a("batter", "food")  # the qualifier's sense
    arm = kb.concept("armchair")
    assert arm.synset == "armchair.n.01" and kb.is_a("armchair", "chair") and arm.supercategory == "furniture"
    assert kb.concept("goldfish").supercategory == "animal"


def test_unfamiliar_hypernyms_never_reach_the_operators(small_kb):
    kb = small_kb
    assert not kb.familiar("chordate") and not kb.familiar("placental") and kb.familiar("animal")
    view = KBView(kb, kb.categories)
    for ci in view.info.values():
        assert all(kb.familiar(h) for h in ci.hypernyms)
    assert "mammal" in view.get("dog").hypernyms and "chordate" not in view.get("dog").hypernyms


@needs_wordnet
def test_lvis_vocabulary_builds_a_valid_kb(tmp_path):
    pytest.importorskip("wordfreq")
    out = tmp_path / "lvis.json"
    assert main(["knowledge", "build", "--vocab", str(LVIS), "--out", str(out)]) == 0
    kb = load_kb(out)
    data = json.loads(out.read_text())
    assert len(kb.categories) + len(data["unresolved"]) == 1203
    assert len(kb.categories) >= 1190
    kept = [c for c in kb.categories if kb.concept(c).sources.get("facts") == "curated"]
    assert len(kept) >= 70  # the COCO categories LVIS shares keep their curated facts
    hyps = {h for c in kb.categories for h in kb.concept(c).hypernyms}
    unfamiliar = {h for h in hyps if not kb.familiar(h)}
    assert {"chordate", "placental"} <= unfamiliar and "animal" not in unfamiliar
