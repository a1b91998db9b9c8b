"""Evolution settings: operator weights, thresholds, caps and balance. Defaults here; `--config FILE.yaml`
overrides any subset (strict: an unknown key is an error naming it). The whole config is hashed into run.json
and every provenance record, so a changed setting never mixes into a resumed run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

RULE_OPERATORS = ("count", "exist", "position", "size", "choice", "knowledge", "multihop", "premise", "ocr",
                  "color")
LLM_OPERATORS = ("llm_knowledge", "llm_deepen", "llm_format", "llm_breadth", "llm_paraphrase")
# Objects less visible than this are not counted or referred to (single images, sets and clips alike:
# kanva/data/sequence_facts.py uses it as its default); counting questions go up to MAX_COUNT instances.
MIN_VISIBLE = 0.3
MAX_COUNT = 10


def _default_weights() -> dict[str, float]:
    # Knowledge-bearing operators weigh most: they are what Kanva adds over plain annotation templates.
    return {
        "count": 1.0, "exist": 1.0, "position": 1.0, "size": 0.6, "choice": 1.0, "knowledge": 2.0,
        "multihop": 1.5, "premise": 0.6, "ocr": 1.0, "color": 0.8,
        "llm_knowledge": 1.0, "llm_deepen": 1.0, "llm_format": 0.6, "llm_breadth": 0.6, "llm_paraphrase": 0.6,
    }


def _default_sequence_weights() -> dict[str, float]:
    # Operators over multi-image sets and clips (`kanva data evolve --kind set|clip`); knowledge weighs most.
    return {
        "set_which": 1.0, "set_count": 1.0, "set_diff": 1.0, "set_change": 1.0, "set_knowledge": 2.0,
        "clip_motion": 1.0, "clip_order": 1.0, "clip_leave": 1.0, "clip_count": 1.0, "clip_occlusion": 0.6,
        "clip_knowledge": 2.0,
    }


@dataclass
class EvolveConfig:
    weights: dict[str, float] = field(default_factory=_default_weights)
    sequence_weights: dict[str, float] = field(default_factory=_default_sequence_weights)
    # POPE's three ways to draw an absent object; each existence pair draws one of them.
    exist_strategies: list[str] = field(default_factory=lambda: ["random", "popular", "adversarial"])
    mc_circular: bool = False  # emit all four circular rotations of each multiple-choice question
    # How multiple-choice answers are written: "letter" ("B") or "option" ("blue (B)"); see kanva.data.unit.
    mc_answer: Literal["letter", "option"] = "letter"
    focus_bias: float = 0.7  # probability to ask about the parent's objects when they qualify
    min_visible: float = MIN_VISIBLE  # objects less visible than this are not counted or referred to
    max_count: int = MAX_COUNT  # counting questions up to this many instances
    # "Is there <property> in the image?" (knowledge.exists) draws its property among the KB's facts ("an animal
    # that eats only plants") whenever one applies, and among hypernyms ("any chordate") only otherwise. Off, both
    # are drawn alike, and hypernyms are most of the phrases (57 of 69 in the quickstart's world).
    knowledge_facts_first: bool = False
    # False: evolution without the knowledge base, the quickstart's `evolved-noknow` arm. The operators see an
    # empty KB, so every one that reads it is off (knowledge questions, multi-hop chains, the LLM's knowledge
    # operator and its fact lines) and multiple-choice distractors skip KB siblings for co-occurring and
    # popular absent categories; rounds, weights of the rest, balance, caps and dedup are unchanged, so each
    # lineage still gets one candidate per round.
    knowledge: bool = True
    size_ratio: float = 2.0  # "which looks larger" only when the areas differ at least this much
    no_gain_jaccard: float = 0.85  # child vs parent token Jaccard at or above this: no gain
    near_dup_jaccard: float = 0.8  # MinHash estimate at or above this: near duplicate (same image)
    minhash_perms: int = 128
    cap_per_template_per_image: int = 3
    cap_per_image: int = 40  # evolved units per image
    max_template_share: float = 0.25  # no template above this share of all evolved units
    balance_yes_no: bool = True
    balance_letters: bool = True
    keep_seeds: bool = True  # the input samples go to the output too
    pack: int = 1  # evolved units per output sample (turns of one conversation, same image)
    # An operator (one with a `follow_up` question: position) that asks `follow_up_turns` more questions, as
    # turns after the unit's own, in the sample of every evolved unit of another operator whose image it applies
    # to: more questions of one kind at a tenth of a sample's tokens each. Follow-up turns are balanced yes:no
    # among themselves and never count against a template's share, a cap or the dedup of other units. Off by
    # default (docs/experiments/2026-12-07-position-follow-up-turns-on-val.md).
    follow_up: str | None = None
    follow_up_turns: int = 1
    # The relations the position operator asks (of "to the left of", "to the right of", "above", "below"); None:
    # all four. A pair with none of them clearly holding is not asked about.
    position_relations: list[str] | None = None
    # The share of false count and colour claims that name a value the reader must look at the object to reject:
    # the count or colour of another object in the same image (its word is in the scene, bound to something
    # else), else, for a count, one off. The rest draw any wrong value, which a reader can often reject by the
    # word alone ("six" where no scene goes past three). 0: all drawn so.
    hard_false_claims: float = 0.0
    # The share of count questions recast as multiple choice whose options spell the numbers as words ("two")
    # instead of digits ("2"). An option-naming answer (`mc_answer: option`) names the option as written, and a
    # model that only ever read digit options answers a digit and copies a wrong letter where the options are
    # words (docs/experiments/2026-12-08-count-options-spelled-as-words.md). 0: digits only.
    count_option_words: float = 0.0
    judge: bool = False  # ask the LLM to judge each LLM-made candidate (improved? needs the image?)
    llm_max_tokens: int = 160
    llm_temperature: float = 0.0
    chunk_size: int = 64  # images per resumable chunk

    def record(self) -> dict:
        """The settings as recorded (run.json, digest). A setting added after runs were recorded enters the
        record only when it differs from its default, so existing runs keep their digests, their output bytes
        and their resumability."""
        d = asdict(self)
        for k, default in LATER_DEFAULTS.items():
            if d[k] == default:
                del d[k]
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()[:16]


# Settings added after the record format was fixed, with the default that leaves them out of it.
LATER_DEFAULTS = {"knowledge": True, "sequence_weights": _default_sequence_weights(), "mc_answer": "letter",
                  "follow_up": None, "follow_up_turns": 1,
                  "position_relations": None, "hard_false_claims": 0.0, "count_option_words": 0.0}
