"""Elimination: every candidate is checked, and a rejected one gets exactly one reason code.

Checks run cheapest and most certain first; the first that fails names the reason. Rule-made candidates go
through the same checks as LLM-made ones (they should pass, and the report shows it when they do not).
The reason codes (also used by dedup, balance and the LLM backends) are listed in REASONS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from kanva.data.coco import ImageRec
from kanva.data.ops.geometry import norm_box
from kanva.data.text import jaccard, ngrams, normalize, tokens, words
from kanva.data.unit import FORMATS, LETTERS, Unit
from kanva.data.vocab import mentions, unquote
from kanva.words import NUMBER_VALUES

REASONS = {
    # elimination (this module)
    "echo": "the model repeated its prompt",
    "unparsable": "the reply did not follow the requested format",
    "refusal": "the reply refuses or apologises instead of answering",
    "leak": "mentions captions, boxes, annotations or other words of the prompt",
    "degenerate": "empty, too short or long, repetitive or not text",
    "malformed_mc": "multiple choice without 4 distinct options and one valid letter",
    "bad_box": "coordinates that match no box of the image",
    "hallucination": "names an object found in neither the annotations nor the captions",
    "wrong_count": "states a number of objects that differs from the annotations",
    "blind": "answerable without the image",
    "slot_lost": "a paraphrase lost a name, number or letter of the original",
    "no_gain": "too similar to its parent (token Jaccard at or above the threshold)",
    "not_improved": "the judge found no improvement over the parent",
    # dedup and caps (evolve loop) and balance (finalize)
    "duplicate": "same normalized text as a kept unit of the same image",
    "near_duplicate": "MinHash estimate of 3-gram Jaccard at or above the threshold with a kept unit",
    "cap_template": "the image already has the maximum number of units from this template",
    "cap_image": "the image already has the maximum number of evolved units",
    "cap_template_share": "this template exceeds its maximum share of the evolved set",
    "balance_yes_no": "dropped to bring yes and no answers to 1:1",
    "group": "a unit of the same group (existence pair, circular rotations) was rejected",
    # LLM transport (see llm/base.py)
    "llm_timeout": "the endpoint did not answer in time, after retries",
    "llm_http_error": "the endpoint answered an HTTP error, after retries",
    "llm_bad_response": "the endpoint's answer was not a valid chat completion, after retries",
    "llm_connection": "the endpoint could not be reached, after retries",
    "llm_empty": "the model returned no text",
}

_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i cannot|i can ?not|i can't|i am unable|i'm unable|as an ai|"
    r"as a language model|i do not have (?:access|the ability)|i don't have (?:access|the ability)|"
    r"unable to (?:see|view|access) the image|without (?:seeing|viewing) the image)\b", re.I)
_LEAK = re.compile(  # words about the material an LLM was given, not about the image
    r"\b(the captions?|captioned|bounding[- ]box(?:es)?|bbox(?:es)?|annotations?|annotated|coordinates?|"
    r"(?:given|provided|listed) (?:information|description|facts?|list|objects)|"
    r"information (?:above|provided|given)|knowledge (?:above|provided|listed|base)|facts? (?:above|provided|listed)|"
    r"what people said|as described above|the prompt|json|fractions of the image)\b", re.I)
_LEAK_ANSWER = re.compile(r"\bcaptions?\b", re.I)  # "Write a caption" is a fine request; an answer citing one is not
_TEMPLATE = re.compile(r"<(?:the|one|its|question|answer|wrong|correct)\b[^>]*>|\[(?:kb|own)\]|\$[a-z_]+|"
                       r"^\s*(?:question|answer|statement|verdict|sentence|blank|correct|wrong|knowledge)\s*:",
                       re.I | re.M)
_BOX = re.compile(r"[\[(]\s*(-?\d*\.?\d+)\s*,\s*(-?\d*\.?\d+)\s*,\s*(-?\d*\.?\d+)\s*,\s*(-?\d*\.?\d+)\s*[\])]")
_ALTERNATIVE = re.compile(r"\bor\b", re.I)

MAX_QUESTION_CHARS = 600
MAX_ANSWER_CHARS = 1500


@dataclass(frozen=True)
class LLMTrace:
    """What an LLM candidate came from: for echo and leak checks against the prompt."""

    prompt_static: str  # the prompt's own words (fields removed)
    prompt_full: str  # the prompt as sent
    reply: str


def is_echo(reply: str, trace: LLMTrace, run: int = 8, share: float = 0.6) -> bool:
    """The reply repeats the prompt: a run of `run` instruction words, or mostly 5-grams of the full prompt."""
    rw = words(reply)
    static = set(ngrams(words(trace.prompt_static), run))
    if any(g in static for g in ngrams(rw, run)):
        return True
    grams = ngrams(rw, 5)
    if len(rw) >= 10 and grams:
        full = set(ngrams(words(trace.prompt_full), 5))
        return sum(g in full for g in grams) / len(grams) >= share
    return False


def is_degenerate(question: str, answer: str) -> bool:
    """Empty, too short or too long, mostly non-text, or looping (many repeated 3-grams, few distinct words)."""
    q, a = question.strip(), answer.strip()
    if not q or not a or len(q) > MAX_QUESTION_CHARS or len(a) > MAX_ANSWER_CHARS:
        return True
    if len(words(q)) < 3:
        return True
    return _looping(q) or _looping(a)


@lru_cache(maxsize=1 << 16)
def _looping(text: str) -> bool:
    toks = words(text)
    if sum(map(len, toks)) < 0.5 * (len(text) - text.count(" ")):  # mostly symbols, not words
        return True
    if len(toks) >= 20 and len(set(toks)) / len(toks) < 0.3:
        return True
    grams = ngrams(toks, 3)
    return len(grams) >= 9 and 1 - len(set(grams)) / len(grams) >= 0.4


def malformed_mc(unit: Unit) -> bool:
    if unit.fmt != "mc":
        return False
    opts = [normalize(o) for o in unit.options]
    return (len(unit.options) != 4 or any(not o for o in opts) or len(set(opts)) != 4
            or unit.answer not in LETTERS or not unit.question.strip()
            or bool(re.search(r"^\s*[A-D][.)] ", unit.question, re.M)))


def bad_boxes(text: str, rec: ImageRec, tol: float = 0.02) -> bool:
    """Coordinates in `text` that match no object or text box (normalized x1,y1,x2,y2 or pixel x,y,w,h)."""
    boxes = [o.bbox for o in rec.objects] + [t.bbox for t in rec.texts]
    for m in _BOX.finditer(text):
        v = tuple(float(g) for g in m.groups())
        ok = False
        for b in boxes:
            nb = norm_box(b, rec)
            if max(abs(x - y) for x, y in zip(v, nb)) <= tol:
                ok = True
                break
            if max(abs(x - y) for x, y in zip(v, b)) <= 2.0:  # pixel [x, y, w, h] as in COCO
                ok = True
                break
        if not ok:
            return True
    return False


def hallucinated(unit: Unit, rec: ImageRec) -> list[str]:
    """Objects asserted (not negated) in the unit that nothing allows.

    Allowed: annotated objects, objects the captions mention, objects the unit names on purpose as absent,
    words printed in the image, and objects named inside the KB facts or slot values the unit was built from
    ("used for driving people around" is knowledge, not a claim that people are in the picture).
    """
    # In multiple choice only the correct option is a claim; the others are wrong by design.
    claims = [unit.options[LETTERS.index(unit.answer)]] if unit.fmt == "mc" and unit.answer in LETTERS[
        : len(unit.options)] else list(unit.options)
    found = [m.category for part in (unit.question, unit.answer, *claims) for m in mentions(part) if not m.negated]
    suspects = [c for c in found if c not in rec.counts]
    if not suspects:  # the common case: only annotated objects are named
        return []
    allowed = rec.caption_mentions | set(unit.absent)
    for t in rec.texts:
        allowed |= {m.category for m in mentions(t.text)}
    for f in unit.facts:
        allowed |= {m.category for m in mentions(f[2])}
    for v in unit.slots.values():
        if isinstance(v, str):
            allowed |= {m.category for m in mentions(v)}
    return [c for c in suspects if c not in allowed]


_TOTAL_CUES = frozenset("there are is shows show showing contains contain containing see sees with has have".split())


def wrong_counts(unit: Unit, rec: ImageRec) -> list[str]:
    """Categories stated with a number that contradicts the annotation count.

    More than annotated is always wrong. Fewer is wrong only as a claim about all of them ("there are two
    dogs", "with two dogs"), not as a subset ("two brown dogs", "two umbrellas are purple and one is
    yellow"): a modifier between number and noun, or no total-claim word before the number, reads as a subset.
    """
    out = []
    parts = [unit.question, unit.answer]
    if unit.fmt == "yesno" and unit.answer.strip().lower().startswith("no"):
        parts = [unit.answer]  # "Are there three dogs?" - "No" denies the number the question asks about
    for part in parts:
        toks = words(unquote(part))  # the tokens mentions(part) positions refer to
        for m in mentions(part):
            if m.category in unit.absent or m.negated:
                continue
            for back in (1, 2):  # "two dogs", "two brown dogs"
                j = m.position - back
                if j < 0:
                    break
                tok = toks[j]
                n = NUMBER_VALUES.get(tok, int(tok) if tok.isdigit() else None)
                if n is None:
                    continue
                have = rec.counts.get(m.category, 0)
                exact = n == 1 and j > 0 and toks[j - 1] in ("only", "exactly", "just")
                if n < 2 and not exact:
                    break
                if n > have or (n < have and (exact or (back == 1 and any(
                        t in _TOTAL_CUES for t in toks[max(0, j - 2) : j])))):
                    out.append(m.category)
                break
    return out


def is_blind(unit: Unit) -> bool:
    """Answerable without the image, by two cheap signs.

    1. It uses knowledge about an object and names that object: "What is the dog in the picture used for?"
       needs no picture. (Our knowledge operators point at objects instead of naming them.)
    2. A short or open answer that the question already contains, when the question offers no alternatives:
       "What color is the red car?" -> "red".
    """
    if unit.facts and unit.fmt != "mc":
        subjects = {f[0] for f in unit.facts}
        named = {m.category for m in mentions(unit.question) if not m.negated}
        if subjects and subjects <= named and not _ALTERNATIVE.search(unit.question):
            # "Which object here is a kind of X?" names no subject; counting over a kind needs the image.
            if not unit.template.endswith(".count"):
                return True
    if unit.fmt in ("short", "open"):
        a = normalize(unit.answer)
        if a and len(a) > 2 and f" {a} " in f" {normalize(unit.question)} " and not _ALTERNATIVE.search(unit.question):
            return True
    return False


def slot_lost(unit: Unit, parent: Unit) -> bool:
    """A paraphrase must keep the parent's slot values (names, numbers, words) verbatim."""
    q = unit.question.lower()
    for v in parent.slots.values():
        if isinstance(v, str) and v and v.lower() not in q:
            return True
    return False


@lru_cache(maxsize=1 << 16)
def _phrase_reason(text: str, is_answer: bool) -> str | None:
    """Refusal and leak checks of one text (cached: rule templates repeat texts across images)."""
    if _REFUSAL.search(text):
        return "refusal"
    if _LEAK.search(text) or _TEMPLATE.search(text) or (is_answer and _LEAK_ANSWER.search(text)):
        return "leak"
    return None


def _text_reason(question: str, answer: str, options: tuple[str, ...], fmt: str) -> str | None:
    """The checks that depend on the text alone."""
    if fmt not in FORMATS:
        return "unparsable"
    reasons = [_phrase_reason(question, False), _phrase_reason(answer, True)]
    reasons += [_phrase_reason(o, False) for o in options]
    for r in ("refusal", "leak"):
        if r in reasons:
            return r
    if is_degenerate(question, answer):
        return "degenerate"
    return None


def check_text(question: str, answer: str, trace: LLMTrace | None = None) -> str | None:
    """The checks that need no annotations (for images no annotation file has): echo, refusal, leak, degenerate."""
    if trace is not None and is_echo(trace.reply, trace):
        return "echo"
    return _text_reason(question, answer, (), "open")


def check(unit: Unit, rec: ImageRec, parent: Unit | None, trace: LLMTrace | None = None,
          no_gain_jaccard: float = 0.85, paraphrase: bool = False) -> str | None:
    """The reason code of the first failed check, or None when the unit passes."""
    if trace is not None and is_echo(trace.reply, trace):
        return "echo"
    reason = _text_reason(unit.question, unit.answer, tuple(unit.options), unit.fmt)
    if reason:
        return reason
    if malformed_mc(unit):
        return "malformed_mc"
    if ("[" in unit.question or "(" in unit.question or "[" in unit.answer or "(" in unit.answer) and bad_boxes(
            f"{unit.question}\n{unit.answer}", rec):
        return "bad_box"
    if hallucinated(unit, rec):
        return "hallucination"
    if rec.grounding == "coco" and wrong_counts(unit, rec):  # other images have no counts to check against
        return "wrong_count"
    if is_blind(unit):
        return "blind"
    if paraphrase and parent is not None and slot_lost(unit, parent):
        return "slot_lost"
    if parent is not None and jaccard(tokens(unit.text()), tokens(parent.text())) >= no_gain_jaccard:
        return "no_gain"
    return None
