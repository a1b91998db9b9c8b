"""Human-like captions written from an image's scene graph: what is there, how many, where, what colour,
what the signs say.

Seven caption styles (an inventory, "there are ...", left to right, a spatial relation, a count, the
colours and signs, a short phrase), each with its own wordings and synonyms; an image gets several
different styles, in an order drawn from its own generator. Every statement is read off the annotations
(counts, box centres, recorded colours and words), never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kanva.words import number_word, with_article

# category -> (singular, plural) wordings; the first is the plain one.
NOUNS: dict[str, list[tuple[str, str]]] = {
    "person": [("person", "people")],
    "bicycle": [("bicycle", "bicycles"), ("bike", "bikes")],
    "motorcycle": [("motorcycle", "motorcycles"), ("motorbike", "motorbikes")],
    "airplane": [("airplane", "airplanes"), ("plane", "planes")],
    "bus": [("bus", "buses")],
    "truck": [("truck", "trucks"), ("lorry", "lorries")],
    "boat": [("boat", "boats"), ("sailboat", "sailboats")],
    "sheep": [("sheep", "sheep")],
    "backpack": [("backpack", "backpacks"), ("rucksack", "rucksacks")],
    "handbag": [("handbag", "handbags"), ("purse", "purses")],
    "frisbee": [("frisbee", "frisbees"), ("flying disc", "flying discs")],
    "skis": [("pair of skis", "pairs of skis")],
    "sports ball": [("ball", "balls"), ("soccer ball", "soccer balls")],
    "wine glass": [("wine glass", "wine glasses"), ("glass of wine", "glasses of wine")],
    "cup": [("cup", "cups"), ("teacup", "teacups")],
    "knife": [("knife", "knives")],
    "sandwich": [("sandwich", "sandwiches")],
    "broccoli": [("head of broccoli", "heads of broccoli"), ("broccoli floret", "broccoli florets")],
    "hot dog": [("hot dog", "hot dogs")],
    "pizza": [("slice of pizza", "slices of pizza"), ("pizza slice", "pizza slices")],
    "donut": [("donut", "donuts"), ("doughnut", "doughnuts")],
    "cake": [("cake", "cakes"), ("birthday cake", "birthday cakes")],
    "couch": [("couch", "couches"), ("sofa", "sofas")],
    "potted plant": [("potted plant", "potted plants"), ("houseplant", "houseplants")],
    "tv": [("TV", "TVs"), ("television", "televisions")],
    "mouse": [("computer mouse", "computer mice"), ("mouse", "mice")],
    "cell phone": [("cell phone", "cell phones"), ("phone", "phones"), ("smartphone", "smartphones")],
    "clock": [("clock", "clocks"), ("alarm clock", "alarm clocks")],
    "scissors": [("pair of scissors", "pairs of scissors")],
    "toothbrush": [("toothbrush", "toothbrushes")],
}

# scene -> (noun phrases, "where" phrases)
SCENES: dict[str, tuple[list[str], list[str]]] = {
    "kitchen": (["a kitchen", "a kitchen counter", "a home kitchen"], ["in a kitchen", "on a kitchen counter", "in the kitchen"]),
    "street": (["a city street", "a street scene", "a busy street"], ["on a city street", "in the street", "on a busy road"]),
    "farm": (["a farm", "a farmyard", "a green pasture"], ["on a farm", "in a pasture", "in a farm field"]),
    "savanna": (["the savanna", "a grassy plain", "a safari scene"], ["on the savanna", "on a dry grassy plain", "in the African savanna"]),
    "forest": (["a forest clearing", "the edge of a pine forest"], ["near a pine forest", "in a forest clearing", "by the woods"]),
    "beach": (["a beach", "a sunny beach", "the seaside"], ["on the beach", "on a sunny beach", "by the sea"]),
    "harbor": (["a harbor", "a lake with a pier", "the waterfront"], ["in a harbor", "on the water by a pier", "at the waterfront"]),
    "park": (["a park", "a city park", "a green lawn"], ["in a park", "on the grass in a park", "in a city park"]),
    "ski slope": (["a ski slope", "a snowy mountainside"], ["on a ski slope", "in the snowy mountains", "on the snow"]),
    "airport": (["an airport", "an airfield"], ["at an airport", "at the airport", "on an airfield"]),
    "train station": (["a train station", "a railway platform"], ["at a train station", "on a railway platform", "at the station"]),
    "office": (["an office desk", "an office", "a workspace"], ["in an office", "on an office desk", "at a desk"]),
    "living room": (["a living room", "a cozy living room", "a lounge"], ["in a living room", "in a cozy living room", "in the lounge"]),
    "bedroom": (["a bedroom", "a cozy bedroom"], ["in a bedroom", "in a cozy bedroom", "in the bedroom"]),
    "bathroom": (["a bathroom", "a tiled bathroom"], ["in a bathroom", "in a tiled bathroom", "in the bathroom"]),
}


@dataclass
class CaptionObject:
    category: str
    bbox: list[float]  # x, y, w, h in pixels
    color: str | None


@dataclass
class CaptionText:
    text: str
    color: str | None
    on: str  # what carries it: "sign" or a category ("stop sign")


def number(n: int) -> str:
    return "no" if n == 0 else number_word(n)  # "with no more objects"


def join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class Captioner:
    """Writes captions for one image; every choice of wording comes from `rng`."""

    def __init__(self, scene: str, objects: list[CaptionObject], texts: list[CaptionText], size: int, rng: np.random.Generator):
        self.scene, self.objects, self.texts, self.size, self.rng = scene, objects, texts, size, rng
        self.word = {c: self._pick(NOUNS.get(c, [(c, c + "s")])) for c in sorted({o.category for o in objects})}

    def _pick(self, options: list):
        return options[int(self.rng.integers(len(options)))]

    # ---- phrases ----------------------------------------------------------------------------------

    def _groups(self) -> list[tuple[str, str | None, list[CaptionObject]]]:
        """Objects grouped by (category, colour), in order of first appearance left to right."""
        groups: dict[tuple[str, str | None], list[CaptionObject]] = {}
        for o in sorted(self.objects, key=lambda o: o.bbox[0] + o.bbox[2] / 2):
            groups.setdefault((o.category, o.color), []).append(o)
        return [(c, col, objs) for (c, col), objs in groups.items()]

    def noun(self, category: str, n: int, color: str | None = None, definite: bool = False) -> str:
        sing, plur = self.word[category]
        head = (color + " " if color else "") + (sing if n == 1 else plur)
        if definite:
            return "the " + head
        return with_article(head) if n == 1 else f"{number(n)} {head}"

    def inventory(self) -> str:
        return join([self.noun(c, len(objs), col) for c, col, objs in self._groups()])

    def where(self) -> str:
        return self._pick(SCENES.get(self.scene, ([], [f"in a {self.scene}", f"in the {self.scene}"]))[1])

    def scene_noun(self) -> str:
        return self._pick(SCENES.get(self.scene, ([f"a {self.scene}", f"a {self.scene} scene"], []))[0])

    def position(self, objs: list[CaptionObject]) -> str:
        cx = np.mean([o.bbox[0] + o.bbox[2] / 2 for o in objs]) / self.size
        cy = np.mean([o.bbox[1] + o.bbox[3] / 2 for o in objs]) / self.size
        h = "left" if cx < 0.34 else "right" if cx > 0.66 else None
        v = "top" if cy < 0.34 else "bottom" if cy > 0.66 else None
        if h and v:
            return self._pick([f"in the {v} {h} corner", f"at the {v} {h}"])
        if h:
            return self._pick([f"on the {h}", f"on the {h} side", f"at the {h}"])
        if v:
            return self._pick([f"at the {v}", f"near the {v}"])
        return self._pick(["in the middle", "in the center"])

    # ---- styles -----------------------------------------------------------------------------------

    def style_inventory(self) -> str:
        verb = self._pick(["with", "showing", "featuring"])
        return f"{cap(self.scene_noun())} {verb} {self.inventory()}."

    def style_there_is(self) -> str:
        be = "is" if len(self._groups()[0][2]) == 1 else "are"  # agrees with the first noun, as people say it
        return self._pick(
            [f"There {be} {self.inventory()} {self.where()}.", f"{cap(self.inventory())} {self.where()}."]
        )

    def style_left_to_right(self) -> str:
        groups = self._groups()
        if len(groups) == 1:
            c, col, objs = groups[0]
            return f"{cap(self.noun(c, len(objs), col))} {self.position(objs)} of the picture, {self.where()}."
        if self.rng.random() < 0.5 and len(groups) <= 5:
            return f"From left to right: {self.inventory()}, {self.where()}."
        parts = [f"{self.noun(c, len(objs), col)} {self.position(objs)}" for c, col, objs in groups[:4]]
        return cap(join(parts)) + "."

    def style_relation(self) -> str:
        objs = self.objects
        if len(objs) == 1:
            o = objs[0]
            return self._pick(
                [f"Just {self.noun(o.category, 1, o.color)} {self.where()}.",
                 f"A single {(o.color + ' ') if o.color else ''}{self.word[o.category][0]} {self.position([o])}, {self.where()}."]
            )
        order = self.rng.permutation(len(objs))
        a = objs[int(order[0])]
        b = next((objs[int(i)] for i in order[1:] if objs[int(i)].category != a.category), objs[int(order[1])])
        ax, ay = a.bbox[0] + a.bbox[2] / 2, a.bbox[1] + a.bbox[3] / 2
        bx, by = b.bbox[0] + b.bbox[2] / 2, b.bbox[1] + b.bbox[3] / 2
        if abs(ax - bx) >= abs(ay - by):
            rel = self._pick(["to the left of", "left of"]) if ax < bx else self._pick(["to the right of", "right of"])
        else:
            rel = "above" if ay < by else "below"
        same = a.category == b.category
        na = self.noun(a.category, 1, a.color)
        nb = ("another one" if a.color == b.color else f"a {b.color} one") if same else self.noun(b.category, 1, b.color)
        rest = len(objs) - 2
        tail = "" if rest == 0 else self._pick([f", with {number(rest)} more object{'s' if rest > 1 else ''} around", ""])
        return f"{cap(na)} is {rel} {nb} {self.where()}{tail}."

    def style_count(self) -> str:
        n = len(self.objects)
        if n == 1:
            return f"Only one thing is in this picture: {self.inventory()}."
        kinds = len({o.category for o in self.objects})
        return self._pick(
            [f"{cap(number(n))} objects {self.where()}: {self.inventory()}.",
             f"{cap(self.scene_noun())} with {number(n)} things in it, {number(kinds)} kind{'s' if kinds > 1 else ''} in all: {self.inventory()}."]
        )

    def style_details(self) -> str:
        if self.texts:
            t = self.texts[int(self.rng.integers(len(self.texts)))]
            carrier = "sign" if t.on == "sign" else self.word[t.on][0]
            carrier = (t.color + " " + carrier) if t.color and t.on == "sign" else carrier
            says = self._pick(["reading", "that says", "with the word"])
            others = [o for o in self.objects if o.category != t.on]
            near = f" next to {join([self.noun(c, len(g), col) for c, col, g in self._groups() if c != t.on][:3])}" if others else ""
            return f"{cap(with_article(carrier))} {says} \"{t.text}\" {self.where()}{near}."
        colors: dict[str, list[str]] = {}
        for o in sorted(self.objects, key=lambda o: o.bbox[0]):
            if o.color:
                colors.setdefault(o.category, []).append(o.color)
        if colors:
            return f"{cap(self.scene_noun())} where {join([self._color_fact(c, cols) for c, cols in list(colors.items())[:3]])}."
        return f"A simple picture of {self.inventory()} {self.where()}."

    def _color_fact(self, category: str, colors: list[str]) -> str:
        """'the car is red' / 'the two cars are blue' / 'one ball is red and two are blue'."""
        n = len(colors)
        if len(set(colors)) == 1:
            subject = self.noun(category, 1, definite=True) if n == 1 else f"the {number(n)} {self.word[category][1]}"
            return f"{subject} {'is' if n == 1 else 'are'} {colors[0]}"
        counts = {c: colors.count(c) for c in dict.fromkeys(colors)}
        parts = [f"{number(k)} {'is' if k == 1 else 'are'} {c}" for c, k in counts.items()]
        k0 = next(iter(counts.values()))
        first = self.word[category][0 if k0 == 1 else 1]
        parts[0] = parts[0].replace(" ", f" {first} ", 1)  # "one is red" -> "one car is red"
        return join(parts)

    def style_short(self) -> str:
        return f"{cap(self.inventory())}{self._pick(['', ' ' + self.where()])}."

    def captions(self, n: int) -> list[str]:
        """`n` captions in different styles (styles repeat only when n > 7; then wordings still vary)."""
        styles = [self.style_inventory, self.style_there_is, self.style_left_to_right, self.style_relation,
                  self.style_count, self.style_short]
        order = [styles[int(i)] for i in self.rng.permutation(len(styles))]
        # Signs and colours are the facts a caption most often skips: always one caption on them.
        order.insert(int(self.rng.integers(0, min(n, len(order) + 1))), self.style_details)
        out: list[str] = []
        i = 0
        while len(out) < n:
            text = order[i % len(order)]()
            i += 1
            if text not in out or i > 4 * n:
                out.append(text)
        return out
