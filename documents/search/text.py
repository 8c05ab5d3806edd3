"""Words for search: how a query and a passage are split into words, which words carry no
meaning, and which words of a passage a query matches (for the weak-hit cut and for marking
them on the pages). One module, so the ranking's query, the cut and the highlighting agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

# A word: letters and digits of any script; underscores and punctuation split words.
WORD = re.compile(r"[^\W_]+")
# The English stop words pg_search drops (Lucene's list): a query of only these matches nothing.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
# Plural and verb endings folded before words are compared; longest first.
_SUFFIXES = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))
_MIN_STEM = 3
# Below this length a stem only matches itself: "art" must not mark "article".
_MIN_PREFIX = 4


def words(text: str) -> list[str]:
    """The text's words, lower-cased, in order."""
    return WORD.findall(text.lower())


def distinct_words(text: str) -> list[str]:
    """The text's words that carry meaning, each once, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)


def stem(word: str) -> str:
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            return word[: -len(suffix)] + replacement
    return word


def query_terms(query: str) -> list[str]:
    """The query's meaningful words, lower-cased and stemmed, each once, in order."""
    terms: list[str] = []
    for word in words(query):
        if len(word) < 2 or word in STOP_WORDS:
            continue
        stemmed = stem(word)
        if stemmed not in terms:
            terms.append(stemmed)
    return terms


def matching_term(word: str, terms: Iterable[str]) -> str | None:
    """The query term this word of a text matches (same stem, or one stem begins the other)."""
    stemmed = stem(word.lower())
    for term in terms:
        if stemmed == term:
            return term
        shorter, longer = (stemmed, term) if len(stemmed) <= len(term) else (term, stemmed)
        if len(shorter) >= _MIN_PREFIX and longer.startswith(shorter):
            return term
    return None


def explains(terms: Sequence[str], *texts: str) -> bool:
    """Whether any query word appears in these texts (the lexical index reads the title too)."""
    return any(matching_term(word, terms) for text in texts for word in WORD.findall(text))


def matched_spans(
    text: str, terms: Sequence[str], start: int = 0, end: int | None = None
) -> Iterator[re.Match[str]]:
    """The words of text[start:end] that match a query term, as regex matches (offsets into text)."""
    for match in WORD.finditer(text, start, len(text) if end is None else end):
        if matching_term(match.group(), terms):
            yield match
