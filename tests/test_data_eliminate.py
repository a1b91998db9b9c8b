"""Elimination: every reason code on a unit made to trigger it (and a near miss that must pass), object
mentions through the synonym table, MinHash accuracy, and dedup inside the evolution loop."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from kanva.data.coco import ImageRec, Obj, Text
from kanva.data.eliminate import REASONS, LLMTrace, check, is_echo
from kanva.data.minhash import MinHasher, NearDupSet, near_duplicate_flags
from kanva.data.prompts import load_prompt, parse_fields
from kanva.data.text import jaccard, shingles, words
from kanva.data.unit import Unit
from kanva.data.vocab import mentions
from kanva.words import plural


@pytest.fixture
def rec():
    r = ImageRec(7, "000007.png", 640, 480,
                 objects=[Obj("dog", (10, 10, 100, 80), 8000), Obj("dog", (300, 20, 90, 70), 6000),
                          Obj("frisbee", (200, 300, 40, 20), 800)],
                 captions=["Two dogs play with a frisbee near a bench."], texts=[Text("TAXI", (500, 10, 60, 20))])
    r.counts = {"dog": 2, "frisbee": 1}
    r.caption_mentions = frozenset({"dog", "frisbee", "bench"})
    return r


def u(q, a, fmt="open", options=(), **kw):
    return Unit("x", "000007.png", 7, q, a, fmt, list(options), **kw)


PARENT = u("What animals are in the picture?", "There are two dogs in the picture.")


def test_a_grounded_unit_passes(rec):
    assert check(u("What are the dogs doing with the frisbee?", "The two dogs are chasing the frisbee."), rec,
                 PARENT) is None


@pytest.mark.parametrize("q,a,reason", [
    ("Where is the dog?", "I'm sorry, but I cannot see the image.", "refusal"),
    ("Where is the dog?", "As an AI, I can't tell.", "refusal"),
    ("According to the captions, where is the dog?", "On the left.", "leak"),
    ("Where is the dog?", "Its bounding box is on the left.", "leak"),
    ("Where is the dog?", "Answer: on the left", "leak"),
    ("Where is the dog?", "On the left, as the information above says.", "leak"),
    ("Dog?", "Left.", "degenerate"),
    ("Where is the dog?", "left left left left left left left left left left left left left left left", "degenerate"),
    ("Where is the dog?", "#### !!!! ???? ####", "degenerate"),
    ("Where is the dog?", "It is at [0.9, 0.9, 0.95, 0.99].", "bad_box"),
    ("What is the cat doing?", "The cat is sleeping next to the dogs.", "hallucination"),
    ("What is near the dogs?", "A puppy and a kitten.", "hallucination"),  # kitten -> cat, via synonyms
    ("How many animals are there?", "There are three dogs in the picture.", "wrong_count"),
    ("What is the dog in the picture used for?", "companionship", "blind"),
    ("What color is the red frisbee?", "red", "blind"),
])
def test_reason_codes(rec, q, a, reason):
    facts = [["dog", "used_for", "companionship", "kb"]] if "used for" in q else []
    assert check(u(q, a, facts=facts), rec, PARENT) == reason


def test_near_misses_pass(rec):
    ok = [
        ("Is there a cat in the image?", "No, there is no cat in the image.", ["cat"]),  # negated, declared absent
        ("What does the sign say?", 'It says "TAXI".', []),  # printed word, not a car
        ("Where is the bench?", "The bench is behind the dogs.", []),  # captions mention it
        ("What color is the orange frisbee?", "The frisbee looks orange with a white rim.", []),  # colour use
        ("Where is the dog on the left?", "It is at [0.016, 0.021, 0.172, 0.188].", []),  # a real box
        ("Which is further left, the dog or the frisbee?", "dog", []),  # alternatives offered: not blind
    ]
    for q, a, absent in ok:
        assert check(u(q, a, absent=absent), rec, PARENT) is None, (q, a)


def test_counts_claims_versus_subsets(rec):
    rec.counts["dog"] = 3
    for a, bad in (("There are two dogs in the picture.", True),  # a total claim, too few
                   ("Only one dog is running.", True),
                   ("Four dogs run.", True),  # more than annotated is always wrong
                   ("Two dogs are brown and one is white.", False),  # a subset
                   ("Two brown dogs chase the frisbee.", False),
                   ("There are three dogs.", False)):
        assert (check(u("What are the dogs doing?", a), rec, None) == "wrong_count") is bad, a


def test_a_yes_no_question_asks_a_number_and_only_the_answer_claims(rec):
    # rec has two dogs: "Are there three dogs?" - "No" is right, "Yes" claims three
    assert check(u("Are there three dogs in the image?", "No", "yesno"), rec, None) is None
    assert check(u("Is there only one dog in the image?", "No", "yesno"), rec, None) is None
    assert check(u("Are there three dogs in the image?", "Yes", "yesno"), rec, None) == "wrong_count"
    assert check(u("Are there two dogs in the image?", "Yes", "yesno"), rec, None) is None


def test_no_gain_against_the_parent(rec):
    same = u("What animals are in this picture?", "There are two dogs in the picture.")
    assert check(same, rec, PARENT) == "no_gain"
    assert check(same, rec, PARENT, no_gain_jaccard=0.99) is None


def test_malformed_multiple_choice(rec):
    good = u("Which object is in the image?", "B", "mc", ["cat", "dog", "bird", "horse"], absent=["cat", "bird",
                                                                                                  "horse"])
    assert check(good, rec, None) is None
    for bad in (u("Which object is in the image?", "E", "mc", ["cat", "dog", "bird", "horse"]),
                u("Which object is in the image?", "B", "mc", ["cat", "dog", "dog", "horse"]),
                u("Which object is in the image?", "A", "mc", ["dog", "cat", "bird"])):
        bad.absent = ["cat", "bird", "horse"]
        assert check(bad, rec, None) == "malformed_mc"


def test_only_the_correct_option_is_a_claim(rec):
    # distractors name absent objects by design; the correct option naming one is a hallucination
    assert check(u("Which object is in the image?", "B", "mc", ["cat", "dog", "bird", "horse"]), rec, None) is None
    assert check(u("Which object is in the image?", "A", "mc", ["cat", "dog", "bird", "horse"]), rec,
                 None) == "hallucination"


def test_slot_lost_only_for_paraphrases(rec):
    parent = u("How many dogs are there in the image?", "2", "short", slots={"object": "dogs"})
    child = u("How many animals can be seen in the picture?", "2", "short")
    assert check(child, rec, parent, paraphrase=True) == "slot_lost"
    assert check(u("Count the dogs you can see in the picture.", "2", "short"), rec, parent, paraphrase=True) is None


def test_echo_of_the_prompt(rec):
    prompt = load_prompt("evolve_deepen")
    msgs = prompt.messages(objects="two dogs", question="Q?", answer="A.", method="adds a condition")
    full = "\n".join(c for _, c in msgs)
    trace = LLMTrace(prompt.static_text(), full, full)
    assert is_echo(full, trace)
    reply = "Question: Which dog is closer to the frisbee?\nAnswer: The one on the left."
    assert not is_echo(reply, LLMTrace(prompt.static_text(), full, reply))
    assert check(u("Which dog is closer?", "The left one."), rec, None, trace) == "echo"


def test_every_reason_code_is_documented():
    # docs/data.md's table of reason codes (and the `group` rule above it) names every code the code can write.
    section = (Path(__file__).parents[1] / "docs" / "data.md").read_text().split("## Elimination", 1)[1]
    documented = set(re.findall(r"`([a-z_]+)`", section.split("\n## ", 1)[0]))
    assert set(REASONS) <= documented, sorted(set(REASONS) - documented)


def test_parse_fields():
    f = parse_fields("Sure!\n**Question:** Where is it?\nAnswer: On the\nleft side.\nQuestion: again?", ("Question",
                                                                                                   "Answer"))
    assert f == {"Question": "Where is it?", "Answer": "On the left side."}
    assert parse_fields("Question: only", ("Question", "Answer")) is None


# -- vocabulary -------------------------------------------------------------------------------------------------
def test_mentions_longest_match_synonyms_and_negation():
    ms = mentions("A teddy bear, a hot dog and no giraffe; two puppies near the TV.")
    assert [(m.category, m.negated) for m in ms] == [("teddy bear", False), ("hot dog", False), ("giraffe", True),
                                                      ("dog", False), ("tv", False)]
    assert [m.category for m in mentions("an orange car and a remote village")] == ["car"]
    assert [m.category for m in mentions("she ate an orange")] == ["orange"]
    assert plural("person") == "people" and plural("bus") == "buses" and plural("knife") == "knives"
    assert plural("wine glass") == "wine glasses" and plural("sheep") == "sheep"
    assert plural("giraffe") == "giraffes"


# -- MinHash ---------------------------------------------------------------------------------------------------
def test_minhash_estimates_jaccard():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(60)]
    h = MinHasher(256)
    errors = []
    for _ in range(40):
        a = " ".join(rng.choice(vocab) for _ in range(40))
        toks = a.split()
        b = " ".join(t if rng.random() < 0.8 else rng.choice(vocab) for t in toks)
        true = jaccard(shingles(words(a)), shingles(words(b)))
        errors.append(abs(h.similarity(h.signature(a), h.signature(b)) - true))
    assert np.mean(errors) < 0.04 and max(errors) < 0.15
    assert h.similarity(h.signature("same text here"), h.signature("Same text, here!")) == 1.0


def test_near_duplicate_set_and_lsh_flags():
    h = MinHasher(128)
    s = NearDupSet(h, 0.8)
    base = "Which object in the image is a kind of ruminant that lives on the savanna and eats leaves"
    s.add("a", h.signature(base))
    assert s.match(h.signature(base + " today")) == "a"  # one 3-gram more: Jaccard ~0.93
    assert s.match(h.signature("How many dogs are there in the image")) is None
    flags = near_duplicate_flags([base, base + " today", "How many dogs are there", base], ["i1", "i1", "i1", "i2"])
    assert flags == [False, True, False, False]  # the same text for another image is not a duplicate
