"""MinHash over word 3-grams, in numpy: estimated Jaccard similarity without comparing shingle sets.

Each word 3-gram is hashed once (from crc32 word hashes), then `num_perm` hash functions h_i(x) = (a_i * x + b_i) >> 32 over 64-bit
integers (multiply-shift hashing, wrapping in uint64) are applied with one vectorized multiply; the signature
is the per-function minimum. The fraction of equal signature entries estimates the Jaccard similarity of the
shingle sets. `LSHIndex` bands signatures so near-duplicate candidates are found without all-pairs checks.
A small dependency-free implementation is enough here (a few hundred lines of text per image).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from kanva.data.text import tokens

_POLY = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit multiplier (the golden-ratio constant)


class MinHasher:
    """Signatures of `num_perm` uint32 values; the same `seed` gives the same hash functions everywhere."""

    def __init__(self, num_perm: int = 128, seed: int = 1, ngram: int = 3):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.ngram = ngram
        # Odd multipliers make the multiply-shift family universal.
        self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self._memo: dict[str, np.ndarray] = {}  # templates repeat texts across images

    def signature(self, text: str) -> np.ndarray:
        sig = self._memo.get(text)
        if sig is None:
            if len(self._memo) >= 50_000:  # bounded: a long run must not grow without limit
                self._memo.clear()
            sig = self._memo[text] = self._signature(text)
        return sig

    def _signature(self, text: str) -> np.ndarray:
        toks = tokens(text) or ("",)
        wh = np.array([zlib.crc32(t.encode()) for t in toks], dtype=np.uint64)
        if len(wh) >= self.ngram:
            # One hash per word n-gram, combined from the word hashes (a polynomial in uint64 arithmetic,
            # which wraps): the same n-gram always gets the same value, different ones almost never collide.
            n = len(wh) - self.ngram + 1
            x = wh[:n].copy()
            for k in range(1, self.ngram):
                x = x * _POLY + wh[k : k + n]
        else:
            x = np.array([np.bitwise_xor.reduce(wh * _POLY)], dtype=np.uint64)  # a short text is one shingle
        # (n-grams, num_perm) hash values; uint64 arithmetic wraps (that is the mod 2^64 of the scheme).
        h = np.multiply.outer(x, self._a)
        h += self._b
        # The shift is monotone, so shifting the minimum equals the minimum of the shifted values.
        return (h.min(axis=0) >> np.uint64(32)).astype(np.uint32)

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean(a == b))


class NearDupSet:
    """Signatures kept so far (for one image); `match` finds one too similar to a new signature.

    An image keeps a few dozen units, so one vectorized comparison against all kept signatures is cheaper than
    banding (LSHIndex, for whole datasets): banding costs a dict operation per band per unit.
    """

    def __init__(self, hasher: MinHasher, threshold: float = 0.8):
        self.hasher = hasher
        self.threshold = threshold
        self._mat = np.zeros((16, hasher.num_perm), dtype=np.uint32)  # grows by doubling
        self._ids: list[str] = []

    def match(self, sig: np.ndarray) -> str | None:
        """The id of a kept text whose estimated Jaccard with `sig` is >= threshold, else None."""
        n = len(self._ids)
        if not n:
            return None
        equal = np.count_nonzero(self._mat[:n] == sig, axis=1)
        best = int(np.argmax(equal))
        return self._ids[best] if equal[best] >= self.threshold * self.hasher.num_perm else None

    def add(self, uid: str, sig: np.ndarray) -> None:
        n = len(self._ids)
        if n == len(self._mat):
            self._mat = np.concatenate((self._mat, np.zeros_like(self._mat)))
        self._mat[n] = sig
        self._ids.append(uid)


class LSHIndex:
    """Banded LSH over signatures: texts sharing any band are candidates, then checked by signature.

    With b bands of r rows, a pair of similarity s becomes a candidate with probability 1 - (1 - s^r)^b;
    16 bands x 8 rows puts the steep part of that curve around 0.7, under the 0.8 threshold, so few
    near duplicates are missed.
    """

    def __init__(self, num_perm: int, bands: int = 16):
        if num_perm % bands:
            raise ValueError(f"num_perm {num_perm} is not a multiple of bands {bands}")
        self.bands = bands
        self.rows = num_perm // bands
        self._buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self._sigs: list[np.ndarray] = []

    def query_add(self, sig: np.ndarray, threshold: float) -> int | None:
        """Index of an earlier signature with similarity >= threshold (None if none); then add `sig`."""
        idx = len(self._sigs)
        found = None
        keys = [sig[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]
        for band, key in enumerate(keys):
            for j in self._buckets[band].get(key, ()):
                if found is None and float(np.mean(self._sigs[j] == sig)) >= threshold:
                    found = j
        for band, key in enumerate(keys):
            self._buckets[band].setdefault(key, []).append(idx)
        self._sigs.append(sig)
        return found


def near_duplicate_flags(texts: Sequence[str], groups: Sequence[str] | None = None, threshold: float = 0.8,
                         hasher: MinHasher | None = None) -> list[bool]:
    """For each text, whether an earlier text (in the same group, when groups are given) is a near duplicate."""
    hasher = hasher or MinHasher()
    indexes: dict[str, LSHIndex] = {}
    flags = []
    for i, t in enumerate(texts):
        g = groups[i] if groups is not None else ""
        index = indexes.setdefault(g, LSHIndex(hasher.num_perm))
        flags.append(index.query_add(hasher.signature(t), threshold) is not None)
    return flags
