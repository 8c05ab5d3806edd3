"""How a search hit is shown: its best sentence, with the query's words marked.

Pure functions over the search pipeline's hits (`documents.search.Hit`, weak hits
already cut there) and plain facts the view reads for them (chunk positions): no
database, no model. Which words match the query comes from `documents.search.text`,
as it does for the cut. Snippets are built from escaped pieces with `format_html`, so a
chunk or a query holding markup stays text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

from documents import locations
from documents.chunking import split_sentences
from documents.search import Hit
from documents.search.text import WORD, matched_spans, matching_term, query_terms

_SPACE = re.compile(r"\s+")

# A sentence shorter than this is shown with its neighbour ("two short ones").
SHORT_SENTENCE = 80
# The most of a chunk a snippet shows; a longer sentence is cut to a window around its first match.
SNIPPET_MAX = 280
# How much of a long sentence is kept before its first matched word.
WINDOW_LEAD = 60
_TERMINAL = ".!?…:;\"'”’)]"

__all__ = ["query_terms", "present_hits", "best_snippet", "highlight", "strip_markdown"]


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
    for match in matched_spans(text, terms):
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
    found = [matching_term(word, terms) for word in WORD.findall(text)]
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
    first = next((m.start() for m in matched_spans(text, terms, start, end)), start)
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
    location_label: str = ""  # where the passage is in the file: "p. 12", "Slide 4"
    href: str = ""  # where it opens: the PDF viewer at its page, or the document's text


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
                location_label=locations.label(hit.location),
                href=locations.source_href(
                    hit.document_id, hit.document_format, hit.start + snippet.start, hit.start + snippet.end
                ),
            )
        )
    return shown
