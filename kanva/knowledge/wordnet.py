"""A small offline reader of WordNet 3.0 noun files (Debian's `wordnet-base`: /usr/share/wordnet).

Only what the knowledge-base builder needs: synsets by name (`giraffe.n.01`), their lemmas, gloss,
hypernyms and part meronyms, and the sense tag counts of `cntlist.rev` (how often each sense was tagged in
the semantic concordance texts: a measure of how familiar a word is in that sense). Names follow the usual convention: a synset's first lemma, `n`, and that
synset's sense number among the lemma's senses in `index.noun`. The format is WordNet's `wndb(5)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kanva.errors import KanvaError

DEFAULT_DIR = Path("/usr/share/wordnet")


@dataclass
class Synset:
    offset: str
    lemmas: list[str]  # with spaces, as written ("even-toed ungulate")
    gloss: str  # the definition, examples dropped
    hypernyms: list[str] = field(default_factory=list)  # offsets (@ and @i pointers)
    part_meronyms: list[str] = field(default_factory=list)  # offsets (%p pointers)
    name: str = ""
    lexfile: int = 0  # WordNet's lexicographer file: 5 noun.animal, 6 noun.artifact, 13 noun.food, 18 noun.person, ...


class WordNet:
    """Noun synsets of one WordNet dict directory, loaded lazily by offset."""

    def __init__(self, root: str | Path = DEFAULT_DIR):
        self.root = Path(root)
        data, index = self.root / "data.noun", self.root / "index.noun"
        if not data.is_file() or not index.is_file():
            raise KanvaError(f"{self.root}: no WordNet noun files (data.noun, index.noun); apt-get install wordnet-base")
        self._index: dict[str, list[str]] = {}
        for line in index.read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue  # the licence header
            parts = line.split()
            lemma, n_synsets, n_ptrs = parts[0], int(parts[2]), int(parts[3])
            self._index[lemma] = parts[6 + n_ptrs : 6 + n_ptrs + n_synsets]
        self._lines: dict[str, str] = {}
        for line in data.read_text(encoding="latin-1").splitlines():
            if not line.startswith(" "):
                self._lines[line[:8]] = line
        self._cache: dict[str, Synset] = {}
        self._counts: dict[str, dict[int, int]] | None = None
        self._adjective_counts: dict[str, int] = {}
        self._physical: dict[str, bool] = {}

    def senses(self, lemma: str) -> list[Synset]:
        """All noun senses of `lemma` (spaces or underscores), in WordNet's sense order."""
        return [self.by_offset(o) for o in self._index.get(lemma.lower().replace(" ", "_"), [])]

    def _load_counts(self) -> dict[str, dict[int, int]]:
        if self._counts is None:
            self._counts = {}
            path = self.root / "cntlist.rev"
            if path.is_file():  # `sense_key sense_number tag_cnt`; ss_type 1 = noun, 3 and 5 = adjective
                for line in path.read_text(encoding="latin-1").splitlines():
                    parts = line.split()
                    if len(parts) != 3 or "%" not in parts[0]:
                        continue
                    lemma, rest = parts[0].split("%", 1)
                    if rest.startswith("1:"):
                        self._counts.setdefault(lemma, {})[int(parts[1])] = int(parts[2])
                    elif rest.startswith(("3:", "5:")):
                        self._adjective_counts[lemma] = self._adjective_counts.get(lemma, 0) + int(parts[2])
        return self._counts

    def adjective_tags(self, lemma: str) -> int:
        """How often `lemma` was tagged as an adjective ("equine", "feline" are mostly adjectives)."""
        self._load_counts()
        return self._adjective_counts.get(lemma.lower().replace(" ", "_"), 0)

    def tag_counts(self, lemma: str) -> list[int]:
        """Tag counts of the noun senses of `lemma`, in sense order (0 for an untagged sense)."""
        self._counts = self._load_counts()
        key = lemma.lower().replace(" ", "_")
        got = self._counts.get(key, {})
        return [got.get(i + 1, 0) for i in range(len(self._index.get(key, [])))]

    def is_physical(self, synset: Synset) -> bool:
        """Whether `synset` is a kind of physical entity (physical_entity.n.01), not an idea, act or group."""
        if synset.offset not in self._physical:
            top = self.synset("physical_entity.n.01").offset
            frontier, seen, found = [synset], set(), False
            while frontier and not found:
                found = any(s.offset == top for s in frontier)
                seen.update(s.offset for s in frontier)
                frontier = [self.by_offset(o) for s in frontier for o in s.hypernyms if o not in seen]
            self._physical[synset.offset] = found
        return self._physical[synset.offset]

    def sense_number(self, lemma: str, synset: Synset) -> int | None:
        """1-based position of `synset` among the noun senses of `lemma` (None if it is not one of them)."""
        offsets = self._index.get(lemma.lower().replace(" ", "_"), [])
        return offsets.index(synset.offset) + 1 if synset.offset in offsets else None

    def by_offset(self, offset: str) -> Synset:
        if offset in self._cache:
            return self._cache[offset]
        line = self._lines[offset]
        head, _, gloss = line.partition(" | ")
        f = head.split()
        w_cnt = int(f[3], 16)
        lemmas = [f[4 + 2 * i].replace("_", " ") for i in range(w_cnt)]
        lemmas = [lem.split("(")[0] for lem in lemmas]  # adjective markers like "(p)" never occur on nouns, but be safe
        k = 4 + 2 * w_cnt
        p_cnt = int(f[k])
        hypers, parts = [], []
        for i in range(p_cnt):
            sym, off, pos = f[k + 1 + 4 * i], f[k + 2 + 4 * i], f[k + 3 + 4 * i]
            if pos != "n":
                continue
            if sym in ("@", "@i"):
                hypers.append(off)
            elif sym == "%p":
                parts.append(off)
        definition = gloss.strip().split('; "')[0].strip().rstrip(";").strip()
        syn = Synset(offset, lemmas, definition, hypers, parts, lexfile=int(f[1]))
        first = lemmas[0].lower().replace(" ", "_")
        syn.name = f"{first}.n.{self._index[first].index(offset) + 1:02d}"
        self._cache[offset] = syn
        return syn

    def synset(self, name: str) -> Synset:
        """The synset called `name` ('giraffe.n.01'); KanvaError if WordNet has none."""
        try:
            lemma, pos, num = name.rsplit(".", 2)
            offsets = self._index[lemma.lower()]
            if pos != "n":
                raise KeyError(pos)
            return self.by_offset(offsets[int(num) - 1])
        except (KeyError, IndexError, ValueError):
            raise KanvaError(f"WordNet {self.root}: no noun synset {name!r}") from None
