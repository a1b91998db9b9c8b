"""A teacher that sees the image: `kanva data caption` (ALLaVA's two steps) and `kanva data recaption`.

ALLaVA had a vision model write, for each image, (1) a fine-grained caption, then (2) a complex question and a
detailed answer, from the image and that caption. OneVision re-captioned images with its own model. Here both
run over any vision backend: an OpenAI-compatible endpoint, which gets each image as a base64 `image_url`
part (kanva/data/llm/openai_backend.py: concurrency, retries, disk cache), or a Kanva model in-process and
batched (kanva/data/llm/kanva_model.py). Prompts are Kanva's versioned files `caption_fine` and `caption_qa`.

Every reply is eliminated like an evolved unit: with annotations for the image (`--coco`), the full check
(hallucinated objects, wrong counts, boxes, leaks, echoes, ...) and a per-sample CHAIR record (object mentions
in the reply, and those in neither the annotations nor the captions); without them, the text checks only.
Each image and step gets one provenance record (model, prompt id and hash, status, reason code, CHAIR);
a transport failure is a reason code (llm_timeout, llm_http_error, ...), never a crash. Re-running with the
same cache asks the teacher nothing twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from kanva.data.coco import CocoSet, ImageRec
from kanva.data.eliminate import LLMTrace, check, check_text, hallucinated
from kanva.data.llava import IMAGE_TOKEN
from kanva.data.llm.base import Backend, Request
from kanva.data.prompts import load_prompt, parse_fields
from kanva.data.rng import derive
from kanva.data.seed import DETAIL
from kanva.data.text import squash, words
from kanva.data.unit import Unit
from kanva.data.vocab import mentions
from kanva.errors import KanvaError

STEPS = ("caption", "qa")
# A caption or a detailed answer is prose: enough words, some of them the words every English sentence uses.
# (The generic checks let through a random model's "[dyLgerat Where bussg" as a short answer would pass.)
MIN_WORDS = {"caption": 8, "qa": 4}
FUNCTION_WORDS = frozenset("the a an is are was of and in on with to it this that there".split())
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class Item:
    """One image: its name in the output (relative to the image root), its file, its annotations if any."""

    image: str
    path: Path
    rec: ImageRec | None


def collect_images(coco: CocoSet | None, image_dir: str | Path | None, limit: int | None = None) -> list[Item]:
    """The images to caption: every file of `image_dir` (annotations looked up by base name), else every image
    of `coco` (files under its image folder). A listed image whose file is missing is an error naming it."""
    items: list[Item] = []
    if image_dir is not None:
        root = Path(image_dir)
        if not root.is_dir():
            raise KanvaError(f"--images {root}: no such folder")
        for p in sorted(q for q in root.rglob("*") if q.suffix.lower() in IMAGE_EXTENSIONS):
            rel = p.relative_to(root).as_posix()
            items.append(Item(rel, p, coco.lookup(rel) if coco is not None else None))
    elif coco is not None:
        for iid in sorted(coco.images):
            rec = coco.images[iid]
            items.append(Item(rec.file_name, coco.image_dir / rec.file_name, rec))
        missing = [it.path for it in items if not it.path.is_file()]
        if missing:
            raise KanvaError(f"{len(missing)} image file(s) of {coco.root} are missing, e.g. {missing[0]}")
    else:
        raise KanvaError("give the images: --images DIR and/or --coco DIR --split S")
    if not items:
        raise KanvaError("no images to caption")
    return items[:limit] if limit is not None else items


def _judge(item: Item, question: str, answer: str, trace: LLMTrace, step: str) -> tuple[str | None, dict | None]:
    """(reason or None, CHAIR record or None): the full check where annotations exist, text checks otherwise."""
    toks = words(answer)
    if len(toks) < MIN_WORDS[step] or not FUNCTION_WORDS & set(toks):
        return "degenerate", None
    if item.rec is None:
        return check_text(question, answer, trace), None
    unit = Unit("", item.image, item.rec.id, question, answer, "open")
    said = sorted({m.category for m in mentions(answer) if not m.negated})
    bad = sorted(set(hallucinated(Unit("", item.image, item.rec.id, "", answer, "open"), item.rec)))
    chair = {"mentioned": said, "hallucinated": bad, "chair_i": round(len(bad) / len(said), 4) if said else 0.0}
    return check(unit, item.rec, None, trace), chair


def _sample(sid: str, image: str, question: str, answer: str) -> dict:
    return {"id": sid, "image": image, "conversations": [{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"},
                                                         {"from": "gpt", "value": answer}]}


def run_caption(items: list[Item], backend: Backend, steps: tuple[str, ...] = STEPS, seed: int = 0,
                max_tokens: int = 400, temperature: float = 0.0) -> tuple[list[dict], list[dict]]:
    """(LLaVA samples, provenance records): step `caption` for every image, then `qa` for the kept captions."""
    bad = [s for s in steps if s not in STEPS]
    if bad or not steps or steps[0] != "caption":
        raise KanvaError(f"--steps {','.join(steps)}: choose caption, or caption,qa")
    samples: list[dict] = []
    prov: list[dict] = []
    fine = load_prompt("caption_fine")
    reqs = [Request(fine.messages(), max_tokens=max_tokens, temperature=temperature,
                    seed=derive(seed, it.image, "caption") % 2**31, images=(str(it.path),)) for it in items]
    captions: dict[int, str] = {}
    for k, (it, req, reply) in enumerate(zip(items, reqs, backend.complete(reqs))):
        rng = random.Random(derive(seed, it.image, "caption-request"))
        base = {"id": f"{it.image}#caption", "image": it.image, "step": "caption", "model": backend.model,
                "prompt": f"{fine.id}:{fine.hash}", "annotated": it.rec is not None}
        if reply.text is None:
            prov.append({**base, "status": "rejected", "reason": reply.error, "detail": reply.detail})
            continue
        text = reply.text.strip()
        request = rng.choice(DETAIL)
        reason, chair = _judge(it, request, text, LLMTrace(fine.static_text(), req.prompt_text(), text), "caption")
        prov.append({**base, "status": "rejected" if reason else "kept", "reason": reason, "chair": chair,
                     "reply": text[:500]})
        if not reason:
            captions[k] = text
            samples.append(_sample(f"{it.image}#caption", it.image, request, text))
    if "qa" in steps and captions:
        qa = load_prompt("caption_qa")
        todo = sorted(captions)
        reqs = [Request(qa.messages(caption=captions[k]), max_tokens=max_tokens, temperature=temperature,
                        seed=derive(seed, items[k].image, "qa") % 2**31, images=(str(items[k].path),)) for k in todo]
        for k, req, reply in zip(todo, reqs, backend.complete(reqs)):
            it = items[k]
            base = {"id": f"{it.image}#qa", "image": it.image, "step": "qa", "model": backend.model,
                    "prompt": f"{qa.id}:{qa.hash}", "annotated": it.rec is not None}
            if reply.text is None:
                prov.append({**base, "status": "rejected", "reason": reply.error, "detail": reply.detail})
                continue
            fields = parse_fields(reply.text, ("Question", "Answer"))
            if fields is None:
                prov.append({**base, "status": "rejected", "reason": "unparsable", "reply": reply.text[:500]})
                continue
            q, a = squash(fields["Question"]), fields["Answer"].strip()
            reason, chair = _judge(it, q, a, LLMTrace(qa.static_text(), req.prompt_text(), reply.text), "qa")
            prov.append({**base, "status": "rejected" if reason else "kept", "reason": reason, "chair": chair,
                         "question": q, "answer": a[:500]})
            if not reason:
                samples.append(_sample(f"{it.image}#qa", it.image, q, a))
    return samples, prov
