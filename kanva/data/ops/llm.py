"""LLM operators: knowledge, in-depth, interaction formats, breadth, paraphrase; and the optional judge.

An LLM operator's variant returns a Job (a request plus a parser) instead of drafts; the evolution loop sends
all jobs of a round in one batch to the backend, then parses each reply into a draft or a reason code. The
model sees objects with their positions in words, the captions only where needed, and KB facts; what it writes
is checked by elimination like everything else. Prompts are the versioned files under `kanva/data/prompts/`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from kanva.data.llm.base import Request
from kanva.data.ops.base import Context, Draft, Operator, Variant
from kanva.data.ops.choice import make_mc
from kanva.data.ops.geometry import region
from kanva.data.ops.refs import hypernyms
from kanva.data.prompts import Prompt, load_prompt, parse_fields
from kanva.data.text import squash, words
from kanva.data.unit import Unit
from kanva.data.vocab import mentions
from kanva.words import counted


@dataclass
class Job:
    """One LLM call of an operator: the request, and how to turn the reply into a draft (or a reason code)."""

    operator: str
    prompt: Prompt
    request: Request
    finish: Callable[[str], Draft | str]
    paraphrase: bool = False


def objects_in_words(ctx: Context) -> str:
    """'two dogs (bottom left, right), one frisbee (center)': what the model may talk about."""
    parts = []
    for c in ctx.present:
        where = sorted({r for o in ctx.rec.objects if o.category == c and (r := region(o, ctx.rec))})
        parts.append(counted(c, ctx.rec.counts[c]) + (f" ({', '.join(where)})" if where else ""))
    return "; ".join(parts) or "none"


def _where(ctx: Context, cat: str) -> str:
    o = ctx.singles.get(cat)
    r = region(o, ctx.rec) if o is not None else None
    if r:
        return f"in the {r} part of the image" if r != "center" else "in the center of the image"
    return f"one of {ctx.rec.counts[cat]} in the image" if ctx.rec.counts[cat] > 1 else "in the image"


def _fact_lines(ctx: Context, cat: str, rng: random.Random, k: int) -> list[list[str]]:
    """Up to k KB facts about `cat` (hypernym, use, place, part, other kinds), drawn reproducibly."""
    ci = ctx.kb.get(cat)
    if ci is None:
        return []
    pool = []
    hs = hypernyms(ctx, cat)
    if hs:
        pool.append(list(ctx.kb.fact(cat, "is_a", hs[0], "hypernyms")))
    for field, rel in (("uses", "used_for"), ("places", "found_in"), ("parts", "has_part")):
        vals = getattr(ci, field)
        if vals:
            pool.append(list(ctx.kb.fact(cat, rel, vals[0], field)))
    pool += [list(ctx.kb.fact(cat, kind, v, "facts")) for kind, v in ci.kinds]
    rng.shuffle(pool)
    return pool[:k]


def _fact_text(f: list[str]) -> str:
    return f"- {f[0]}: {f[1].replace('_', ' ')} {f[2]}"


def _qa(fields: dict[str, str]) -> tuple[str, str]:
    return squash(fields["Question"]), squash(fields["Answer"])


class LLMOperator(Operator):
    kind = "llm"
    max_tokens = 1 << 30  # a cap below cfg.llm_max_tokens for operators with short replies

    def request(self, ctx: Context, rng: random.Random, prompt: Prompt, **fields: object) -> Request:
        return Request(prompt.messages(**fields), max_tokens=min(ctx.cfg.llm_max_tokens, self.max_tokens),
                       temperature=ctx.cfg.llm_temperature, seed=rng.randrange(2**31))


class LLMKnowledge(LLMOperator):
    """A question that needs one visible fact and 1-3 supplied KB facts (plus the model's own, marked)."""

    name = "llm_knowledge"

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._job)] if any(c in ctx.kb for c in ctx.present) else []

    def _job(self, ctx: Context, parent: Unit, rng: random.Random) -> Job:
        cat = ctx.pick(rng, [c for c in ctx.present if c in ctx.kb], parent)
        facts = _fact_lines(ctx, cat, rng, rng.randint(1, 3))
        prompt = load_prompt("evolve_knowledge")
        req = self.request(ctx, rng, prompt, objects=objects_in_words(ctx), target=cat, where=_where(ctx, cat),
                           facts="\n".join(_fact_text(f) for f in facts) or "- (none)")

        def finish(reply: str) -> Draft | str:
            fields = parse_fields(reply, ("Question", "Answer"))
            if fields is None:
                return "unparsable"
            claims = [squash(line.split(":", 1)[1]) for line in reply.splitlines()
                      if line.strip().lower().startswith("knowledge:")]
            q, a = _qa(fields)
            answer_words = set(words(a))
            used = [f for f in facts if set(words(f[2])) <= answer_words] or facts
            return Draft(q, a, "open", "llm_knowledge", objects=[cat], facts=used,
                         params={"claims": claims, "supplied": len(facts)})

        return Job(self.name, prompt, req, finish)


METHODS = (
    "adds one more condition that the answer must satisfy",
    "asks for the reason behind the answer as well as the answer",
    "is more specific about which object it means",
    "needs one more step of reasoning to answer",
)


class LLMDeepen(LLMOperator):
    """In-depth evolution: add a constraint, ask for reasons, concretize, or add a reasoning step."""

    name = "llm_deepen"

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._job)] if ctx.present and parent.fmt in ("open", "short", "yesno") else []

    def _job(self, ctx: Context, parent: Unit, rng: random.Random) -> Job:
        method = rng.choice(METHODS)
        prompt = load_prompt("evolve_deepen")
        req = self.request(ctx, rng, prompt, objects=objects_in_words(ctx), question=parent.question,
                           answer=parent.answer, method=method)

        def finish(reply: str) -> Draft | str:
            fields = parse_fields(reply, ("Question", "Answer"))
            if fields is None:
                return "unparsable"
            q, a = _qa(fields)
            return Draft(q, a, "open", "llm_deepen", objects=list(parent.objects), facts=list(parent.facts),
                         params={"method": method})

        return Job(self.name, prompt, req, finish)


class LLMFormat(LLMOperator):
    """Interaction formats: recast the parent as true/false, fill-in-the-blank or multiple choice."""

    name = "llm_format"
    max_tokens = 96

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        if parent.fmt == "mc" or not ctx.present:
            return []
        return [(1.0, self._truefalse), (1.0, self._fillin), (1.0, self._mc)]

    def _base(self, ctx: Context, parent: Unit, rng: random.Random, name: str, **extra: object) -> tuple:
        prompt = load_prompt(name)
        req = self.request(ctx, rng, prompt, objects=objects_in_words(ctx), question=parent.question,
                           answer=parent.answer, **extra)
        return prompt, req

    def _inherit(self, parent: Unit) -> dict:
        return dict(objects=list(parent.objects), absent=list(parent.absent), facts=list(parent.facts))

    def _truefalse(self, ctx: Context, parent: Unit, rng: random.Random) -> Job:
        truth = rng.choice(("true", "false"))
        prompt, req = self._base(ctx, parent, rng, "evolve_truefalse", truth=truth)

        def finish(reply: str) -> Draft | str:
            f = parse_fields(reply, ("Statement", "Verdict"))
            if f is None or f["Verdict"].strip(" .").lower() != truth:
                return "unparsable"  # no verdict, or not the one asked for: the statement is unverified
            return Draft(f"True or false: {squash(f['Statement'])}", truth.capitalize(), "short", "llm_format.tf",
                         **self._inherit(parent), params={"format": "truefalse"})

        return Job(self.name, prompt, req, finish)

    def _fillin(self, ctx: Context, parent: Unit, rng: random.Random) -> Job:
        prompt, req = self._base(ctx, parent, rng, "evolve_fillin")

        def finish(reply: str) -> Draft | str:
            f = parse_fields(reply, ("Sentence", "Blank"))
            if f is None or "___" not in f["Sentence"]:
                return "unparsable"
            return Draft(f"Fill in the blank: {squash(f['Sentence'])}", squash(f["Blank"]).rstrip("."), "short",
                         "llm_format.fill", **self._inherit(parent), params={"format": "fillin"})

        return Job(self.name, prompt, req, finish)

    def _mc(self, ctx: Context, parent: Unit, rng: random.Random) -> Job:
        prompt, req = self._base(ctx, parent, rng, "evolve_mc")
        letter_rng = random.Random(rng.randrange(2**31))

        def finish(reply: str) -> Draft | str:
            f = parse_fields(reply, ("Correct", "Wrong"))
            if f is None:
                return "unparsable"
            wrong = [squash(w) for w in re.split(r"\s*\|\s*", f["Wrong"]) if w.strip()]
            if len(wrong) != 3:
                return "unparsable"
            named = [m.category for w in wrong for m in mentions(w)]
            inherit = self._inherit(parent)
            inherit["absent"] = inherit["absent"] + named  # wrong options may name absent objects
            return make_mc(parent.question, squash(f["Correct"]), wrong, letter_rng, False, "llm_format.mc",
                           params={"format": "mc"}, **inherit)[0]

        return Job(self.name, prompt, req, finish)


class LLMBreadth(LLMOperator):
    """A new question about the image's least-covered object (what the kept units asked least about)."""

    name = "llm_breadth"

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._job)] if ctx.present and ctx.rec.captions else []

    def _job(self, ctx: Context, parent: Unit, rng: random.Random) -> Job:
        least = min(ctx.present, key=lambda c: (ctx.coverage[c], c))
        prompt = load_prompt("evolve_breadth")
        existing = "\n".join(f"- {q}" for q in ctx.questions[-5:]) or "- (none)"
        req = self.request(ctx, rng, prompt, objects=objects_in_words(ctx), target=least,
                           where=_where(ctx, least), captions="\n".join(f"- {c}" for c in ctx.rec.captions),
                           existing=existing)

        def finish(reply: str) -> Draft | str:
            fields = parse_fields(reply, ("Question", "Answer"))
            if fields is None:
                return "unparsable"
            q, a = _qa(fields)
            return Draft(q, a, "open", "llm_breadth", objects=[least], params={"target": least})

        return Job(self.name, prompt, req, finish)


def keep_words(parent: Unit) -> list[str]:
    """What a paraphrase must keep: slot strings, and the object words and numbers the question uses."""
    keep = [v for v in parent.slots.values() if isinstance(v, str) and v]
    toks = words(parent.question)
    for m in mentions(toks):
        keep.append(toks[m.position])
    keep += [t for t in toks if t.isdigit()]
    q = parent.question.lower()
    return [k for k in dict.fromkeys(keep) if k.lower() in q]


class LLMParaphrase(LLMOperator):
    """Reword the question, keeping slot values (names, numbers) exact; answer, options and letter unchanged."""

    name = "llm_paraphrase"
    max_tokens = 64
    groundings = ("coco", "text", "none")  # rewords the question only

    def options(self, ctx: Context, parent: Unit) -> list[Variant]:
        return [(1.0, self._job)]

    def _job(self, ctx: Context, parent: Unit, rng: random.Random) -> Job:
        keep = keep_words(parent)
        prompt = load_prompt("evolve_paraphrase")
        req = self.request(ctx, rng, prompt, question=parent.question, keep=", ".join(keep) or "(nothing)")
        slots = dict(parent.slots) | {f"keep{i}": k for i, k in enumerate(keep)}

        def finish(reply: str) -> Draft | str:
            f = parse_fields(reply, ("Question",))
            if f is None:
                return "unparsable"
            return Draft(squash(f["Question"]), parent.answer, parent.fmt, "llm_paraphrase",
                         objects=list(parent.objects), absent=list(parent.absent), options=list(parent.options),
                         slots=slots, facts=list(parent.facts), params={"keep": keep})

        return Job(self.name, prompt, req, finish, paraphrase=True)


def llm_operators() -> list[LLMOperator]:
    return [LLMKnowledge(), LLMDeepen(), LLMFormat(), LLMBreadth(), LLMParaphrase()]


@dataclass(frozen=True)
class Verdict:
    improved: bool
    difficulty: int
    without_image: bool


def judge_job(ctx: Context, unit: Unit, parent: Unit, rng: random.Random) -> tuple[Prompt, Request]:
    prompt = load_prompt("judge")
    req = Request(prompt.messages(objects=objects_in_words(ctx), parent_question=parent.question,
                                  parent_answer=parent.answer, question=unit.human(), answer=unit.answer),
                  max_tokens=40, temperature=0.0, seed=rng.randrange(2**31))
    return prompt, req


def parse_verdict(reply: str) -> Verdict | None:
    f = parse_fields(reply, ("Improved", "Difficulty", "Without image"))
    if f is None:
        return None
    yes = {"yes": True, "no": False}
    imp, blind = yes.get(f["Improved"].strip(" .").lower()), yes.get(f["Without image"].strip(" .").lower())
    m = re.match(r"\d+", f["Difficulty"].strip())
    if imp is None or blind is None or not m or not 1 <= int(m.group()) <= 10:
        return None
    return Verdict(imp, int(m.group()), blind)
