"""Rule operators are correct against the annotations and the KB: every variant of every operator is run on
synthetic world-like images with many RNG draws, and each answer is recomputed independently here."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from kanva.data.coco import load_coco
from kanva.data.config import EvolveConfig
from kanva.data.eliminate import check
from kanva.data.kbview import KBView
from kanva.data.ops import rule_operators
from kanva.data.ops.base import Context
from kanva.data.ops.geometry import RELATIONS, relations
from kanva.data.synth import MiniKB, synth_coco, write_coco
from kanva.data.unit import LETTERS, Unit
from kanva.data.vocab import mentioned, mentions
from kanva.knowledge.properties import index_from_view
from kanva.words import NUMBER_WORDS, number_word, with_article

DRAWS = 6


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("opsworld")
    inst, caps = synth_coco(80, seed=11)
    write_coco(root, "train", inst, caps, images=False)
    return load_coco(root, "train")


@pytest.fixture(scope="module")
def kb(coco):
    return KBView(MiniKB(), coco.category_names)


def _parent(rec, objects=()):
    return Unit(f"{rec.id}-seed#0", rec.file_name, rec.id, "What is in this picture?", "Some things.", "open",
                lineage=f"{rec.id}-seed#0", objects=list(objects))


def run_op(coco, kb, name, cfg=None, parent_of=None):
    """(ctx, template, drafts) for every image, variant and draw of operator `name`."""
    cfg = cfg or EvolveConfig()
    op = next(o for o in rule_operators() if o.name == name)
    popular = coco.popular()
    out = []
    for rec in coco.images.values():
        ctx = Context(rec, coco, kb, cfg, popular)
        parent = parent_of(rec) if parent_of else _parent(rec)
        for _, fn in op.options(ctx, parent):
            for k in range(DRAWS):
                drafts = fn(ctx, parent, random.Random(k * 7919 + rec.id))
                if drafts:
                    out.append((ctx, drafts))
    assert out, f"operator {name} never applied"
    return out


def _unit(ctx, d):
    return Unit("u", ctx.rec.file_name, ctx.rec.id, d.question, d.answer, d.fmt, d.options, template=d.template,
                objects=d.objects, absent=d.absent, slots=d.slots, facts=d.facts, params=d.params)


@pytest.mark.parametrize("name", ["count", "exist", "position", "size", "choice", "knowledge", "multihop", "premise",
                                  "ocr", "color"])
def test_every_rule_draft_passes_elimination(coco, kb, name):
    # Rule answers are correct by construction, so elimination must not find fault with them.
    bad = []
    for ctx, drafts in run_op(coco, kb, name):
        for d in drafts:
            reason = check(_unit(ctx, d), ctx.rec, None)
            if reason:
                bad.append((reason, d.template, d.question, d.options, d.answer))
    assert not bad, bad[:5]


def test_counting_answers_equal_annotation_counts(coco, kb):
    seen = Counter()
    for ctx, (d,) in run_op(coco, kb, "count"):
        seen[d.template] += 1
        if d.template == "count":
            (cat,) = d.objects
            assert d.answer == str(sum(o.category == cat for o in ctx.rec.objects))
            assert all(o.visible is None or o.visible >= 0.3 for o in ctx.rec.objects if o.category == cat)
        elif d.template == "count.yesno":  # "Are there three dogs?" is yes exactly for the annotated count
            (cat,) = d.objects
            n = sum(o.category == cat for o in ctx.rec.objects)
            assert d.answer == ("Yes" if d.slots["asked"] == n else "No")
            assert d.slots["asked"] >= 1
            word = "one" if d.slots["asked"] == 1 else NUMBER_WORDS[d.slots["asked"]]
            assert f" {word} " in d.question
        else:  # zero: a truly absent object, which no caption mentions
            (cat,) = d.absent
            assert d.answer == "0" and cat not in ctx.rec.counts and cat not in ctx.rec.caption_mentions
    assert seen["count"] and seen["count.zero"] and seen["count.yesno"]
    answers = Counter(d.answer for ctx, (d,) in run_op(coco, kb, "count") if d.template == "count.yesno")
    assert answers["Yes"] and answers["No"]


def test_existence_pairs_yes_present_no_absent_and_not_in_captions(coco, kb):
    strategies = Counter()
    popular = coco.popular()
    for ctx, (yes, no) in run_op(coco, kb, "exist"):
        assert (yes.answer, no.answer) == ("Yes", "No")
        assert yes.objects[0] in ctx.rec.counts
        absent = no.absent[0]
        assert absent not in ctx.rec.counts
        assert all(absent not in mentioned(c) for c in ctx.rec.captions)
        strategy = no.params["strategy"]
        strategies[strategy] += 1
        pool = [c for c in popular if c not in ctx.rec.counts and c not in ctx.rec.caption_mentions
                and c not in ctx.text_mentions]
        if strategy == "popular":
            assert absent in pool[:3]
        if strategy == "adversarial":  # co-occurs in the dataset with something present
            assert any(ctx.coco.cooccur.get(p, {}).get(absent) for p in ctx.rec.counts)
        # same wording for both questions: the wording carries no hint
        assert yes.question.replace(with_article(yes.objects[0]), "{x}") == no.question.replace(
            with_article(absent), "{x}")
    assert set(strategies) == {"random", "popular", "adversarial"}


def test_position_yes_no_and_which_follow_the_boxes(coco, kb):
    answers = Counter()
    for ctx, (d,) in run_op(coco, kb, "position"):
        a, b = (ctx.singles[c] for c in d.objects)
        rels = relations(a, b)
        if d.template == "position.yesno":
            asked = d.slots["relation"]
            truth = asked in rels
            assert d.answer == ("Yes" if truth else "No")
            if not truth:  # a clean "no": the opposite relation holds
                assert RELATIONS[asked] in rels
            answers[d.answer] += 1
        elif d.template == "position.which":
            assert d.answer == a.category and rels
    assert answers["Yes"] and answers["No"]


def test_size_compares_areas_with_a_clear_ratio(coco, kb):
    for ctx, (d,) in run_op(coco, kb, "size"):
        big, small = (ctx.singles[c] for c in d.objects)
        assert big.area >= 2.0 * small.area
        if d.template == "size.which":
            assert d.answer == (big.category if "larger" in d.question or "more" in d.question else small.category)
        else:
            assert d.answer == ("Yes" if d.slots["a"] == big.category else "No")


def test_multiple_choice_is_well_formed_and_grounded(coco, kb):
    for ctx, drafts in run_op(coco, kb, "choice"):
        for d in drafts:
            assert len(d.options) == 4 and len(set(d.options)) == 4 and d.answer in LETTERS
            correct = d.options[LETTERS.index(d.answer)]
            wrong = [o for i, o in enumerate(d.options) if i != LETTERS.index(d.answer)]
            if d.template == "choice.present":
                assert correct in ctx.rec.counts
                assert not any(w in ctx.rec.counts or w in ctx.rec.caption_mentions for w in wrong)
            elif d.template == "choice.absent":
                assert correct not in ctx.rec.counts and all(w in ctx.rec.counts for w in wrong)
            elif d.template == "choice.region":
                from kanva.data.ops.geometry import region

                assert correct == region(ctx.singles[d.objects[0]], ctx.rec)


def test_distractors_prefer_absent_kb_siblings(coco, kb):
    hits = total = 0
    for ctx, (d,) in run_op(coco, kb, "choice"):
        if d.template != "choice.present":
            continue
        correct = d.options[LETTERS.index(d.answer)]
        siblings = [c for c in kb.siblings(correct) if c in ctx.absent_pool]
        wrong = [o for o in d.options if o != correct]
        total += 1
        # when three absent siblings exist, all distractors are siblings
        if len(siblings) >= 3:
            assert set(wrong) <= set(siblings)
            hits += 1
    assert total and hits


def test_answer_letter_is_uniform_over_many_draws(coco, kb):
    letters = Counter()
    for _, drafts in run_op(coco, kb, "choice"):
        letters.update(d.answer for d in drafts)
    n = sum(letters.values())
    assert n > 1000
    for letter in LETTERS:  # each within 20% of n/4 (binomial sd at n=1000 is about 5%)
        assert abs(letters[letter] - n / 4) < 0.2 * n / 4, letters


def test_circular_mode_emits_every_rotation(coco, kb):
    cfg = EvolveConfig()
    cfg.mc_circular = True
    for ctx, drafts in run_op(coco, kb, "choice", cfg=cfg)[:50]:
        assert len(drafts) == 4
        assert sorted(d.answer for d in drafts) == list(LETTERS)
        assert len({tuple(sorted(d.options)) for d in drafts}) == 1
        assert [d.params["rotation"] for d in drafts] == [0, 1, 2, 3]


def test_recast_keeps_the_parents_answer(coco, kb):
    def count_parent(rec):
        cats = sorted(rec.counts)
        cat = cats[0]
        return Unit(f"{rec.id}-p", rec.file_name, rec.id, f"How many {cat}s are there?", str(rec.counts[cat]),
                    "short", lineage="l", objects=[cat], template="count", params={"wrong": ["7", "8", "9", "10"]})

    got = 0
    for ctx, (d,) in run_op(coco, kb, "choice", parent_of=count_parent):
        if d.template == "choice.recast":
            assert d.options[LETTERS.index(d.answer)] == str(ctx.rec.counts[d.objects[0]])
            got += 1
    assert got
    # count_option_words: that share of count recasts spell every option as a word, the right one the count's
    spelled = Counter()
    for ctx, (d,) in run_op(coco, kb, "choice", parent_of=count_parent, cfg=EvolveConfig(count_option_words=0.5)):
        if d.template == "choice.recast":
            words = not any(o.isdigit() for o in d.options)
            assert words or all(o.isdigit() for o in d.options)
            right = number_word(ctx.rec.counts[d.objects[0]]) if words else str(ctx.rec.counts[d.objects[0]])
            assert d.options[LETTERS.index(d.answer)] == right
            spelled[words] += 1
    assert spelled[True] and spelled[False], spelled
    assert EvolveConfig(count_option_words=0.0).digest() == EvolveConfig().digest()


def test_knowledge_answers_follow_the_kb(coco, kb):
    seen = Counter()
    for ctx, drafts in run_op(coco, kb, "knowledge"):
        for d in drafts:
            seen[d.template] += 1
            if d.template == "knowledge.exists":
                seen[d.answer] += 1
                check_property_claim(ctx, kb, d)
                continue
            cat = d.objects[0]
            assert cat in ctx.rec.counts and d.facts
            assert all(f[0] == cat for f in d.facts)
            if d.template == "knowledge.kind":
                h = d.slots["kind"]
                assert d.answer == cat and kb.is_a(cat, h)
                assert not any(kb.is_a(c, h) for c in ctx.rec.counts if c != cat)  # one answer only
            elif d.template == "knowledge.isa":
                assert d.answer == ("Yes" if kb.is_a(cat, d.slots["kind"]) else "No")
            elif d.template == "knowledge.use":
                assert d.answer in kb.get(cat).uses
            elif d.template == "knowledge.place":
                assert d.answer in kb.get(cat).places
            elif d.template == "knowledge.part":
                assert d.options[LETTERS.index(d.answer)] in kb.get(cat).parts
                assert sum(o in kb.get(cat).parts for o in d.options) == 1
            elif d.template == "knowledge.fact":
                assert (d.slots["kind"], d.answer) in kb.get(cat).kinds
            if "ref" in d.params:  # the object is pointed at, never named
                assert cat not in mentioned(d.question)
    assert {"knowledge.kind", "knowledge.isa", "knowledge.use", "knowledge.part", "knowledge.exists"} <= set(seen)
    assert seen["Yes"] and seen["No"], seen


def test_knowledge_facts_first_draws_facts_over_hypernyms(coco, kb):
    """With `knowledge_facts_first`, "is there ... in the image?" names a KB fact whenever one applies: the answers
    stay true, and a hypernym ("any ...") appears only for an image and answer where no fact could."""
    def phrases(cfg):
        out = []
        for ctx, drafts in run_op(coco, kb, "knowledge", cfg=cfg):
            for d in drafts:
                if d.template == "knowledge.exists":
                    check_property_claim(ctx, kb, d)
                    out.append((ctx, d))
        return out

    plain, first = phrases(EvolveConfig()), phrases(EvolveConfig(knowledge_facts_first=True))
    share = [sum(not d.slots["property"].startswith("any ") for _, d in got) / len(got) for got in (plain, first)]
    assert share[1] > share[0] + 0.2, share
    kx = index_from_view(kb, coco.category_names)
    for ctx, d in first:
        if d.slots["property"].startswith("any "):
            pool = (kx.shown_by({o.category for o in ctx.usable}) if d.answer == "Yes"
                    else kx.surely_absent(set(ctx.rec.counts)))
            assert not [p for p in pool if p.kind is not None], d.slots["property"]


def check_property_claim(ctx, kb, d):
    """'Is there <property> in the image?' is yes iff a present object has the property, recomputed from the
    KB view directly (hypernym membership, or the fact phrase's (kind, value))."""
    from kanva.knowledge.properties import FACT_PHRASES

    phrase = d.slots["property"]
    if phrase.startswith("any "):
        has = [c for c in ctx.rec.counts if kb.is_a(c, phrase[4:])]
    else:
        (kind, value), = [k for k, (_, p) in FACT_PHRASES.items() if p == phrase]
        domain = FACT_PHRASES[(kind, value)][0]
        has = [c for c in ctx.rec.counts if c in kb and (kind, value) in kb.get(c).kinds]
        if d.answer == "No":  # certain: every present object of the domain records the kind
            assert all(kind in dict(kb.get(c).kinds) for c in ctx.rec.counts
                       if c in kb and kb.get(c).supercategory == domain)
    assert d.answer == ("Yes" if has else "No"), (phrase, sorted(ctx.rec.counts))
    if d.answer == "Yes":
        assert d.objects[0] in has and d.facts


def test_multihop_chains_and_kind_counts(coco, kb):
    seen = Counter()
    for ctx, (d,) in run_op(coco, kb, "multihop"):
        seen[d.template] += 1
        if d.template == "multihop.count":
            h = d.slots["kind"]
            expected = sum(n for c, n in ctx.rec.counts.items() if kb.is_a(c, h))
            assert d.answer == str(expected)
        else:
            target, anchor = d.objects
            rel = d.slots["relation"]
            a, b = ctx.singles[target], ctx.singles[anchor]
            assert rel in relations(a, b)
            others = [o for o in ctx.usable if o is not a and o is not b and rel in relations(o, b)]
            assert not others  # the target is the only object in that relation: one answer
            if d.template == "multihop.use":
                assert d.answer == kb.get(target).uses[0]
            if d.template == "multihop.isa":
                assert d.answer == ("Yes" if kb.is_a(target, d.slots["kind"]) else "No")
            assert target not in mentioned(d.question)
    assert len(seen) >= 3, seen


def test_false_premise_objects_are_absent_and_answers_reject_them(coco, kb):
    for ctx, (d,) in run_op(coco, kb, "premise"):
        (x,) = d.absent
        assert x not in ctx.rec.counts and x not in ctx.rec.caption_mentions
        assert any(m.category == x for m in mentions(d.question))
        assert all(m.negated for m in mentions(d.answer) if m.category == x)  # the answer denies it


def test_ocr_reads_printed_words(coco, kb):
    for ctx, (d,) in run_op(coco, kb, "ocr"):
        texts = [t.text for t in ctx.rec.texts]
        if d.template in ("ocr.read", "ocr.region"):
            assert d.answer in texts
        else:
            assert d.answer == ("Yes" if d.slots["word"] in texts else "No")


def test_colour_answers_are_recorded_colours(coco, kb):
    for ctx, (d,) in run_op(coco, kb, "color"):
        color = ctx.singles[d.objects[0]].color
        if d.template == "color.what":
            assert d.answer == color
        else:
            assert d.answer == ("Yes" if d.slots["color"] == color else "No")
            assert d.slots["color"] in d.question


def test_hard_false_claims_name_another_objects_value(coco, kb):
    # At share 1 a false count or colour claim names what another object of the image has (else, for a count,
    # one off); the answers stay those of the annotation, and far numbers ("five" for one dog) are gone.
    hard = EvolveConfig(hard_false_claims=1.0)
    seen = Counter()
    for ctx, (d,) in run_op(coco, kb, "count", cfg=hard):
        if d.template != "count.yesno" or d.answer == "Yes":
            continue
        (cat,) = d.objects
        n, asked = ctx.rec.counts[cat], d.slots["asked"]
        held = {m for c, m in ctx.rec.counts.items() if c != cat and m != n}
        assert asked != n and (asked in held if held else abs(asked - n) == 1)
        seen["count held" if held else "count one off"] += 1
    for ctx, (d,) in run_op(coco, kb, "color", cfg=hard):
        if d.template != "color.yesno" or d.answer == "Yes":
            continue
        color = ctx.singles[d.objects[0]].color
        held = {o.color for o in ctx.rec.objects if o.color and o.color != color}
        assert d.slots["color"] != color and (d.slots["color"] in held if held else True)
        seen["colour held"] += bool(held)
    assert seen["count held"] and seen["count one off"] and seen["colour held"], seen
    # share 0 (the default) draws exactly as before: the same questions as a config without the setting
    plain = [(ctx.rec.id, d.question) for ctx, ds in run_op(coco, kb, "count") for d in ds]
    zero = [(ctx.rec.id, d.question) for ctx, ds in run_op(coco, kb, "count", cfg=EvolveConfig(hard_false_claims=0.0))
            for d in ds]
    assert plain == zero and EvolveConfig(hard_false_claims=0.0).digest() == EvolveConfig().digest()
    assert EvolveConfig(hard_false_claims=0.5).digest() != EvolveConfig().digest()


def test_real_kb_knowledge_is_consistent(coco):
    pytest.importorskip("kanva.knowledge")
    from kanva.knowledge import load_kb

    real = load_kb()
    view = KBView(real, coco.category_names)
    n = 0
    for ctx, drafts in run_op(coco, view, "knowledge") + run_op(coco, view, "multihop"):
        for d in drafts:
            if d.template in ("knowledge.kind",):
                assert real.is_a(d.answer, d.slots["kind"])
            if d.template in ("knowledge.isa", "multihop.isa"):
                assert d.answer == ("Yes" if real.is_a(d.objects[0], d.slots["kind"]) else "No")
            if d.template == "multihop.count":
                under = set(real.categories_under(d.slots["kind"]))
                assert d.answer == str(sum(c_n for c, c_n in ctx.rec.counts.items() if c in under))
            assert not check(_unit(ctx, d), ctx.rec, None), d
            n += 1
    assert n > 100
