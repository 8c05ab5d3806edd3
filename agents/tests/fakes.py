"""Test doubles for the provider layer's true boundaries."""

from __future__ import annotations

import hashlib
import re

import numpy as np

DIMENSIONS = 512
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
    ]
)


def _bucket(word: str) -> int:
    digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % DIMENSIONS


def hashed_bow_encode(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for the sentence encoder: hashed bag of words.

    Texts sharing content words get a high cosine; texts sharing none get ~0.
    Rows are L2-normalised float32, like the real embedder's.
    """
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            if word in _STOP:
                continue
            if len(word) > 3 and word.endswith("s"):
                word = word[:-1]
            out[row, _bucket(word)] += 1.0
        norm = np.linalg.norm(out[row])
        if norm > 0:
            out[row] /= norm
    return out
