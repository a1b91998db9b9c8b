"""Words for the 80 COCO categories: a synonym table that finds object mentions in text (plurals, articles
and number words: kanva/words.py).

The synonym table is what makes object grounding checkable: elimination flags answers that mention an object
found in neither the annotations nor the captions (hallucination), absent objects are drawn only among
categories the captions never mention, and the report's CHAIR-style rate counts the same mentions.
Matching is longest-first over word tokens ("hot dog" before "dog", "teddy bear" before "bear"), and a
mention right after a negation ("there is no giraffe") is marked negated: it asserts absence, not presence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from kanva.data.text import words

# Our own synonym lists (singular and plural forms), keyed by COCO name. Words that are ambiguous in
# everyday text (e.g. "glass", "vehicle", "bag", "monitor") are left out: a false "hallucination" would
# reject a good sample.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("person", "persons", "people", "man", "men", "woman", "women", "boy", "boys", "girl", "girls",
               "child", "children", "kid", "kids", "baby", "babies", "guy", "guys", "lady", "ladies", "adult",
               "adults", "toddler", "teenager", "player", "players", "skier", "skiers", "surfer", "surfers",
               "skateboarder", "skateboarders", "snowboarder", "snowboarders", "rider", "riders", "pedestrian",
               "pedestrians", "tourist", "tourists", "spectator", "spectators", "chef", "umpire", "catcher",
               "batter"),
    "bicycle": ("bicycle", "bicycles", "bike", "bikes"),
    "car": ("car", "cars", "taxi", "taxis", "sedan", "sedans", "suv", "jeep", "minivan", "automobile"),
    "motorcycle": ("motorcycle", "motorcycles", "motorbike", "motorbikes", "moped", "mopeds"),
    "airplane": ("airplane", "airplanes", "plane", "planes", "aeroplane", "jet", "jets", "aircraft",
                 "airliner", "airliners"),
    "bus": ("bus", "buses", "busses"),
    "train": ("train", "trains", "locomotive", "locomotives"),
    "truck": ("truck", "trucks", "lorry", "lorries"),
    "boat": ("boat", "boats", "ship", "ships", "sailboat", "sailboats", "kayak", "kayaks", "canoe", "canoes",
             "yacht", "yachts", "ferry"),
    "traffic light": ("traffic light", "traffic lights", "stoplight", "stoplights", "traffic signal",
                      "traffic signals"),
    "fire hydrant": ("fire hydrant", "fire hydrants", "hydrant", "hydrants"),
    "stop sign": ("stop sign", "stop signs"),
    "parking meter": ("parking meter", "parking meters"),
    "bench": ("bench", "benches"),
    "bird": ("bird", "birds", "pigeon", "pigeons", "seagull", "seagulls", "gull", "gulls", "duck", "ducks",
             "goose", "geese", "parrot", "parrots", "swan", "swans", "sparrow", "sparrows", "owl", "owls"),
    "cat": ("cat", "cats", "kitten", "kittens", "kitty"),
    "dog": ("dog", "dogs", "puppy", "puppies", "pup", "pups"),
    "horse": ("horse", "horses", "pony", "ponies", "foal"),
    "sheep": ("sheep", "lamb", "lambs"),
    "cow": ("cow", "cows", "cattle", "bull", "bulls", "calf", "calves", "ox", "oxen"),
    "elephant": ("elephant", "elephants"),
    "bear": ("bear", "bears", "polar bear", "polar bears"),
    "zebra": ("zebra", "zebras"),
    "giraffe": ("giraffe", "giraffes"),
    "backpack": ("backpack", "backpacks", "rucksack", "rucksacks"),
    "umbrella": ("umbrella", "umbrellas", "parasol", "parasols"),
    "handbag": ("handbag", "handbags", "purse", "purses"),
    "tie": ("tie", "ties", "necktie", "neckties"),
    "suitcase": ("suitcase", "suitcases", "luggage"),
    "frisbee": ("frisbee", "frisbees"),
    "skis": ("skis", "ski"),
    "snowboard": ("snowboard", "snowboards"),
    "sports ball": ("sports ball", "sports balls", "ball", "balls", "soccer ball", "football", "tennis ball"),
    "kite": ("kite", "kites"),
    "baseball bat": ("baseball bat", "baseball bats", "bat", "bats"),
    "baseball glove": ("baseball glove", "baseball gloves", "glove", "gloves", "mitt", "mitts"),
    "skateboard": ("skateboard", "skateboards"),
    "surfboard": ("surfboard", "surfboards"),
    "tennis racket": ("tennis racket", "tennis rackets", "racket", "rackets", "racquet", "racquets"),
    "bottle": ("bottle", "bottles"),
    "wine glass": ("wine glass", "wine glasses", "wineglass", "wineglasses"),
    "cup": ("cup", "cups", "mug", "mugs"),
    "fork": ("fork", "forks"),
    "knife": ("knife", "knives"),
    "spoon": ("spoon", "spoons"),
    "bowl": ("bowl", "bowls"),
    "banana": ("banana", "bananas"),
    "apple": ("apple", "apples"),
    "sandwich": ("sandwich", "sandwiches"),
    "orange": ("orange", "oranges"),
    "broccoli": ("broccoli",),
    "carrot": ("carrot", "carrots"),
    "hot dog": ("hot dog", "hot dogs", "hotdog", "hotdogs"),
    "pizza": ("pizza", "pizzas"),
    "donut": ("donut", "donuts", "doughnut", "doughnuts"),
    "cake": ("cake", "cakes"),
    "chair": ("chair", "chairs"),
    "couch": ("couch", "couches", "sofa", "sofas"),
    "potted plant": ("potted plant", "potted plants", "houseplant", "houseplants", "plant", "plants"),
    "bed": ("bed", "beds"),
    "dining table": ("dining table", "dining tables", "table", "tables"),
    "toilet": ("toilet", "toilets"),
    "tv": ("tv", "tvs", "television", "televisions"),
    "laptop": ("laptop", "laptops"),
    "mouse": ("mouse", "mice"),
    "remote": ("remote", "remotes", "remote control", "remote controls"),
    "keyboard": ("keyboard", "keyboards"),
    "cell phone": ("cell phone", "cell phones", "cellphone", "cellphones", "phone", "phones", "smartphone",
                   "smartphones", "mobile phone"),
    "microwave": ("microwave", "microwaves"),
    "oven": ("oven", "ovens"),
    "toaster": ("toaster", "toasters"),
    "sink": ("sink", "sinks"),
    "refrigerator": ("refrigerator", "refrigerators", "fridge", "fridges"),
    "book": ("book", "books"),
    "clock": ("clock", "clocks"),
    "vase": ("vase", "vases"),
    "scissors": ("scissors",),
    "teddy bear": ("teddy bear", "teddy bears", "teddy"),
    "hair drier": ("hair drier", "hair driers", "hair dryer", "hair dryers", "blow dryer"),
    "toothbrush": ("toothbrush", "toothbrushes"),
}

CATEGORIES: tuple[str, ...] = tuple(SYNONYMS)

# Words that name an object only when used as a noun. "a remote village", "to tie": such a word counts only
# when the next token is not another content word (and not after "to"). "orange" is also a colour ("the cup
# is orange", "an orange car"), so it names the fruit only right after a determiner or number ("an orange").
_AMBIGUOUS = {"orange", "remote", "tie", "bear", "bat", "ski", "train", "duck", "plant", "glove"}
_COLOR_NOUNS = {"orange"}
_DETERMINERS = frozenset("a an the one two three four five six this that another each every some any no".split())
_FUNCTION_WORDS = frozenset(
    "a an the is are was were be been on in at of to and or with by for from near next beside behind under "
    "over above below sits sit sitting lies lying stands standing that which who this these those it its "
    "there here has have had can could while as than slices slice juice".split()
)
NEGATIONS = frozenset({"no", "not", "without", "nor", "neither", "never", "none", "nothing", "absent"})
_NEGATION_WINDOW = 3


def _build_index() -> tuple[dict[tuple[str, ...], str], int]:
    index: dict[tuple[str, ...], str] = {}
    longest = 1
    for cat, forms in SYNONYMS.items():
        for form in (cat, *forms):
            key = tuple(words(form))
            index.setdefault(key, cat)
            longest = max(longest, len(key))
    return index, longest


_INDEX, _LONGEST = _build_index()
# first word -> the lengths of the synonyms starting with it, longest first (most words start none)
_FIRST: dict[str, tuple[int, ...]] = {}
for _key in _INDEX:
    _FIRST[_key[0]] = tuple(sorted(set(_FIRST.get(_key[0], ())) | {len(_key)}, reverse=True))


@dataclass(frozen=True, slots=True)
class Mention:
    """One object word in a text: its category, its first token position, and whether a negation precedes it."""

    category: str
    position: int
    negated: bool


_QUOTED = re.compile(r'"[^"]*"|\u201c[^\u201d]*\u201d')


def unquote(text: str) -> str:
    """Text without its quoted parts: 'the sign says "TAXI"' names no taxi (printed words are not objects)."""
    return _QUOTED.sub(" ", text)


def mentions(text_or_tokens: str | list[str]) -> tuple[Mention, ...]:
    """Object mentions in `text` (quoted words excluded), longest match first, with negation marked.

    Token positions refer to `words(unquote(text))` (or to the token list passed in).
    """
    if isinstance(text_or_tokens, str):
        if len(text_or_tokens) <= 400:
            return _text_mentions(text_or_tokens)
        return _token_mentions(words(unquote(text_or_tokens)))
    return _token_mentions(text_or_tokens)


@lru_cache(maxsize=1 << 16)
def _text_mentions(text: str) -> tuple[Mention, ...]:
    # Templates repeat the same questions and answers for many images: caching by text pays off.
    return _token_mentions(words(unquote(text)))


def _token_mentions(toks: list[str]) -> tuple[Mention, ...]:
    out: list[Mention] = []
    i, n, prev_end = 0, len(toks), 0
    while i < n:
        hit = None
        for span in _FIRST.get(toks[i], ()):
            if i + span <= n:
                cat = _INDEX.get(tuple(toks[i : i + span]))
                if cat is not None:
                    hit = (cat, span)
                    break
        if hit is None:
            i += 1
            continue
        cat, span = hit
        if span == 1 and toks[i] in _AMBIGUOUS:
            nxt = toks[i + 1] if i + 1 < n else None
            prev = toks[i - 1] if i > 0 else None
            colour_use = toks[i] in _COLOR_NOUNS and prev not in _DETERMINERS
            if colour_use or (nxt is not None and nxt not in _FUNCTION_WORDS and not nxt.isdigit()) or prev == "to":
                i += 1
                continue
        # A negation reaches at most 3 words back and never past the previous object ("no cat, two dogs").
        window = toks[max(0, i - _NEGATION_WINDOW, prev_end) : i]
        negated = any(w in NEGATIONS or w.endswith("n't") for w in window)
        out.append(Mention(cat, i, negated))
        i += span
        prev_end = i
    return tuple(out)


def mentioned(text: str) -> frozenset[str]:
    """Categories mentioned in `text` (negated or not): what a caption talks about."""
    return frozenset(m.category for m in mentions(text))
