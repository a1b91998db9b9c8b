"""The English every generator writes: number words, plurals and articles of COCO names.

One module, because the world's captions, the seed and evolved instructions, the synthetic benchmarks and
the encoder's count labels must spell the same number and the same plural the same way: a benchmark that
asks "How many broccolis?" of a model trained on "broccoli" measures the spelling, not the model.
"""

from __future__ import annotations

# Spelled out up to twelve (larger numbers are written as digits), as a caption would.
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")
NUMBER_VALUES = {w: i for i, w in enumerate(NUMBER_WORDS)}

# Plurals that the English rules below get wrong (or that COCO names already are).
_IRREGULAR_PLURALS = {
    "person": "people", "sheep": "sheep", "skis": "skis", "scissors": "scissors", "broccoli": "broccoli",
    "mouse": "mice", "knife": "knives", "bus": "buses", "tv": "tvs", "cell phone": "cell phones",
}


def number_word(n: int) -> str:
    """'three' for 3; digits past twelve."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def plural(name: str) -> str:
    """English plural of a category (or any simple noun phrase): inflects the last word."""
    if name in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[name]
    head, _, last = name.rpartition(" ")
    if last.endswith(("s", "sh", "ch", "x", "z")):
        last += "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    elif last.endswith("ife"):  # knife -> knives (but giraffe -> giraffes)
        last = last[:-2] + "ves"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def article(phrase: str) -> str:
    """'a' or 'an' before `phrase`, by its first letter (good enough for the COCO names and KB terms)."""
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def counted(name: str, n: int) -> str:
    """'one dog', 'two dogs', '13 people'."""
    return f"{number_word(n)} {name if n == 1 else plural(name)}"


def join_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
