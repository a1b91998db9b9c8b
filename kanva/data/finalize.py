"""Global balance over all kept units, then the output LLaVA samples.

Runs on the whole set (after all chunks, or after merging shards), and depends only on the set, never on its
order: units are sorted by (image id, unit id) and every choice of what to drop uses a hash-derived key. So
a sharded run merged equals an unsharded run, byte for byte.

1. Template share cap: no template above `max_template_share` of the evolved units.
2. Yes:no balance: drop the excess of the majority answer among yes/no units.
3. Letter balance: multiple-choice answers are spread exactly uniformly over A-D by rotating options
   (a rotation keeps the options' circular order; circular-evaluation groups already cover every letter).

Follow-up turns (EvolveConfig.follow_up: units with `params.follows`) stand apart: they go after the unit
they follow, so they leave with it, and they are balanced yes:no among themselves, never counted in 1 or 2.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from kanva.data.config import EvolveConfig
from kanva.data.rng import stable_order_key
from kanva.data.unit import LETTERS, Unit, turns


def _group(u: Unit) -> str:
    """The rotations of one circular question (ids `base.k`) are dropped together; any other unit alone."""
    return u.id.rsplit(".", 1)[0] if "rotation" in u.params else u.id


def _drop(units: list[Unit], n: int, reason: str, records: list[dict]) -> set[str]:
    """Drop at least n of `units`, whole circular groups at a time: the groups with the highest order keys."""
    if n <= 0:
        return set()
    groups: dict[str, list[str]] = defaultdict(list)
    for u in units:
        groups[_group(u)].append(u.id)
    gone: set[str] = set()
    for key in sorted(groups, key=stable_order_key, reverse=True):
        if len(gone) >= n:
            break
        gone.update(groups[key])
    records += [{"stage": "finalize", "id": uid, "status": "rejected", "reason": reason} for uid in sorted(gone)]
    return gone


def balance(units: list[Unit], cfg: EvolveConfig) -> tuple[list[Unit], list[dict]]:
    units = sorted(units, key=lambda u: (u.image_id, u.id))
    follows = [u for u in units if "follows" in u.params]
    units, records = _balance(units=[u for u in units if "follows" not in u.params], cfg=cfg)
    kept = {u.id for u in units}
    orphans = [u for u in follows if u.params["follows"] not in kept]
    records += [{"stage": "finalize", "id": u.id, "status": "rejected", "reason": "follows_dropped"}
                for u in orphans]
    follows = [u for u in follows if u.params["follows"] in kept]
    if cfg.balance_yes_no:
        gone = _balance_yes_no(follows, records)
        follows = [u for u in follows if u.id not in gone]
    return sorted(units + follows, key=lambda u: (u.image_id, u.id)), records


def _balance_yes_no(units: list[Unit], records: list[dict]) -> set[str]:
    yes = [u for u in units if u.fmt == "yesno" and u.answer.lower().startswith("yes")]
    no = [u for u in units if u.fmt == "yesno" and u.answer.lower().startswith("no")]
    more = yes if len(yes) > len(no) else no
    return _drop(more, abs(len(yes) - len(no)), "balance_yes_no", records)


def _balance(units: list[Unit], cfg: EvolveConfig) -> tuple[list[Unit], list[dict]]:
    records: list[dict] = []
    if units and cfg.max_template_share < 1.0:
        limit = max(1, int(cfg.max_template_share * len(units)))
        by_t: dict[str, list[Unit]] = defaultdict(list)
        for u in units:
            by_t[u.template].append(u)
        gone: set[str] = set()
        for t in sorted(by_t):
            gone |= _drop(by_t[t], len(by_t[t]) - limit, "cap_template_share", records)
        units = [u for u in units if u.id not in gone]
    if cfg.balance_yes_no:
        gone = _balance_yes_no(units, records)
        units = [u for u in units if u.id not in gone]
    if cfg.balance_letters:
        mc = [u for u in units if u.fmt == "mc" and "rotation" not in u.params and len(u.options) == 4]
        for i, u in enumerate(sorted(mc, key=lambda u: stable_order_key("letter", u.id))):
            target = i % 4
            have = LETTERS.index(u.answer)
            if have != target:
                shift = have - target  # rotate left by `shift`: the correct option moves to `target`
                u.options = u.options[shift:] + u.options[:shift]
                records.append({"stage": "finalize", "id": u.id, "op": "reletter", "from": u.answer,
                                "to": LETTERS[target]})
                u.answer = LETTERS[target]
    return units, records


def to_samples(units: list[Unit], pack: int, mc_answer: str = "letter") -> list[dict]:
    """One sample per unit, or up to `pack` units of the same image as turns of one conversation, each unit's
    follow-up turns right after it; multiple-choice answers written as `mc_answer` says (kanva.data.unit.MC_ANSWERS)."""
    after: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        if "follows" in u.params:
            after[u.params["follows"]].append(u)
    units = [u for u in units if "follows" not in u.params]

    def sample(chunk: list[Unit], sid: str) -> dict:
        withf = [x for u in chunk for x in (u, *after.get(u.id, ()))]
        return chunk[0].to_sample(mc_answer) if len(withf) == 1 else turns(withf, sid, mc_answer)

    if pack <= 1:
        return [sample([u], u.id) for u in units]
    by_image: dict[int, list[Unit]] = defaultdict(list)
    for u in units:
        by_image[u.image_id].append(u)
    out = []
    for iid in sorted(by_image):
        group = by_image[iid]
        for k in range(0, len(group), pack):
            chunk = group[k : k + pack]
            out.append(sample(chunk, f"{chunk[0].id}+{len(chunk)}"))
    return out


def letter_counts(units: list[Unit]) -> Counter:
    return Counter(u.answer for u in units if u.fmt == "mc")
