"""`kanva data seed`: LLaVA-style seed instructions from annotations, by rule templates or by an LLM.

Types: `conversation` (several questions about objects, counts, places, colours, printed words), `detail`
(a detailed description), `reasoning` (a question that needs what is in the image plus KB knowledge), and
`align` (image + one caption, for the alignment stage). Rule seeds are correct by construction. LLM seeds are
made from the captions and boxes with the versioned prompts `seed_<type>.vN.txt`, checked by elimination, and
replaced by the rule seed of the same image and type when rejected (the reason stays in provenance).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanva.data.coco import CocoSet, ImageRec
from kanva.data.config import EvolveConfig
from kanva.data.eliminate import LLMTrace, check
from kanva.data.kbview import KBView
from kanva.data.llava import IMAGE_TOKEN, save_llava
from kanva.data.llm.base import Backend, Request
from kanva.data.ops.base import Context
from kanva.data.ops.geometry import norm_box, region, region_phrase
from kanva.data.ops.refs import hypernyms
from kanva.data.prompt_folder import PromptFolder
from kanva.data.prompts import load_prompt, parse_fields
from kanva.data.rng import unit_rng
from kanva.data.text import sentence, squash
from kanva.data.unit import Unit
from kanva.data.vocab import mentioned
from kanva.errors import KanvaError
from kanva.words import counted, join_list, plural, with_article

TYPES = ("conversation", "detail", "reasoning", "align")

OVERVIEW = ("What objects can you see in this image?", "What is in this picture?",
            "Which things are shown in the photo?")
DETAIL = ("Describe this image in detail.", "Give a thorough description of what this picture shows.",
          "What is happening in this photo? Describe it carefully.", "Write a detailed account of the image.")
ALIGN = ("Describe the image briefly.", "Write a short caption for this picture.",
         "Summarize the photo in one sentence.", "What does this image show? Answer in one sentence.",
         "Give a one-line description of the image.")


@dataclass
class Seed:
    """One seed sample and what provenance needs to know about how it was made."""

    turns: list[tuple[str, str]]
    template: str
    facts: list[list[str]] = field(default_factory=list)


# -- rule seeds ------------------------------------------------------------------------------------------------
def _inventory(rec: ImageRec) -> str:
    return join_list([counted(c, n) for c, n in sorted(rec.counts.items(), key=lambda kv: (-kv[1], kv[0]))])


def conversation(ctx: Context, rng: random.Random) -> Seed | None:
    rec = ctx.rec
    if not rec.counts:
        if not rec.captions:
            return None
        return Seed([("What does this image show?", sentence(rng.choice(rec.captions)))], "seed.conversation")
    pool: list[tuple[str, str]] = []
    for c, n in sorted(ctx.countable.items()):
        if n >= 2:
            q = rng.choice(("How many {p} are there?", "How many {p} can you see?", "Count the {p} in the picture."))
            pool.append((q.format(p=plural(c)), f"There are {counted(c, n)} in the image."))
    for c, o in sorted(ctx.singles.items()):
        r = region(o, rec)
        if r:
            q = rng.choice(("Where is the {c}?", "Where in the picture is the {c}?", "Where can you see the {c}?"))
            pool.append((q.format(c=c), f"The {c} is in {region_phrase(r)}."))
        if o.color:
            q = rng.choice(("What color is the {c}?", "What is the color of the {c}?", "Which color is the {c}?"))
            pool.append((q.format(c=c), f"The {c} is {o.color}."))
    for a, b, rels in ctx.pairs[:4]:
        pool.append((f"Where is the {a.category} relative to the {b.category}?",
                     f"The {a.category} is {join_list(rels)} the {b.category}."))
    if rec.texts:
        words = join_list([f'"{t.text}"' for t in rec.texts[:3]])
        pool.append(("Is there any writing in the image?", f"Yes, the image shows the word{'s' * (len(rec.texts) > 1)} "
                                                           f"{words}."))
    if rec.scene:
        pool.append(("What kind of place is this?", f"It looks like {with_article(rec.scene)}."))
    sized = sorted(ctx.singles.values(), key=lambda o: -o.area)
    if len(sized) >= 2 and sized[0].area >= 1.5 * sized[1].area:
        pool.append(("What is the largest object in the picture?", f"The largest object is the {sized[0].category}."))
    rng.shuffle(pool)
    turns = [(rng.choice(OVERVIEW), f"I can see {_inventory(rec)}.")] + pool[: rng.randint(2, 4)]
    return Seed(turns, "seed.conversation")


def region_words(r: str) -> str:
    """'at the top left', 'on the left', 'in the center' (short phrases that read well in a list)."""
    if r == "center":
        return "in the center"
    return f"on the {r}" if r in ("left", "right") else f"at the {r}"


def detail(ctx: Context, rng: random.Random) -> Seed | None:
    rec = ctx.rec
    parts = []
    if rec.captions:
        parts.append(sentence(rng.choice(rec.captions)))
    if rec.counts:
        parts.append(f"The image contains {_inventory(rec)}.")
    placed = [(c, r) for c, o in sorted(ctx.singles.items()) if (r := region(o, rec))][:4]
    if placed:
        parts.append(sentence(join_list([f"the {c} is {region_words(r)}" for c, r in placed])))
    colored = [(c, o.color) for c, o in sorted(ctx.singles.items()) if o.color]
    if colored:
        parts.append(sentence(join_list([f"the {c} is {col}" for c, col in colored])))
    for t in rec.texts[:2]:
        parts.append(f'The word "{t.text}" is printed in the image.')
    if rec.scene:
        parts.append(f"The setting looks like {with_article(rec.scene)}.")
    if len(parts) < 2:
        return None
    return Seed([(rng.choice(DETAIL), " ".join(parts))], "seed.detail")


# Reasoning questions: each answer states the facts it rests on and concludes only what they give.
USE_Q = ("Which object in this picture would be most useful for {u}, and why?",
         "If you wanted to do some {u}, which of the things here would you pick? Why?",
         "Which thing in this image is meant for {u}? Explain.")
PLACE_Q = ("Judging by the objects in this image, where might it have been taken? Explain your reasoning.",
           "What kind of place could this be, going by what is in the picture? Explain.",
           "Which setting do the objects in this photo suggest, and why?")
# KB places that are not somewhere a picture is taken ("found on a desk", "in the sky", "at a wedding").
NOT_SETTINGS = frozenset({"dining table", "table", "desk", "sky", "tree", "home", "picnic", "wedding", "formal event",
                          "mountains"})
KIND_Q = ("Is there anything in this image that is a kind of {h}? Explain.",
          "Does the picture show any {h}? Say which and why.",
          "Can you spot a kind of {h} in this image? Explain your answer.")


def reasoning(ctx: Context, rng: random.Random) -> Seed | None:
    kb, rec = ctx.kb, ctx.rec
    with_use = [c for c in ctx.present if c in kb and kb.get(c).uses]
    options = []
    # a use that names the object ("playing ball games" for the sports ball) would give the answer away
    unique_use = [c for c in with_use if c not in mentioned(kb.get(c).uses[0])
                  and not any(kb.get(c).uses[0] in kb.get(o).uses for o in with_use if o != c)]
    if unique_use:
        c = rng.choice(unique_use)
        u = kb.get(c).uses[0]
        options.append(Seed([(rng.choice(USE_Q).format(u=u), f"The {c}, because {with_article(c)} is used for {u}.")],
                            "seed.reasoning.use", [list(kb.fact(c, "used_for", u, "uses"))]))
    # Where the picture was taken, from a place the KB lists for two or more of its objects: the conclusion is
    # the place they share, and the answer says it is a guess from those objects.
    by_place: dict[str, list[str]] = {}
    for c in ctx.present:
        if c == "person":  # people are found everywhere: a person says nothing about the place
            continue
        for p in (kb.get(c).places if c in kb else ()):
            if p not in NOT_SETTINGS and p not in kb:
                by_place.setdefault(p, []).append(c)
    shared = sorted((p, cs) for p, cs in by_place.items() if len(cs) >= 2)
    if shared:
        place, cats = rng.choice(shared)
        cats = cats[:3]
        names = join_list([f"the {c if rec.counts[c] == 1 else plural(c)}" for c in cats])
        both = "both" if len(cats) == 2 else "all"
        options.append(Seed([(rng.choice(PLACE_Q), f"The image shows {_inventory(rec)}. {names.capitalize()} are "
                              f"{both} usually found in {with_article(place)}, so the picture was probably taken in "
                              f"{with_article(place)} or somewhere like one.")], "seed.reasoning.place",
                            [list(kb.fact(c, "found_in", place, "places")) for c in cats]))
    kinds = sorted({h for c in ctx.present for h in hypernyms(ctx, c)})
    if kinds:
        h = rng.choice(kinds)
        members = [c for c in ctx.present if kb.is_a(c, h)]
        ans = (f"Yes: {join_list(['the ' + c for c in members])} "
               f"{'is a kind' if len(members) == 1 else 'are kinds'} of {h}.")
        options.append(Seed([(rng.choice(KIND_Q).format(h=h), ans)],
                            "seed.reasoning.kind", [list(kb.fact(c, "is_a", h, "hypernyms")) for c in members]))
    return rng.choice(options) if options else None


def align(ctx: Context, rng: random.Random) -> Seed | None:
    if not ctx.rec.captions:
        return None
    return Seed([(rng.choice(ALIGN), sentence(rng.choice(ctx.rec.captions)))], "seed.align")


RULES = {"conversation": conversation, "detail": detail, "reasoning": reasoning, "align": align}


# -- LLM seeds -------------------------------------------------------------------------------------------------
def boxes_text(rec: ImageRec) -> str:
    return "; ".join(f"{o.category} {list(norm_box(o.bbox, rec))}" for o in rec.objects) or "none"


def _facts_text(ctx: Context) -> tuple[str, list[list[str]]]:
    facts = []
    for c in ctx.present:
        ci = ctx.kb.get(c)
        if ci is None:
            continue
        hs = hypernyms(ctx, c)
        if hs:
            facts.append(list(ctx.kb.fact(c, "is_a", hs[0], "hypernyms")))
        if ci.uses:
            facts.append(list(ctx.kb.fact(c, "used_for", ci.uses[0], "uses")))
    return "\n".join(f"- {f[0]}: {f[1].replace('_', ' ')} {f[2]}" for f in facts[:6]) or "- (none)", facts[:6]


def parse_pairs(reply: str) -> list[tuple[str, str]]:
    """Every Question/Answer pair of a reply, in order (an unanswered question ends the list)."""
    pairs, q = [], None
    for line in reply.splitlines():
        m = re.match(r"^\s*(?:\*\*)?(question|answer)(?:\s*\d+)?(?:\*\*)?\s*:(?:\*\*)?\s*(.*)$", line, re.I)
        if not m:
            continue
        if m.group(1).lower() == "question":
            q = squash(m.group(2))
        elif q:
            pairs.append((q, squash(m.group(2))))
            q = None
    return pairs


def llm_request(ctx: Context, kind: str, rng: random.Random, cfg: EvolveConfig,
                folder: PromptFolder | None = None) -> tuple[Any, Request, list]:
    if folder is not None:  # LLaVA's recipe: system, few-shot pairs, this image's captions (and boxes)
        req = Request(folder.messages(ctx.rec), max_tokens=max(cfg.llm_max_tokens, 1024),
                      temperature=cfg.llm_temperature, seed=rng.randrange(2**31))
        return folder, req, []
    prompt = load_prompt(f"seed_{kind}")
    fields = {"objects": boxes_text(ctx.rec), "captions": "\n".join(f"- {c}" for c in ctx.rec.captions) or "- (none)"}
    facts: list[list[str]] = []
    if kind == "reasoning":
        fields["facts"], facts = _facts_text(ctx)
    req = Request(prompt.messages(**fields), max_tokens=max(cfg.llm_max_tokens, 320),
                  temperature=cfg.llm_temperature, seed=rng.randrange(2**31))
    return prompt, req, facts


def llm_seed(kind: str, reply: str, rng: random.Random,
             folder: PromptFolder | None = None) -> list[tuple[str, str]] | None:
    if folder is not None:
        return folder.parse(reply, rng.choice(DETAIL))
    if kind == "detail":
        f = parse_fields(reply, ("Description",))
        return [(rng.choice(DETAIL), squash(f["Description"]))] if f else None
    pairs = parse_pairs(reply)
    if kind == "reasoning":
        pairs = pairs[:1]
    return pairs or None


# -- the command -----------------------------------------------------------------------------------------------
def _sample(rec: ImageRec, kind: str, turns: list[tuple[str, str]]) -> dict:
    conv = []
    for i, (q, a) in enumerate(turns):
        conv += [{"from": "human", "value": f"{IMAGE_TOKEN}\n{q}" if i == 0 else q}, {"from": "gpt", "value": a}]
    return {"id": f"{rec.id}-{kind}", "image": rec.file_name, "conversations": conv}


def check_turns(rec: ImageRec, turns: list[tuple[str, str]], trace: LLMTrace | None,
                 facts: list[list[str]] | None = None) -> str | None:
    for q, a in turns:
        reason = check(Unit("", rec.file_name, rec.id, q, a, "open", facts=facts or []), rec, None, trace)
        if reason:
            return reason
    return None


def make_seeds(coco: CocoSet, kb: KBView, types: Iterable[str], seed: int = 0, backend: Backend | None = None,
               exclude: set[str] | None = None, cfg: EvolveConfig | None = None, progress: bool = True,
               batch_images: int = 32, prompts: PromptFolder | None = None) -> tuple[list[dict], list[dict]]:
    """(samples, provenance records) for every image of `coco` not excluded, for each type in `types`.

    `prompts` (with a backend): LLaVA's recipe from a prompt folder replaces Kanva's prompt for the one type.
    """
    from tqdm import tqdm

    types = list(types)
    bad = [t for t in types if t not in TYPES]
    if bad or not types:
        raise KanvaError(f"--types {','.join(types)}: unknown type(s) {bad}; choose from {','.join(TYPES)}")
    if prompts is not None and (len(types) != 1 or types[0] == "align"):
        raise KanvaError(f"--prompts {prompts.path}: a prompt folder makes one type of seed; give one of "
                         f"conversation, detail, reasoning with --types (got {','.join(types)})")
    cfg = cfg or EvolveConfig()
    popular = coco.popular()
    exclude = exclude or set()
    recs = [coco.images[i] for i in sorted(coco.images) if coco.images[i].key not in exclude]
    samples: list[dict] = []
    prov: list[dict] = []
    bar = tqdm(total=len(recs), desc="seed", unit="img", disable=not progress)
    for start in range(0, len(recs), batch_images):
        batch = recs[start : start + batch_images]
        ctxs = [Context(rec, coco, kb, cfg, popular) for rec in batch]
        jobs = []  # (ctx, kind, rng, prompt, request, facts)
        if backend is not None:
            for ctx in ctxs:
                for kind in types:
                    if kind == "align":
                        continue
                    rng = unit_rng(seed, ctx.rec.id, f"seed-{kind}-llm", 0)
                    jobs.append((ctx, kind, rng, *llm_request(ctx, kind, rng, cfg, prompts)))
        replies = backend.complete([j[4] for j in jobs]) if jobs else []
        llm_out: dict[tuple[int, str], tuple[list | None, dict]] = {}
        for (ctx, kind, rng, prompt, req, facts), reply in zip(jobs, replies):
            info: dict[str, Any] = {"model": backend.model, "prompt": f"{prompt.id}:{prompt.hash}", "facts": facts}
            if reply.text is None:
                llm_out[(ctx.rec.id, kind)] = (None, {**info, "reason": reply.error, "detail": reply.detail})
                continue
            turns = llm_seed(kind, reply.text, rng, prompts)
            trace = LLMTrace(prompt.static_text(), req.prompt_text(), reply.text)
            reason = "unparsable" if turns is None else check_turns(ctx.rec, turns, trace, facts)
            llm_out[(ctx.rec.id, kind)] = (None if reason else turns, {**info, "reason": reason,
                                                                         "reply": reply.text[:500]})
        for ctx in ctxs:
            for kind in types:
                base = {"id": f"{ctx.rec.id}-{kind}", "image": ctx.rec.file_name, "image_id": ctx.rec.id,
                        "type": kind, "seed": seed}
                turns, info = llm_out.get((ctx.rec.id, kind), (None, None))
                if turns is not None:
                    samples.append(_sample(ctx.rec, kind, turns))
                    prov.append({**base, "source": "llm", "status": "kept", **info})
                    continue
                if info is not None:  # the LLM's attempt, rejected; the rule seed replaces it
                    prov.append({**base, "source": "llm", "status": "rejected", **info})
                made = RULES[kind](ctx, unit_rng(seed, ctx.rec.id, f"seed-{kind}", 0))
                if made is None:
                    prov.append({**base, "source": "rules", "status": "skipped",
                                 "reason": "nothing to say (no objects or captions)"})
                    continue
                reason = check_turns(ctx.rec, made.turns, None, made.facts)
                if reason:
                    prov.append({**base, "source": "rules", "template": made.template, "status": "rejected",
                                 "reason": reason})
                    continue
                samples.append(_sample(ctx.rec, kind, made.turns))
                prov.append({**base, "source": "rules", "template": made.template, "status": "kept",
                             "facts": made.facts})
        bar.update(len(batch))
    bar.close()
    return samples, prov


def provenance_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".provenance.jsonl")


def write_seeds(samples: list[dict], prov: list[dict], out: str | Path) -> Path:
    path = save_llava(samples, out)
    provenance_path(out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in prov),
                                    encoding="utf-8")
    return path
