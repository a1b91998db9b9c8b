"""A small offline reader of WordNet 3.0 noun files (Debian's `wordnet-base`: /usr/share/wordnet).

Only what the knowledge-base builder needs: synsets by name (`giraffe.n.01`), their lemmas, gloss,
hypernyms and part meronyms. Names follow the usual convention: a synset's first lemma, `n`, and that
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

    def senses(self, lemma: str) -> list[Synset]:
        """All noun senses of `lemma` (spaces or underscores), in WordNet's sense order."""
        return [self.by_offset(o) for o in self._index.get(lemma.lower().replace(" ", "_"), [])]

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
        syn = Synset(offset, lemmas, definition, hypers, parts)
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
