"""What the set and clip operators share: the image options of "which image" questions, distractor objects,
counts asked as short answers or multiple choice, and knowledge properties read as definite descriptions.

The facts themselves come from kanva/data/sequence_facts.py; this module only words and packs them.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft
from kanva.data.ops.choice import make_mc, object_distractors
from kanva.data.ops.counting import wrong_counts
from kanva.data.unit import LETTERS
from kanva.knowledge.properties import KnowledgeIndex, Property, index_from_view
from kanva.words import number_word

MC_SHARE = 0.4  # share of short-answer questions (counts, names) asked as multiple choice instead


def image_label(k: int) -> str:
    """How questions and options name image k (0-based) of a set: the label its line in the prompt has."""
    return f"Image {k + 1}"


def image_options(n: int) -> list[str]:
    """The four options of a "which image" question about a set of n (2-4) images, in their natural order."""
    if n == 2:
        return ["Image 1", "Image 2", "Both images", "Neither image"]
    return [image_label(k) for k in range(n)] + (["None of them"] if n == 3 else [])


def ordered_mc(question: str, options: list[str], correct: str, template: str, **kw) -> Draft:
    """Multiple choice whose options keep their natural order ("Image 1" ... "Neither image"); finalize spreads
    the answer letters by rotating them."""
    return Draft(question, LETTERS[options.index(correct)], "mc", template, options=list(options), **kw)


def distractors(ctx: Context, correct: str, inside: list[str], rng: random.Random, n: int = 3) -> list[str]:
    """n wrong objects: up to two from `inside` (in the set or clip, yet wrong for this question), the rest
    absent from it (KB siblings of `correct` first, as single-image multiple choice draws them)."""
    pool = sorted(c for c in set(inside) if c != correct)
    rng.shuffle(pool)
    out = pool[: min(2, n)]
    for c in object_distractors(ctx, correct, rng, n=n):
        if len(out) < n and c not in out and c != correct:
            out.append(c)
    out += [c for c in pool if c not in out][: n - len(out)]
    return out if len(out) == n else []


def count_drafts(ctx: Context, rng: random.Random, question: str, n: int, template: str, objects: list[str],
                 slots: dict) -> list[Draft]:
    """A count as a short answer (digits), or (MC_SHARE of the time) as four numbers to choose from, written as
    digits or as words."""
    if rng.random() < MC_SHARE:
        options = [n, *(int(w) for w in rng.sample(wrong_counts(n), 3))]
        say = number_word if rng.random() < 0.5 else str  # options as digits or as words ("2", "two")
        return make_mc(question, say(n), [say(m) for m in options[1:]], rng, ctx.cfg.mc_circular, template,
                       objects=objects, slots=slots)
    return [Draft(question, str(n), "short", template, objects=objects, slots=slots,
                  params={"wrong": wrong_counts(n)})]


def knowledge_index(ctx: Context) -> KnowledgeIndex:
    """The KB's yes/no-decidable properties (the single-image knowledge operator's index, shared per run)."""
    return ctx.shared_memo("knowledge_index", lambda: index_from_view(ctx.kb, ctx.coco.category_names))


FACT_SHARE = 0.5  # share of knowledge questions asked about a KB fact when both facts and hypernyms would do


def fact_or_hypernym(ctx: Context, rng: random.Random, cands: list, prop=lambda c: c) -> list:
    """The candidates (each with a Property, `prop(c)`) about KB facts ("an animal that eats only plants") half
    the time (always with `knowledge_facts_first`), those about hypernyms ("some kind of ruminant") otherwise,
    whenever both kinds are there. Drawn uniformly, hypernyms would be most questions (the KB has many more of
    them), while the facts are the knowledge people ask about."""
    facts = [c for c in cands if prop(c).is_fact]
    hyps = [c for c in cands if not prop(c).is_fact]
    if facts and (not hyps or ctx.cfg.knowledge_facts_first or rng.random() < FACT_SHARE):
        return facts
    return hyps


def some(prop: Property) -> str:
    """An indefinite phrase for "Which image shows ...?": "an animal that lays eggs", "some kind of ruminant"."""
    return prop.phrase if prop.is_fact else f"some kind of {prop.hypernym}"


def the(prop: Property) -> str:
    """A definite description of the one object with the property: "the animal that eats only plants"."""
    if not prop.is_fact:
        return f"the {prop.hypernym}"
    words = prop.phrase.split(" ", 1)
    return f"the {words[1]}" if words[0] in ("a", "an") and len(words) == 2 else f"the {prop.phrase}"


def kb_fact(ctx: Context, cat: str, prop: Property) -> list[str]:
    """The KB fact that gives `cat` the property, as provenance records it."""
    if prop.is_fact:
        return list(ctx.kb.fact(cat, prop.kind, dict(ctx.kb.get(cat).kinds)[prop.kind], "facts"))
    return list(ctx.kb.fact(cat, "is_a", prop.hypernym, "hypernyms"))
