"""Multi-hop questions: find an object, relate it to another, apply a fact.

"What is the object to the left of the bench used for?" needs three steps: find the bench, find the one object
clearly to its left, recall what that object is used for. The target must be the only object standing in that
relation to the anchor, or the question would have several answers. "How many mammals are in the image?"
chains detection, classification by the KB and counting.
"""

from __future__ import annotations

import random

from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.counting import wrong_counts
from kanva.data.ops.geometry import relations
from kanva.data.ops.knowledge import foreign_hypernyms
from kanva.data.ops.refs import hypernyms
from kanva.data.unit import Unit
from kanva.words import with_article

USE = ("What is the object {rel} the {b} used for?", "What would you use the object {rel} the {b} for?",
       "What is the thing {rel} the {b} meant for?")
ISA = ("Is the object {rel} the {b} a kind of {h}?", "Is the thing {rel} the {b} some kind of {h}?",
       "Would you call the object {rel} the {b} a type of {h}?")
EXPLAIN = ("What is the object {rel} the {b}, and what is it used for?",
           "Identify the object {rel} the {b} and explain what it is for.")
# "kind of X" instead of a plural: many hypernyms are mass nouns ("produce", "equipment", "cutlery").
COUNT = ("How many objects in the image are a kind of {h}?", "How many of the objects in this picture are kinds of "
         "{h}?", "Count the objects in the image that are a kind of {h}.",
         "How many things in this photo would you call a kind of {h}?")


def anchored(ctx: Context) -> list[tuple[str, str, str]]:
    """(target category, relation, anchor category): the target is the only usable object in that relation."""
    return ctx.memo("anchored", lambda: _anchored(ctx))


def _anchored(ctx: Context) -> list[tuple[str, str, str]]:
    out = []
    for a, b, rels in ctx.pairs:
        if a.category not in ctx.kb:
            continue
        for rel in rels:
            others = [o for o in ctx.usable if o is not a and o is not b and rel in relations(o, b)]
            if not others:
                out.append((a.category, rel, b.category))
    return out


def countable_kinds(ctx: Context) -> dict[str, list[str]]:
    """hypernym -> present categories under it, where all of them can be counted (and the word is not a name)."""
    return ctx.memo("countable_kinds", lambda: _countable_kinds(ctx))


def _countable_kinds(ctx: Context) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in ctx.present:
        for h in hypernyms(ctx, c):
            out.setdefault(h, []).append(c)
    names = set(ctx.coco.category_names)
    return {h: cs for h, cs in out.items() if h not in names and all(c in ctx.countable for c in cs)}


class MultiHop(Operator):
    name = "multihop"
    parent_free = True

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if not len(ctx.kb):
            return []
        opts: list[Variant] = []
        chains = anchored(ctx)
        if chains:
            opts.append((1.0, self._isa))
            if any(ctx.kb.get(t).uses for t, _, _ in chains):
                opts += [(1.0, self._use), (0.7, self._explain)]
        if countable_kinds(ctx):
            opts.append((1.0, self._count))
        return opts

    def _chain(self, ctx: Context, parent: Unit, rng: random.Random, need_use: bool) -> tuple[str, str, str]:
        chains = [c for c in anchored(ctx) if not need_use or ctx.kb.get(c[0]).uses]
        focus = set(ctx.focus(parent))
        preferred = [c for c in chains if c[0] in focus or c[2] in focus]
        if preferred and rng.random() < ctx.cfg.focus_bias:
            return rng.choice(preferred)
        return rng.choice(chains)

    def _use(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        t, rel, b = self._chain(ctx, parent, rng, True)
        use = ctx.kb.get(t).uses[0]
        q = rng.choice(USE).format(rel=rel, b=b)
        return [Draft(q, use, "short", "multihop.use", objects=[t, b], slots={"anchor": b, "relation": rel},
                      facts=[list(ctx.kb.fact(t, "used_for", use, "uses"))], params={"hops": 3})]

    def _explain(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        t, rel, b = self._chain(ctx, parent, rng, True)
        use = ctx.kb.get(t).uses[0]
        q = rng.choice(EXPLAIN).format(rel=rel, b=b)
        ans = (f"The object {rel} the {b} is {with_article(t)}. {with_article(t).capitalize()} is used for "
               f"{use}.")
        return [Draft(q, ans, "open", "multihop.explain", objects=[t, b], slots={"anchor": b, "relation": rel},
                      facts=[list(ctx.kb.fact(t, "used_for", use, "uses"))], params={"hops": 3})]

    def _isa(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        t, rel, b = self._chain(ctx, parent, rng, False)
        truth = rng.random() < 0.5
        pool = hypernyms(ctx, t) if truth else foreign_hypernyms(ctx, t)
        if not pool:
            return []
        h = rng.choice(pool)
        q = rng.choice(ISA).format(rel=rel, b=b, h=h)
        nearest = ctx.kb.get(t).hypernyms[0] if ctx.kb.get(t).hypernyms else h
        fact = ctx.kb.fact(t, "is_a", h if truth else nearest, "hypernyms")
        return [Draft(q, "Yes" if truth else "No", "yesno", "multihop.isa", objects=[t, b],
                      slots={"anchor": b, "relation": rel, "kind": h}, facts=[list(fact)], params={"hops": 3})]

    def _count(self, ctx: Context, parent: Unit, rng: random.Random) -> list[Draft]:
        kinds = countable_kinds(ctx)
        focus = set(ctx.focus(parent))
        preferred = sorted(h for h, cs in kinds.items() if focus & set(cs))
        h = rng.choice(preferred) if preferred and rng.random() < ctx.cfg.focus_bias else rng.choice(sorted(kinds))
        cats = kinds[h]
        n = sum(ctx.countable[c] for c in cats)
        q = rng.choice(COUNT).format(h=h)
        return [Draft(q, str(n), "short", "multihop.count", objects=list(cats), slots={"kind": h, "count": n},
                      facts=[list(ctx.kb.fact(c, "is_a", h, "hypernyms")) for c in cats],
                      params={"hops": 3, "wrong": wrong_counts(n)})]
