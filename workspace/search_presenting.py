"""How a search hit is shown: its best sentence, the query's words marked, weak hits left out.

Pure functions over the engine's hits (`documents.search.Hit`) and plain facts the
view reads for them (chunk positions, cosines): no database, no model. Snippets are
built from escaped pieces with `format_html`, so a chunk or a query holding markup
stays text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

from documents.chunking import split_sentences
from documents.search import Hit
from documents.search.sqlite import STOP_WORDS

_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")
# Plural and verb endings folded before words are compared; longest first.
_SUFFIXES = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))
_MIN_STEM = 3
# Below this length a stem only matches itself: "art" must not mark "article".
_MIN_PREFIX = 4

# A sentence shorter than this is shown with its neighbour ("two short ones").
SHORT_SENTENCE = 80
# The most of a chunk a snippet shows; a longer sentence is cut to a window around its first match.
SNIPPET_MAX = 280
# How much of a long sentence is kept before its first matched word.
WINDOW_LEAD = 60
_TERMINAL = ".!?…:;\"'”’)]"


# --- the weak-hit cut ------------------------------------------------------------


@dataclass(frozen=True)
class WeakHitCut:
    """When a hit is too weak to show, per search mode.

    relative: a hit is kept when its score is at least this fraction of the best
        shown hit's (each mode's score: fused RRF, cosine, BM25).
    min_cosine: a hit that no query word explains (a purely semantic match) is kept
        only when the query and the chunk are at least this similar in meaning.
    """

    relative: float
    min_cosine: float | None


# Why these numbers (all-MiniLM-L6-v2, SEARCH_RRF_K = 20):
# - hybrid 0.3: the best hit is usually first in both rankings, 2/21 ~ 0.095; a hit one
#   ranking alone finds scores 1/(20 + rank), under 0.3 of that beyond rank 15. Hits
#   both rankings find stay above it down to about rank 50 in each, so the cut takes the
#   deep one-ranking tail, not passages that meaning and keywords agree on.
# - dense 0.5: a cosine half the best one's is another topic (relevant passages measured
#   0.41-0.61 against their query, unrelated ones -0.1-0.21).
# - lexical 0.25: BM25 adds up over matched words, so a quarter of the best score is a
#   chunk sharing one minor word of a longer query.
# - min_cosine 0.25: unrelated texts and gibberish queries ("xqzv blorf") measured up to
#   0.21, loosely related ones 0.25-0.27; a semantic-only hit below that is noise that
#   the ranking returned only because it always returns k hits.
WEAK_HIT_CUT: Mapping[str, WeakHitCut] = {
    "hybrid": WeakHitCut(relative=0.3, min_cosine=0.25),
    "dense": WeakHitCut(relative=0.5, min_cosine=0.25),
    "lexical": WeakHitCut(relative=0.25, min_cosine=None),
}


def cut_weak_hits(
    hits: Sequence[Hit],
    *,
    mode: str,
    terms: Sequence[str],
    rrf_k: int,
    cosines: Callable[[list[int]], Mapping[int, float]],
) -> tuple[list[Hit], int]:
    """The hits worth showing, in their order, and how many were left out.

    `cosines(chunk_ids)` gives the query's cosine to each chunk; it is called once,
    only in hybrid mode and only for hits that no query word explains.
    """
    rule = WEAK_HIT_CUT.get(mode, WEAK_HIT_CUT["hybrid"])
    kept = list(hits)
    if rule.min_cosine is not None:
        kept = _cut_semantic_only(
            kept, mode=mode, terms=terms, rrf_k=rrf_k, cosines=cosines, least=rule.min_cosine
        )
    if kept and kept[0].score > 0:
        floor = kept[0].score * rule.relative
        kept = [hit for hit in kept if hit.score >= floor]
    return kept, len(hits) - len(kept)


def _cut_semantic_only(
    hits: list[Hit],
    *,
    mode: str,
    terms: Sequence[str],
    rrf_k: int,
    cosines: Callable[[list[int]], Mapping[int, float]],
    least: float,
) -> list[Hit]:
    # One ranking alone gives at most 1/(k + 1): a fused score above it was found by both.
    single_ranking_max = 1.0 / (rrf_k + 1)
    unexplained = [
        hit
        for hit in hits
        if not explains(terms, hit.document_title, hit.text)
        and not (mode == "hybrid" and hit.score > single_ranking_max)
    ]
    if not unexplained:
        return hits
    if mode == "dense":
        similarity = {hit.chunk_id: hit.score for hit in unexplained}  # the score is the cosine
    else:
        similarity = dict(cosines([hit.chunk_id for hit in unexplained]))
    weak = {hit.chunk_id for hit in unexplained if similarity.get(hit.chunk_id, 0.0) < least}
    return [hit for hit in hits if hit.chunk_id not in weak]


# --- query words -------------------------------------------------------------------


def _stem(word: str) -> str:
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            return word[: -len(suffix)] + replacement
    return word


def query_terms(query: str) -> list[str]:
    """The query's meaningful words, lowercased and stemmed, each once, in order."""
    terms: list[str] = []
    for word in _WORD.findall(query.lower()):
        if len(word) < 2 or word in STOP_WORDS:
            continue
        stem = _stem(word)
        if stem not in terms:
            terms.append(stem)
    return terms


def matching_term(word: str, terms: Iterable[str]) -> str | None:
    """The query term this word of a text matches (same stem, or one stem begins the other)."""
    stem = _stem(word.lower())
    for term in terms:
        if stem == term:
            return term
        shorter, longer = (stem, term) if len(stem) <= len(term) else (term, stem)
        if len(shorter) >= _MIN_PREFIX and longer.startswith(shorter):
            return term
    return None


def explains(terms: Sequence[str], *texts: str) -> bool:
    """Whether any query word appears in these texts (the lexical index also reads the title)."""
    return any(matching_term(word, terms) for text in texts for word in _WORD.findall(text))


# --- Markdown --------------------------------------------------------------------

_LINE_MARKS = [
    re.compile(r"^[^\S\n]*(?:[-*_][^\S\n]*){3,}$", re.MULTILINE),  # a horizontal rule
    re.compile(
        r"^[^\S\n]*\|?[^\S\n]*:?-{3,}:?[^\S\n]*(?:\|[^\S\n]*:?-{3,}:?[^\S\n]*)*\|?[^\S\n]*$", re.MULTILINE
    ),
    re.compile(r"^[^\S\n]{0,3}#{1,6}(?=\s|$)", re.MULTILINE),  # a heading's opening marks
    re.compile(r"[^\S\n]+#+[^\S\n]*$", re.MULTILINE),  # and its closing ones
    re.compile(r"^[^\S\n]*(?:>[^\S\n]?)+", re.MULTILINE),  # a quote
    re.compile(r"^[^\S\n]*(?:[-*+•]|\d{1,3}[.)])[^\S\n]+(?:\[[ xX]\][^\S\n]+)?", re.MULTILINE),  # a list item
]
_INLINE_MARKS = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # an image: its alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # a link: its text
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # a reference link
    (re.compile(r"`+([^`]+?)`+"), r"\1"),  # inline code
    (re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong, strikethrough
    (re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])"), r"\1"),  # emphasis
    (re.compile(r"(?<![\w_])_(?=\S)([^_]+?)(?<=\S)_(?![\w_])"), r"\1"),
    (re.compile(r"\*\*|__|~~"), ""),  # pairs a chunk boundary cut in half
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),  # escaped punctuation
]
_TABLE_PIPES = re.compile(r"[^\S\n]*\|[^\S\n]*")


def strip_markdown(text: str) -> str:
    """The text without Markdown's marks (headings, emphasis, bullets, links, code, tables), on one line."""
    for pattern in _LINE_MARKS:
        text = pattern.sub("", text)
    lines = []
    for line in text.splitlines():
        if "|" in line:
            line = " · ".join(cell for cell in _TABLE_PIPES.split(line) if cell.strip())
        lines.append(line)
    text = "\n".join(lines)
    for pattern, replacement in _INLINE_MARKS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def highlight(text: str, terms: Sequence[str]) -> SafeString:
    """The text, escaped, with each word that matches a query term wrapped in <mark>."""
    pieces: list[SafeString] = []
    last = 0
    for match in _WORD.finditer(text):
        if matching_term(match.group(), terms):
            pieces.append(escape(text[last : match.start()]))
            pieces.append(format_html("<mark>{}</mark>", match.group()))
            last = match.end()
    pieces.append(escape(text[last:]))
    return format_html_join("", "{}", ((piece,) for piece in pieces))


# --- the best sentence -----------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    """What a hit shows: offsets into the chunk's text, and that text made readable."""

    start: int
    end: int
    html: SafeString
    matched: bool  # False when no query word is in the chunk and the snippet is its opening


def _is_heading(text: str) -> bool:
    return text.lstrip().startswith("#")


def _weight(text: str, terms: Sequence[str]) -> tuple[int, int]:
    """(distinct query terms, all matching words) in a sentence."""
    found = [matching_term(word, terms) for word in _WORD.findall(text)]
    hits = [term for term in found if term]
    return len(set(hits)), len(hits)


def best_snippet(text: str, terms: Sequence[str]) -> Snippet:
    """The chunk's sentence that shares most query words (or two short ones), marked.

    With no query word in the chunk (a semantic hit), its opening sentence instead,
    skipping headings when there is more than a heading.
    """
    sentences = [s for s in split_sentences(text) if strip_markdown(text[s[0] : s[1]])]
    if not sentences:
        return Snippet(0, len(text), highlight(strip_markdown(text), terms), matched=False)
    weights = [_weight(text[s:e], terms) for s, e in sentences]
    best = max(range(len(sentences)), key=lambda i: (weights[i], -i))
    matched = weights[best][0] > 0
    if not matched:
        best = next((i for i, (s, e) in enumerate(sentences) if not _is_heading(text[s:e])), 0)
    chosen = [best]
    if len(strip_markdown(text[slice(*sentences[best])])) < SHORT_SENTENCE:
        chosen = _with_neighbour(text, sentences, weights, best)
    start, end = sentences[chosen[0]][0], sentences[chosen[-1]][1]
    start, end, lead, tail = _window(text, start, end, terms)
    parts = [
        strip_markdown(text[max(s, start) : min(e, end)])
        for s, e in (sentences[i] for i in chosen)
        if max(s, start) < min(e, end)
    ]
    shown = [highlight(part, terms) for part in parts if part]
    pieces: list[SafeString | str] = ["… " if lead else ""]
    for i, piece in enumerate(shown):
        if i:
            # A heading or list item without closing punctuation goes on a line of its own.
            pieces.append(" " if parts[i - 1].endswith(tuple(_TERMINAL)) else "\n")
        pieces.append(piece)
    pieces.append(" …" if tail else "")
    html = format_html_join("", "{}", ((piece,) for piece in pieces))
    return Snippet(start, end, html, matched=matched)


def _with_neighbour(
    text: str, sentences: list[tuple[int, int]], weights: list[tuple[int, int]], best: int
) -> list[int]:
    """The short sentence and the neighbour that fits with it (more matches first, then the next one)."""
    headings = [_is_heading(text[s:e]) for s, e in sentences]
    candidates = [i for i in (best + 1, best - 1) if 0 <= i < len(sentences)]
    candidates.sort(key=lambda i: (-weights[i][0], -weights[i][1], i < best))
    for i in candidates:
        if i > best and headings[i]:
            continue  # a heading after the sentence opens the next section
        if i < best and (headings[best] or (headings[i] and not weights[i][0])):
            continue  # the end of the section before a heading; a heading without the words
        first, last = min(i, best), max(i, best)
        if sentences[last][1] - sentences[first][0] <= SNIPPET_MAX:
            return [first, last]
    return [best]


def _window(text: str, start: int, end: int, terms: Sequence[str]) -> tuple[int, int, bool, bool]:
    """At most SNIPPET_MAX characters of [start, end), around the first matched word, on word bounds."""
    if end - start <= SNIPPET_MAX:
        return start, end, False, False
    first = next(
        (m.start() for m in _WORD.finditer(text, start, end) if matching_term(m.group(), terms)), start
    )
    left = max(start, min(first - WINDOW_LEAD, end - SNIPPET_MAX))
    right = min(end, left + SNIPPET_MAX)
    if left > start and not text[left - 1].isspace():
        gap = _SPACE.search(text, left, first)  # forward to the next word's start
        left = gap.end() if gap else first
    if right < end and not text[right].isspace():
        space = text.rfind(" ", left + 1, right)  # back to the last word's end
        right = space if space > left else right
    right = left + len(text[left:right].rstrip())
    return left, right, left > start, right < end


# --- a hit as the page shows it ----------------------------------------------------


@dataclass(frozen=True)
class ShownHit:
    document_id: str
    document_title: str
    project_id: str
    project_title: str
    snippet: SafeString
    matched: bool
    start: int  # offsets of the snippet in the document's text, for the document page's highlight
    end: int
    position: int | None  # the chunk's place in its document, from 1
    chunk_count: int | None


def present_hits(
    hits: Iterable[Hit], *, terms: Sequence[str], positions: Mapping[int, tuple[int, int]]
) -> list[ShownHit]:
    """Each hit with its best snippet; `positions` maps chunk id -> (chunk index, document chunk count)."""
    shown = []
    for hit in hits:
        snippet = best_snippet(hit.text, terms)
        index, count = positions.get(hit.chunk_id, (None, None))
        shown.append(
            ShownHit(
                document_id=hit.document_id,
                document_title=hit.document_title,
                project_id=hit.project_id,
                project_title=hit.project_title,
                snippet=snippet.html,
                matched=snippet.matched,
                start=hit.start + snippet.start,
                end=hit.start + snippet.end,
                position=None if index is None else index + 1,
                chunk_count=count,
            )
        )
    return shown
