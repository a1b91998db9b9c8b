"""The evolution loop over one chunk of images: draw operators, eliminate, dedup, cap; provenance for everything.

Per round, every lineage (a seed unit and its accepted descendants) has a head. For each head an operator
whose precondition holds is drawn by weight with the unit's own RNG (seed, image, lineage, round); rule
operators answer at once, LLM operators' requests of the whole chunk go to the backend as one batch. Then, in
a fixed order, each candidate group is eliminated (one reason code), checked against the image's kept units
(exact and MinHash near duplicates) and caps, and either kept (it becomes the lineage's head) or rejected
(the head stays: a failed evolution keeps its parent). Each candidate gets one provenance record.

Nothing here depends on which other images are in the chunk, so output is independent of chunking, sharding
and restarts.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kanva.data.coco import CocoSet, ImageRec
from kanva.data.config import EvolveConfig
from kanva.data.eliminate import LLMTrace, check
from kanva.data.kbview import KBView
from kanva.data.llm.base import Backend
from kanva.data.minhash import MinHasher, NearDupSet
from kanva.data.ops import rule_operators
from kanva.data.ops.base import Context, Draft, Operator
from kanva.data.ops.geometry import RELATIONS
from kanva.data.ops.llm import Job, judge_job, llm_operators, parse_verdict
from kanva.data.rng import derive
from kanva.data.text import normalize
from kanva.data.unit import Unit
from kanva.errors import KanvaError


def unit_of(d: Draft, uid: str, parent: Unit, round_: int, operator: str, params: dict | None = None,
            model: str | None = None, prompt_hash: str | None = None) -> Unit:
    """The unit an operator's draft makes, a child of `parent` (its image, lineage and media)."""
    return Unit(id=uid, image=parent.image, image_id=parent.image_id, question=d.question, answer=d.answer,
                fmt=d.fmt, options=d.options, lineage=parent.lineage, parent=parent.id, round=round_,
                operator=operator, template=d.template, objects=d.objects, absent=d.absent, slots=d.slots,
                facts=[list(f) for f in d.facts], params=d.params if params is None else params, model=model,
                prompt_hash=prompt_hash, media=parent.media)


def unit_fields(u: Unit) -> dict:
    """What a provenance record holds of a unit, beside its id and where it came from."""
    return {"template": u.template, "fmt": u.fmt, "question": u.question, "options": u.options, "answer": u.answer,
            "objects": u.objects, "absent": u.absent, "facts": u.facts, "params": u.params}


@dataclass
class ImageState:
    """The kept units of one image and the indexes that dedup and caps consult."""

    ctx: Context
    heads: dict[str, Unit]  # lineage -> current head (insertion order = seed order)
    exact: set[str] = field(default_factory=set)
    near: NearDupSet | None = None
    per_template: Counter = field(default_factory=Counter)
    evolved: int = 0
    kept: list[Unit] = field(default_factory=list)  # evolved units kept, in acceptance order


@dataclass
class Pending:
    """One lineage's candidate in one round, from draw to decision."""

    state: ImageState
    parent: Unit
    round: int
    unit_seed: int
    operator: str
    drafts: list[Draft] = field(default_factory=list)
    job: Job | None = None
    reason: str | None = None
    detail: str = ""
    units: list[Unit] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    trace: LLMTrace | None = None
    verdicts: list[Any] = field(default_factory=list)


class Evolver:
    """Evolves chunks of (image, seed units). `backend=None` means rule operators only."""

    def __init__(self, coco: CocoSet, kb: KBView, cfg: EvolveConfig, seed: int, rounds: int,
                 backend: Backend | None = None):
        # Without knowledge (EvolveConfig.knowledge) the operators see an empty KB: whatever reads it finds nothing.
        kb = kb if cfg.knowledge else KBView.empty()
        self.coco, self.kb, self.cfg, self.seed, self.rounds, self.backend = coco, kb, cfg, seed, rounds, backend
        self.popular = coco.popular()
        ops: list[Operator] = rule_operators() + (llm_operators() if backend is not None else [])
        self.ops = [(op, cfg.weights.get(op.name, 0.0)) for op in ops]
        self.ops = [(op, w) for op, w in self.ops if w > 0]
        self.follow = self._follow_up_operator(cfg.follow_up, cfg.follow_up_turns)
        asked = cfg.position_relations
        if asked is not None and (not asked or set(asked) - set(RELATIONS)):
            raise KanvaError(f"evolve config: position_relations {asked!r} must be a non-empty list of "
                             f"{list(RELATIONS)}")
        for name in ("hard_false_claims", "count_option_words"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise KanvaError(f"evolve config: {name} {getattr(cfg, name)!r} must be a share in [0, 1]")
        self.hasher = MinHasher(cfg.minhash_perms)
        self.shared: dict = {}  # dataset-level memo shared by every image's Context
        self.config_digest = cfg.digest()

    @staticmethod
    def _follow_up_operator(name: str | None, turns: int) -> Operator | None:
        if name is None:
            return None
        if turns < 1:
            raise KanvaError(f"evolve config: follow_up_turns must be at least 1, got {turns}")
        ops = {op.name: op for op in rule_operators() if op.follow_up is not None}
        if name not in ops:
            raise KanvaError(f"evolve config: follow_up {name!r} is not an operator with a follow-up question; "
                             f"known: {sorted(ops)}")
        return ops[name]

    # -- drawing -------------------------------------------------------------------------------------------
    def _draw(self, ctx: Context, parent: Unit, rng: random.Random) -> tuple[str, list[Draft] | Job] | None:
        """Draw operator then variant by weight among applicable ones; retry without a variant that gave []."""
        g = ctx.rec.grounding  # an image without boxes draws only among operators that need no more than it has
        ops = self.ops if g == "coco" else [(op, w) for op, w in self.ops if g in op.groundings]
        # Operators whose options depend on the image only are asked once per image.
        choices = list(ctx.memo("free_choices", lambda: [(op, w * vw, fn) for op, w in ops if op.parent_free
                                                         for vw, fn in op.options(ctx, parent)]))
        for op, w in ops:
            if not op.parent_free:
                choices += [(op, w * vw, fn) for vw, fn in op.options(ctx, parent)]
        total = sum(w for _, w, _ in choices)
        while choices:
            x = rng.random() * total
            k = 0
            for k, (_, w, _) in enumerate(choices):
                x -= w
                if x < 0:
                    break
            op, w, fn = choices.pop(k)
            total -= w
            out = fn(ctx, parent, rng)
            if out:
                return op.name, out
        return None

    # -- one chunk -----------------------------------------------------------------------------------------
    def new_state(self, rec: ImageRec, seeds: list[Unit]) -> ImageState:
        ctx = Context(rec, self.coco, self.kb, self.cfg, self.popular, shared=self.shared)
        st = ImageState(ctx, {}, near=NearDupSet(self.hasher, self.cfg.near_dup_jaccard))
        for u in seeds:
            st.heads[u.lineage] = u
            key = normalize(u.text())
            if key not in st.exact:  # a repeated seed turn is still a seed; it just is not indexed twice
                st.exact.add(key)
                st.near.add(u.id, self.hasher.signature(u.text()))
            ctx.coverage.update(u.objects)
            ctx.questions.append(u.question)
        return st

    def run_chunk(self, items: list[tuple[ImageRec, list[Unit]]]) -> tuple[list[dict], list[ImageState]]:
        """Evolve every image of the chunk; returns (provenance records, image states with kept units)."""
        states = [self.new_state(rec, seeds) for rec, seeds in items]
        records: list[dict] = []
        for r in range(1, self.rounds + 1):
            pending: list[Pending] = []
            for st in states:
                for lineage, parent in st.heads.items():
                    useed = derive(self.seed, st.ctx.rec.id, lineage, r)
                    rng = random.Random(useed)
                    drawn = self._draw(st.ctx, parent, rng)
                    if drawn is None:
                        continue
                    name, out = drawn
                    p = Pending(st, parent, r, useed, name)
                    if isinstance(out, Job):
                        p.job = out
                    else:
                        p.drafts = out
                    pending.append(p)
            self._run_jobs(pending)
            for p in pending:
                self._materialize(p)
                self._eliminate(p)
            if self.cfg.judge and self.backend is not None:
                self._judge(pending)
            for p in pending:
                self._decide(p)
                records += self._records(p)
        if self.follow is not None:
            for st in states:
                records += self._follow_ups(st)
        return records, states

    def _follow_ups(self, st: ImageState) -> list[dict]:
        """Up to `follow_up_turns` follow-up questions (EvolveConfig.follow_up) per kept unit of another operator,
        where it applies: units `<id>+f1`, `<id>+f2`, ... of operator `<name>.follow_up` (their own row in the
        report) whose `params.follows` names the unit they go after (finalize.to_samples); a question is not asked
        twice in one sample. Their RNG derives from the seed and the unit they follow, so they do not depend on
        the other units."""
        op, out = self.follow, []
        name = f"{op.name}.follow_up"
        for parent in [u for u in st.kept if u.operator != op.name]:
            rng = random.Random(derive(self.seed, parent.image_id, parent.id, "follow_up"))
            asked = {normalize(parent.question)}
            for _ in range(2 * self.cfg.follow_up_turns):  # a repeated draw is drawn again, a few times at most
                if len(asked) > self.cfg.follow_up_turns:
                    break
                drafts = op.follow_up(st.ctx, parent, rng)
                if not drafts:
                    break
                d = drafts[0]
                if normalize(d.question) in asked:
                    continue
                asked.add(normalize(d.question))
                u = unit_of(d, f"{parent.id}+f{len(asked) - 1}", parent, parent.round, name,
                            params={**d.params, "follows": parent.id})
                st.kept.append(u)
                out.append({"id": u.id, "stage": "follow_up", "image": u.image, "image_id": u.image_id,
                            "lineage": u.lineage, "parent": parent.id, "round": u.round, "operator": name,
                            "seed": self.seed, "config": self.config_digest, **unit_fields(u), "status": "kept",
                            "reason": None})
        return out

    def _run_jobs(self, pending: list[Pending]) -> None:
        jobs = [p for p in pending if p.job is not None]
        if not jobs or self.backend is None:
            return
        replies = self.backend.complete([p.job.request for p in jobs])
        for p, reply in zip(jobs, replies):
            if reply.text is None:
                p.reason, p.detail = reply.error or "llm_empty", reply.detail
                continue
            p.trace = LLMTrace(p.job.prompt.static_text(), p.job.request.prompt_text(), reply.text)
            out = p.job.finish(reply.text)
            if isinstance(out, str):
                p.reason = out
            else:
                p.drafts = [out]

    def _materialize(self, p: Pending) -> None:
        lineage = p.parent.lineage
        base = f"{lineage}/r{p.round}"
        n = len(p.drafts)
        model = self.backend.model if p.job is not None and self.backend is not None else None
        prompt_hash = f"{p.job.prompt.id}:{p.job.prompt.hash}" if p.job is not None else None
        for k, d in enumerate(p.drafts):
            p.units.append(unit_of(d, base if n == 1 else f"{base}.{k}", p.parent, p.round, p.operator,
                                   model=model, prompt_hash=prompt_hash))

    def _eliminate(self, p: Pending) -> None:
        if p.reason is not None:
            return
        rec = p.state.ctx.rec
        para = p.job is not None and p.job.paraphrase
        p.reasons = [check(u, rec, p.parent, p.trace, self.cfg.no_gain_jaccard, para) for u in p.units]

    def _judge(self, pending: list[Pending]) -> None:
        todo = [p for p in pending if p.job is not None and p.reason is None and p.units and not any(p.reasons)]
        if not todo:
            return
        reqs = []
        for p in todo:
            rng = random.Random(derive(p.unit_seed, "judge"))
            reqs.append(judge_job(p.state.ctx, p.units[0], p.parent, rng)[1])
        for p, reply in zip(todo, self.backend.complete(reqs)):
            v = parse_verdict(reply.text) if reply.text is not None else None
            p.verdicts = [v]
            if reply.text is None:
                p.reasons = [reply.error or "llm_empty"] * len(p.units)
            elif v is None:
                p.reasons = ["unparsable"] * len(p.units)
            elif v.without_image:
                p.reasons = ["blind"] * len(p.units)
            elif not v.improved:
                p.reasons = ["not_improved"] * len(p.units)

    def _decide(self, p: Pending) -> None:
        """Group semantics: all units of a candidate are kept, or none (the others get reason 'group')."""
        if p.reason is not None or not p.units:
            return
        st = p.state
        if not any(p.reasons):
            texts = [u.text() for u in p.units]
            keys = [normalize(t) for t in texts]
            sigs = [self.hasher.signature(t) for t in texts]
            circular = all("rotation" in u.params for u in p.units) and len(p.units) > 1
            for i, u in enumerate(p.units):
                if keys[i] in st.exact:
                    p.reasons[i] = "duplicate"
                elif (not circular or i == 0) and st.near.match(sigs[i]) is not None:
                    p.reasons[i] = "near_duplicate"
            template = p.units[0].template
            if not any(p.reasons):
                if st.per_template[template] >= self.cfg.cap_per_template_per_image:
                    p.reasons = ["cap_template"] * len(p.units)
                elif st.evolved >= self.cfg.cap_per_image:
                    p.reasons = ["cap_image"] * len(p.units)
            if not any(p.reasons):
                for u, key, sig in zip(p.units, keys, sigs):
                    st.exact.add(key)
                    st.near.add(u.id, sig)
                    st.kept.append(u)
                    st.ctx.coverage.update(u.objects)
                    st.ctx.questions.append(u.question)
                st.per_template[template] += 1
                st.evolved += 1
                st.heads[p.parent.lineage] = p.units[0]
                return
        if any(p.reasons):
            p.reasons = [r or "group" for r in p.reasons]

    def _records(self, p: Pending) -> list[dict]:
        common = {"image": p.parent.image, "image_id": p.parent.image_id, "lineage": p.parent.lineage,
                  "parent": p.parent.id, "round": p.round, "operator": p.operator, "seed": self.seed,
                  "unit_seed": p.unit_seed, "config": self.config_digest}
        if p.job is not None:
            common["model"] = self.backend.model if self.backend is not None else None
            common["prompt"] = f"{p.job.prompt.id}:{p.job.prompt.hash}"
        if p.reason is not None or not p.units:
            rec = {"id": f"{p.parent.lineage}/r{p.round}", **common, "status": "rejected",
                   "reason": p.reason or "unparsable"}
            if p.detail:
                rec["detail"] = p.detail
            if p.trace is not None:
                rec["reply"] = p.trace.reply[:500]
            return [rec]
        out = []
        for i, u in enumerate(p.units):
            reason = p.reasons[i] if p.reasons else None
            rec = {"id": u.id, **common, **unit_fields(u), "status": "rejected" if reason else "kept",
                   "reason": reason}
            if p.verdicts and p.verdicts[0] is not None:
                v = p.verdicts[0]
                rec["judge"] = {"improved": v.improved, "difficulty": v.difficulty, "without_image": v.without_image}
            if reason and p.trace is not None:
                rec["reply"] = p.trace.reply[:500]
            out.append(rec)
        return out
