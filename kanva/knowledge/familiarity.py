"""Which hypernyms a general reader would use: "a kind of animal" yes, "a kind of chordate" or "of article" no.

WordNet's chains are a taxonomist's ("placental", "conveyance", "heavier-than-air craft"); questions built
on them read like no question a person asks. A name is familiar when all of these hold:

- it is a common word: its Zipf frequency (log10 of occurrences per billion words, from the `wordfreq`
  lists) is at least MIN_ZIPF; for a phrase, wordfreq's estimate for the whole phrase;
- it is not a hyphenated coinage ("even-toed ungulate", "self-propelled vehicle");
- it names a kind of physical thing (WordNet: under physical_entity.n.01): "a kind of idea" or "of social
  group" asks nothing about a picture;
- it is used as a noun more than as an adjective (tag counts; "feline", "bovine" are mostly adjectives, and
  wordfreq's counts do not tell the two apart);
- the sense meant is the word's usual one: WordNet's first sense, or a sense with at least MIN_SENSE_SHARE
  of the tag count of the word's most tagged sense (`cntlist.rev`). "article" the artifact (6 tags) is
  not what "article" means to a reader (14 tags, a piece of writing).

The builder (kanva/knowledge/build.py) records the measure for every name in a KB (`familiarity`), so that
question generation filters without needing WordNet or wordfreq at run time.
"""

from __future__ import annotations

from typing import Any

from kanva.errors import KanvaError

MIN_ZIPF = 3.0
MIN_SENSE_SHARE = 0.5


def zipf(name: str) -> float:
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise KanvaError("the familiarity measure needs the word lists of `wordfreq` (pip install wordfreq)") from None
    return round(float(zipf_frequency(name, "en")), 2)


def measure(name: str, synset: Any, wn: Any) -> dict:
    """{zipf, sense, tags, familiar} for `name` in the sense of `synset` (a kanva.knowledge.wordnet.Synset)."""
    z = zipf(name)
    number = wn.sense_number(name, synset) if synset is not None else None
    counts = wn.tag_counts(name) if number is not None else []
    tags = counts[number - 1] if number is not None and counts else 0
    top = max(counts, default=0)
    usual = number is None or number == 1 or top == 0 or tags >= MIN_SENSE_SHARE * top
    noun = sum(wn.tag_counts(name)) >= wn.adjective_tags(name)
    physical = synset is None or wn.is_physical(synset)
    familiar = z >= MIN_ZIPF and "-" not in name and usual and noun and physical
    return {"zipf": z, "sense": number, "tags": tags, "familiar": familiar}
