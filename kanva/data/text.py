"""Small text utilities shared by elimination, dedup and the report: words, normal form, n-grams, Jaccard.

One tokenizer for all of them, so "no gain" (Jaccard), dedup (normal form, 3-gram shingles) and the report's
distinct-n all count the same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

# Words are letters (with an inner apostrophe: "isn't") or digit runs (with a decimal part: "0.25").
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")


def words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens; punctuation is dropped.

    Short texts are cached: templates repeat the same questions and answers for many images. Texts that are
    unique to one unit (a whole question + options + answer) go through `tokens` instead, so that they do
    not evict the repeated ones from the cache.
    """
    return _short_words(text) if len(text) <= 400 else tokens(text)


@lru_cache(maxsize=1 << 16)
def _short_words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


def tokens(text: str) -> tuple[str, ...]:
    """`words` without the cache, for one-off texts."""
    return tuple(_WORD.findall(text.lower()))


def normalize(text: str) -> str:
    """Normal form for exact-duplicate detection: lower case, punctuation dropped, single spaces."""
    return " ".join(tokens(text))


def squash(text: str) -> str:
    """Collapse runs of whitespace into single spaces and strip the ends (keeps case and punctuation)."""
    return _SPACE.sub(" ", text).strip()


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def shingles(tokens: Sequence[str], n: int = 3) -> list[str]:
    """Word n-gram shingles as strings; a text shorter than n words is one shingle (so it still hashes)."""
    if len(tokens) < n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Jaccard similarity of two token sets (1.0 for two empty sets: nothing was added)."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n: unique word n-grams over all n-grams in `texts` (0.0 when there are none)."""
    total = 0
    seen: set[tuple[str, ...]] = set()
    for t in texts:
        grams = ngrams(tokens(t), n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def sentence(text: str) -> str:
    """Capitalize the first letter and end with a full stop (unless it already ends with punctuation)."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?\"'" else text + "."
