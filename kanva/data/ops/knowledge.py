"""Knowledge questions: one visual fact (which object is there, or which one a phrase points at) plus one fact
from the knowledge base ("Which object here is a kind of mammal?", "What is the object on the far left used
for?", "Is the animal in the picture a kind of herbivore?").

Answers come from the KB, and each unit records the facts it used (with their sources) for provenance and
the report's knowledge-use share. Every variant leaves the object unnamed or asks which object it is, so the
question cannot be answered from the KB alone.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.choice import make_mc
from kanva.data.ops.kinds import CLAIMS, YES_NO, open_question, yes_no_question
from kanva.data.ops.refs import hypernyms, references
from kanva.data.text import words
from kanva.data.unit import Unit
from kanva.knowledge.properties import index_from_view
from kanva.words import with_article

# "a kind of X", never "an X": many hypernyms are mass nouns ("furniture", "baggage", "produce").
KIND = ("Which object in the image is a kind of {h}?", "Which of the objects here is a type of {h}?",
        "What in this picture is a type of {h}?", "Which thing in the photo counts as a kind of {h}?",
        "Name the object in this image that is a kind of {h}.")
ISA = ("Is {ref} a kind of {h}?", "Is {ref} a type of {h}?", "Would you call {ref} a kind of {h}?",
       "Does {ref} count as a type of {h}?")
USE = ("What is {ref} used for?", "What is {ref} typically used for?", "What would you use {ref} for?",
       "What is the usual purpose of {ref}?")
PLACE = ("Where would you usually find {ref}?", "Where is {ref} usually found?",
         "In what kind of place would you normally see {ref}?", "Where does {ref} usually belong?")
PART = ("Which of these is a part of {ref}?", "Which of these does {ref} have?",
        "Which of the following is one of the parts of {ref}?")
# A property of whatever is in the image ("an animal that lays eggs", "any container"): seeing and knowing.
EXISTS = ("Is there {p} in the image?", "Is there {p} in this picture?", "Does the image show {p}?",
          "Can you see {p} in the photo?", "Does this photo include {p}?", "Do you see {p} here?")


def unique_hypernyms(ctx: Context, cat: str) -> list[str]:
    """Hypernyms of `cat` that no other object in the image falls under (so 'which one is an X' has one answer)."""
    return ctx.memo(("unique_hypernyms", cat), lambda: _unique_hypernyms(ctx, cat))


def _unique_hypernyms(ctx: Context, cat: str) -> list[str]:
    out = []
    for h in hypernyms(ctx, cat):
        under = ctx.kb.under.get(h, frozenset())
        if not any(c in under for c in ctx.present if c != cat):
            out.append(h)
    return out


def foreign_hypernyms(ctx: Context, cat: str) -> list[str]:
    """Hypernyms of other known categories that `cat` is not: false claims for 'no' answers."""
    return ctx.shared_memo(("foreign_hypernyms", cat), lambda: _foreign_hypernyms(ctx, cat))


def _foreign_hypernyms(ctx: Context, cat: str) -> list[str]:
    own = set(ctx.kb.get(cat).hypernyms) if cat in ctx.kb else set()
    pool = set()
    for other in ctx.kb.siblings(cat) or tuple(ctx.kb.info):
        if other != cat:
            pool.update(h for h in hypernyms(ctx, other) if h not in own)
    return sorted(pool)


def other_values(ctx: Context, cat: str, field: str) -> list[str]:
    """Values of a concept field (uses, places, parts) that other categories have and `cat` does not."""
    return ctx.shared_memo(("other_values", cat, field), lambda: _other_values(ctx, cat, field))


def _other_values(ctx: Context, cat: str, field: str) -> list[str]:
    own = set(getattr(ctx.kb.get(cat), field))
    out: set[str] = set()
    for other in (*ctx.kb.siblings(cat), *ctx.popular[:20]):
        ci = ctx.kb.get(other)
        if ci is not None and other != cat:
            out.update(v for v in getattr(ci, field) if v not in own)
    return sorted(out)


class Knowledge(Operator):
    name = "knowledge"
    parent_free = True
    groundings = ("coco", "text")

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not len(ctx.kb):
            return []
        if ctx.rec.grounding == "text":
            # Only presence is known: a property some named object shows ("Is there an animal that lays eggs
            # in the image?" - Yes). No "no" form (an unnamed object may have it), no pointing (no boxes).
            return [(1.0, self._named)] if any(c in ctx.kb for c in ctx.rec.named) else []
        known = [c for c in ctx.present if c in ctx.kb]
        if not known:
            return []
        opts: list[Variant] = [(2.0, self._exists)]  # the yes/no form that needs both seeing and knowing
        if any(unique_hypernyms(ctx, c) for c in known):
            opts.append((1.0, self._kind))
        referable = [c for c in known if references(ctx, c)]
        if referable:
            opts.append((1.0, self._isa))
            if any(ctx.kb.get(c).uses for c in referable):
                opts.append((1.0, self._use))
            if any(ctx.kb.get(c).places for c in referable):
                opts.append((0.5, self._place))
            if any(ctx.kb.get(c).parts for c in referable):
                opts.append((0.5, self._part))
            if any(ctx.kb.get(c).kinds for c in referable):
                opts.append((0.7, self._fact))
        return opts

    def _kind(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cats = [c for c in ctx.present if c in ctx.kb and unique_hypernyms(ctx, c)]
        cat = ctx.pick(rng, cats, parent)
        h = rng.choice(unique_hypernyms(ctx, cat))
        q = rng.choice(KIND).format(h=h)
        wrong = [c for c in ctx.present if c != cat] + [c for c in ctx.kb.siblings(cat) if c in ctx.absent_pool]
        return [Draft(q, cat, "short", "knowledge.kind", objects=[cat], slots={"kind": h},
                      facts=[list(ctx.kb.fact(cat, "is_a", h, "hypernyms"))], params={"wrong": wrong})]

    def _exists(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        """'Is there an animal that lays eggs in the image?': yes when a clearly visible object has the property,
        no when no annotated object has it and the KB records the property's kind for every object of its
        domain (so the no is certain, as in the benchmark's knowledge subtask)."""
        kx = ctx.shared_memo("knowledge_index", lambda: index_from_view(ctx.kb, ctx.coco.category_names))
        present = set(ctx.present)
        visible = {o.category for o in ctx.usable}
        truth = rng.random() < 0.5
        pool = kx.shown_by(visible) if truth else kx.surely_absent(present)
        if not pool:
            return []
        facts = [p for p in pool if p.is_fact] if ctx.cfg.knowledge_facts_first else []
        prop = rng.choice(facts or pool)
        q = rng.choice(EXISTS).format(p=prop.phrase)
        if truth:
            cat = ctx.pick(rng, sorted(prop.members & visible), parent)
            if prop.is_fact:
                fact = ctx.kb.fact(cat, prop.kind, dict(ctx.kb.get(cat).kinds)[prop.kind], "facts")
            else:
                fact = ctx.kb.fact(cat, "is_a", prop.hypernym, "hypernyms")
            return [Draft(q, "Yes", "yesno", "knowledge.exists", objects=[cat], slots={"property": prop.phrase},
                          facts=[list(fact)])]
        return [Draft(q, "No", "yesno", "knowledge.exists", slots={"property": prop.phrase},
                      params={"negative": True})]

    def _named(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        # Over every category the view knows: a text-grounded image may name one no annotation file lists.
        kx = ctx.shared_memo("knowledge_index_all", lambda: index_from_view(ctx.kb, sorted(ctx.kb.info)))
        named = set(ctx.rec.named)
        pool = kx.shown_by(named)
        if not pool:
            return []
        facts = [p for p in pool if p.is_fact] if ctx.cfg.knowledge_facts_first else []
        prop = rng.choice(facts or pool)
        cat = rng.choice(sorted(prop.members & named))
        if prop.is_fact:
            fact = ctx.kb.fact(cat, prop.kind, dict(ctx.kb.get(cat).kinds)[prop.kind], "facts")
        else:
            fact = ctx.kb.fact(cat, "is_a", prop.hypernym, "hypernyms")
        return [Draft(rng.choice(EXISTS).format(p=prop.phrase), "Yes", "yesno", "knowledge.exists_named",
                      objects=[cat], slots={"property": prop.phrase}, facts=[list(fact)])]

    def _referable(self, ctx: Context, parent: Unit, rng: random.Random, field: str | None) -> tuple[str, str]:
        cats = [c for c in ctx.present if c in ctx.kb and references(ctx, c)
                and (field is None or getattr(ctx.kb.get(c), field))]
        if field is None:
            cats = [c for c in cats if hypernyms(ctx, c)]
        if not cats:
            return "", ""
        cat = ctx.pick(rng, cats, parent)
        return cat, rng.choice(references(ctx, cat))

    def _isa(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat, ref = self._referable(ctx, parent, rng, None)
        if not cat:
            return []
        truth = rng.random() < 0.5
        pool = hypernyms(ctx, cat) if truth else foreign_hypernyms(ctx, cat)
        pool = [h for h in pool if h not in ref]  # "Is the animal ... a kind of animal?" says nothing
        if not pool:
            return []
        h = rng.choice(pool)
        q = rng.choice(ISA).format(ref=ref, h=h)
        fact = ctx.kb.fact(cat, "is_a", h, "hypernyms") if truth else (cat, "is_a", h, "")
        facts = [list(fact)] if truth else [list(ctx.kb.fact(cat, "is_a", ctx.kb.get(cat).hypernyms[0],
                                                             "hypernyms"))]
        return [Draft(q, "Yes" if truth else "No", "yesno", "knowledge.isa", objects=[cat],
                      slots={"kind": h}, facts=facts, params={"ref": ref})]

    def _field(self, ctx: Context, parent: Unit, rng: random.Random, field: str, relation: str,
               questions: tuple[str, ...], template: str) -> list[Draft]:
        cat, ref = self._referable(ctx, parent, rng, field)
        if not cat:
            return []
        value = getattr(ctx.kb.get(cat), field)[0]  # the first listed is the most typical
        if set(words(value)) & set(words(ref)):
            return []  # "Where is the kitchen item found?" -> "kitchen" gives itself away
        q = rng.choice(questions).format(ref=ref)
        return [Draft(q, value, "short", template, objects=[cat], facts=[list(ctx.kb.fact(cat, relation, value,
                      field))], params={"ref": ref, "wrong": other_values(ctx, cat, field)})]

    def _use(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        return self._field(ctx, parent, rng, "uses", "used_for", USE, "knowledge.use")

    def _place(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        return self._field(ctx, parent, rng, "places", "found_in", PLACE, "knowledge.place")

    def _part(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        cat, ref = self._referable(ctx, parent, rng, "parts")
        if not cat:
            return []
        part = rng.choice(getattr(ctx.kb.get(cat), "parts"))
        wrong = other_values(ctx, cat, "parts")
        if len(wrong) < 3:
            return []
        return make_mc(rng.choice(PART).format(ref=ref), part, rng.sample(wrong, 3), rng, ctx.cfg.mc_circular,
                       "knowledge.part", objects=[cat], facts=[ctx.kb.fact(cat, "has_part", part, "parts")],
                       params={"ref": ref})

    def _fact(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        """A fact kind about an object pointed at: open question, or yes/no for yes/no and categorical kinds."""
        cats = [c for c in ctx.present if c in ctx.kb and references(ctx, c) and ctx.kb.get(c).kinds]
        if not cats:
            return []
        cat = ctx.pick(rng, cats, parent)
        ref = rng.choice(references(ctx, cat))
        kind, value = rng.choice(ctx.kb.get(cat).kinds)
        values = ctx.kb.kind_values.get(kind, ())
        fact = [list(ctx.kb.fact(cat, kind, value, "facts"))]
        common = dict(objects=[cat], slots={"kind": kind}, facts=fact)
        if kind in YES_NO:
            if set(values) < {"yes", "no"} or value not in ("yes", "no"):
                return []  # only "yes" exists for this kind: asking would teach "always yes"
            return [Draft(yes_no_question(kind, ref, rng), value.capitalize(), "yesno", "knowledge.fact_yn",
                          params={"ref": ref}, **common)]
        wrong = [v for v in values if v != value]
        if kind in CLAIMS and wrong and rng.random() < 0.5:
            truth = rng.random() < 0.5
            asked = value if truth else rng.choice(wrong)
            q = CLAIMS[kind].format(ref=ref, value=asked, a_value=with_article(asked))
            return [Draft(q, "Yes" if truth else "No", "yesno", "knowledge.fact_yn", params={"ref": ref},
                          **common)]
        return [Draft(open_question(kind, ref, rng), value, "short", "knowledge.fact",
                      params={"ref": ref, "wrong": wrong}, **common)]
