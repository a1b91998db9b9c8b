"""Questions about one scene, true or false by construction from its annotations and the KB.

`yes_no(scene, ...)` gives per MME subtask one question whose answer is yes and one whose answer is no
(MME pairs two questions per image); `choices(scene, ...)` gives MMBench-style multiple choice questions.
A subtask the scene cannot support (no text for OCR, no single-instance pair for position, ...) is left
out for that scene; the caller counts what it wrote.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kanva.knowledge.properties import KnowledgeIndex
from kanva.words import article, number_word, plural
from kanva.eval.synthetic.scenes import VISIBLE, Scene, WorldSplit

MME_SUBTASKS = ("existence", "count", "position", "color", "OCR", "knowledge")

# Several wordings per subtask, so a score measures the skill and not one phrasing learned in training; they
# differ from evolution's (kanva/data/ops) where a natural alternative exists, and the first of each is the
# original benchmark's. A yes/no pair shares its wording (the wording must not tell the answer). The wording
# is drawn with its own RNG, so the questions' content (objects, counts, distractors) does not depend on it.
EXISTENCE = ("Is there {a_x} in this image?", "Does this picture contain {a_x}?", "Is {a_x} visible here?",
             "Would you find {a_x} in this photo?")
# (several, exactly one)
COUNT = (("Are there {n} {p} in this image?", "Is there only one {c} in this image?"),
         ("Does this picture contain exactly {n} {p}?", "Does this picture contain exactly one {c}?"),
         ("Are {n} {p} shown here?", "Is a single {c} shown here?"))
POSITION = ("Is the {a} on the left of the {b} in this image?", "Is the {a} further left than the {b}?",
            "Looking at this picture, is the {a} on the left side of the {b}?")
COLOR = ("Is there {a_col} {col} {c} in this image?", "Does this picture contain {a_col} {col} {c}?",
         "Can {a_col} {col} {c} be seen here?")
OCR = ('Is the text "{t}" written in this image?', 'Does this picture contain the word "{t}"?',
       'Is the word "{t}" printed somewhere in this image?')
KNOWLEDGE = ("Is there {p} in this image?", "Does this picture contain {p}?", "Can {p} be seen here?")
MC_EXISTENCE = ("Which of these objects is in the image?", "Which one of the following can be found in this picture?",
                "Which of the options appears in this photo?")
MC_COUNT = ("How many {p} are in the image?", "What is the number of {p} shown here?", "How many {p} does this picture contain?")
MC_COLOR = ("What color is the {c}?", "The {c} in this picture is which color?", "Which color is the {c} here?")
MC_POSITION = ("Where is the {a}?", "Where is the {a} located?", "What is the position of the {a}?")
MC_OCR = ("Which text is written in the image?", "Which word can be read in this picture?",
          "Which word is printed here?")
MC_KNOWLEDGE = ("Which object in the image is {pred}?", "Which of these, shown in the picture, is {pred}?",
                "In this photo, which object is {pred}?")


@dataclass(frozen=True)
class Choice:
    question: str
    options: tuple[str, ...]
    answer: int  # index into options
    category: str
    l2: str


def _rng(seed: int, scene: Scene, what: str) -> random.Random:
    # Seeded per (seed, image, subtask): a scene's questions do not change when other scenes do.
    return random.Random(f"{seed}:{scene.file_name}:{what}")


def _wording(seed: int, scene: Scene, what: str, table: tuple):
    return _rng(seed, scene, f"{what}:wording").choice(table)


def _absent(scene: Scene, world: WorldSplit) -> list[str]:
    return [c for c in world.vocabulary if c not in scene.present]


def _clear_counts(scene: Scene) -> dict[str, int]:
    """Categories whose every instance is clearly visible: their count is unambiguous."""
    out = {}
    for c in scene.present:
        inst = scene.instances(c)
        if all(o.visible >= VISIBLE for o in inst):
            out[c] = len(inst)
    return dict(sorted(out.items()))


def left_pairs(scene: Scene) -> list[tuple[str, str]]:
    """(a, b): single-instance, clearly visible categories with a wholly left of b."""
    single = [c for c in scene.shown if len(scene.instances(c)) == 1]
    pairs = []
    for a in single:
        for b in single:
            oa, ob = scene.instances(a)[0], scene.instances(b)[0]
            if a != b and oa.bbox[0] + oa.bbox[2] <= ob.bbox[0]:
                pairs.append((a, b))
    return pairs


def _colored(scene: Scene) -> list[tuple[str, str]]:
    """(category, colour) for clearly visible instances with a recorded colour."""
    return sorted({(o.category, o.color) for o in scene.objects if o.color and o.visible >= VISIBLE})


def _knowledge(scene: Scene, kx: KnowledgeIndex | None, rng: random.Random) -> tuple[str, str] | None:
    """(phrase present, phrase absent) for one knowledge question pair, or None."""
    if kx is None:
        return None
    present, shown = scene.present, set(scene.shown)
    yes, no = kx.shown_by(shown), kx.surely_absent(present)
    if not yes or not no:
        return None
    # A pair of the same sort (two facts, or two hypernyms) so the wording does not give the answer away;
    # facts first: they read naturally ("an animal that eats only plants"), WordNet hypernyms less so.
    facts = [(a, b) for a in yes for b in no if a.is_fact and b.is_fact]
    kinds = [(a, b) for a in yes for b in no if not a.is_fact and not b.is_fact]
    pairs = facts or kinds
    a, b = rng.choice(pairs) if pairs else (rng.choice(yes), rng.choice(no))
    return a.phrase, b.phrase


def yes_no(scene: Scene, world: WorldSplit, kx: KnowledgeIndex | None, seed: int) -> dict[str, tuple[str, str]]:
    """subtask -> (question whose answer is yes, question whose answer is no)."""
    out: dict[str, tuple[str, str]] = {}
    absent = _absent(scene, world)
    if scene.shown and absent:
        r = _rng(seed, scene, "existence")
        yes, no = r.choice(scene.shown), r.choice(absent)
        t = _wording(seed, scene, "existence", EXISTENCE)
        out["existence"] = (t.format(a_x=f"{article(yes)} {yes}"), t.format(a_x=f"{article(no)} {no}"))
    counts = _clear_counts(scene)
    if counts:
        r = _rng(seed, scene, "count")
        c = r.choice(sorted(counts))
        n = counts[c]
        wrong = r.choice([m for m in (n - 1, n + 1, n + 2) if m >= 1 and m != n])
        many, one = _wording(seed, scene, "count", COUNT)

        def claim(m: int) -> str:
            return many.format(n=number_word(m), p=plural(c)) if m > 1 else one.format(c=c)  # "two dogs", "one dog"

        out["count"] = (claim(n), claim(wrong))
    pairs = left_pairs(scene)
    if pairs:
        r = _rng(seed, scene, "position")
        a, b = r.choice(pairs)
        t = _wording(seed, scene, "position", POSITION)
        out["position"] = (t.format(a=a, b=b), t.format(a=b, b=a))
    colored = _colored(scene)
    if colored:
        r = _rng(seed, scene, "color")
        c, col = r.choice(colored)
        # "no" only for a colour no instance of c has, and only when every instance has a recorded colour
        if all(o.color for o in scene.instances(c)):
            wrong = [x for x in world.colors if x not in {o.color for o in scene.instances(c)}]
            if wrong:
                col2 = r.choice(wrong)
                t = _wording(seed, scene, "color", COLOR)
                out["color"] = (t.format(a_col=article(col), col=col, c=c), t.format(a_col=article(col2), col=col2, c=c))
    if scene.texts:
        others = [t for t in world.texts if t not in scene.texts]
        if others:
            r = _rng(seed, scene, "OCR")
            yes, no = r.choice(sorted(scene.texts)), r.choice(others)
            t = _wording(seed, scene, "OCR", OCR)
            out["OCR"] = (t.format(t=yes), t.format(t=no))
    k = _knowledge(scene, kx, _rng(seed, scene, "knowledge"))
    if k is not None:
        t = _wording(seed, scene, "knowledge", KNOWLEDGE)
        out["knowledge"] = (t.format(p=k[0]), t.format(p=k[1]))
    return out


def _mc(rng: random.Random, right: str, wrong: list[str], k: int, question: str, category: str, l2: str) -> Choice:
    opts = [right] + rng.sample(wrong, min(k - 1, len(wrong)))
    rng.shuffle(opts)
    return Choice(question, tuple(opts), opts.index(right), category, l2)


def choices(scene: Scene, world: WorldSplit, kx: KnowledgeIndex | None, seed: int) -> list[Choice]:
    out = []
    absent = _absent(scene, world)
    if scene.shown and len(absent) >= 3:
        r = _rng(seed, scene, "mc-existence")
        out.append(_mc(r, r.choice(scene.shown), absent, 4, _wording(seed, scene, "mc-existence", MC_EXISTENCE),
                       "object_existence", "coarse_perception"))
    counts = _clear_counts(scene)
    if counts:
        r = _rng(seed, scene, "mc-count")
        c = r.choice(sorted(counts))
        n = counts[c]
        lo = max(1, n - r.randint(0, 3))
        nums = [number_word(m) for m in range(lo, lo + 4)]
        stem = _wording(seed, scene, "mc-count", MC_COUNT).format(p=plural(c))
        out.append(_mc(r, number_word(n), [x for x in nums if x != number_word(n)], 4, stem,
                       "object_counting", "fine-grained_single_instance"))
    colored = [(c, col) for c, col in _colored(scene) if len(scene.instances(c)) == 1]
    if colored and len(world.colors) >= 3:
        r = _rng(seed, scene, "mc-color")
        c, col = r.choice(colored)
        out.append(_mc(r, col, [x for x in world.colors if x != col], 4, _wording(seed, scene, "mc-color", MC_COLOR).format(c=c),
                       "attribute_recognition", "fine-grained_single_instance"))
    pairs = left_pairs(scene)
    if pairs:
        r = _rng(seed, scene, "mc-position")
        a, b = r.choice(pairs)
        where = _wording(seed, scene, "mc-position", MC_POSITION)
        if r.random() < 0.5:  # ask about either object, so "left" is not always the answer
            out.append(_mc(r, f"on the left of the {b}", [f"on the right of the {b}"], 2, where.format(a=a),
                           "spatial_relationship", "fine-grained_cross_instance"))
        else:
            out.append(_mc(r, f"on the right of the {a}", [f"on the left of the {a}"], 2, where.format(a=b),
                           "spatial_relationship", "fine-grained_cross_instance"))
    if scene.texts:
        others = [t for t in world.texts if t not in scene.texts]
        if len(others) >= 2:
            r = _rng(seed, scene, "mc-ocr")
            out.append(_mc(r, r.choice(sorted(scene.texts)), others, 4, _wording(seed, scene, "mc-ocr", MC_OCR), "ocr",
                           "fine-grained_single_instance"))
    if kx is not None:
        r = _rng(seed, scene, "mc-knowledge")
        cands = []
        for p in kx.properties:
            if not kx.decidable(p, scene.present):
                continue
            # right: a visible member; distractors: present objects without the property (needs the
            # knowledge) and absent members (needs the image). No other present holder is offered.
            wrong = sorted((scene.present - p.holders) | (p.members - scene.present))
            for c in sorted(p.members & set(scene.shown)):
                if wrong:
                    cands.append((c, p, wrong))
        if cands:
            c, p, wrong = r.choice(cands)
            out.append(_mc(r, c, wrong, 4, _wording(seed, scene, "mc-knowledge", MC_KNOWLEDGE).format(pred=p.predicate),
                           "world_knowledge",
                           "knowledge_reasoning"))
    return out
