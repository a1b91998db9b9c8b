"""Just enough English for generated questions: plurals of COCO names, articles, number words."""

from __future__ import annotations

# COCO names whose plural is not "+s"/"+es".
_IRREGULAR = {
    "person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep", "skis": "skis",
    "scissors": "scissors", "wine glass": "wine glasses",
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def plural(name: str) -> str:
    if name in _IRREGULAR:
        return _IRREGULAR[name]
    if name.endswith(("s", "sh", "ch", "x", "z")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def article(phrase: str) -> str:
    """ "a" or "an" by the first letter (good enough for category names and hypernyms)."""
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def number(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def counted(n: int, name: str) -> str:
    """ "one dog", "three dogs"."""
    return f"{number(n)} {name if n == 1 else plural(name)}"
