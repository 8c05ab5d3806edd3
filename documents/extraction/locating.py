"""Where each stretch of extracted text came from, recorded while a reader assembles it.

A reader gives its text as pieces, each with a locator (a small dict: a page, a slide, sheet
rows, a heading path; see documents.locations) or None for text with no place of its own.
`assemble` joins the pieces and puts a marker before the first visible character of each piece
whose locator differs from the one before: U+FDD0, the locator's index, U+FDD1. These are
Unicode noncharacters, which documents do not carry; one that does has its U+FDD0 and U+FDD2
escaped (U+FDD2 before each), so `plain` gives back the reader's text exactly. A marker never
sits inside a run of whitespace, so normalising collapses whitespace around it as it would
without it.

After normalising, `resolve` removes the markers and turns their positions into character
ranges of the normalised text: a locator runs from its marker to the next one, less trailing
whitespace. The caller checks that the text without markers is the text normalised without
them, and keeps no locations when it is not, so a marker can never change the text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Locator = dict[str, Any]
Range = tuple[int, int, Locator]

_OPEN, _CLOSE, _ESCAPE = "\ufdd0", "\ufdd1", "\ufdd2"
_SPECIAL_RE = re.compile("[\ufdd0\ufdd2]")
_TOKEN_RE = re.compile("\ufdd2([\ufdd0\ufdd2])|\ufdd0([0-9]+)\ufdd1")
# What normalising removes or collapses at the start of a piece (whitespace, control
# characters, lone surrogates, byte-order marks): a marker goes after it.
_LEADING_RE = re.compile(r"[\s\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufeff]*")
# Hangul vowels and final consonants compose with the syllable before them, as combining marks do.
_JAMO_TAIL = range(0x1161, 0x11C3)


def _marker_position(text: str) -> int:
    """Where a marker may go in a piece: past what normalising removes or collapses, and past
    characters that would compose with the text before the piece; len(text) if nothing is left."""
    lead = _LEADING_RE.match(text).end()  # type: ignore[union-attr]  # matches the empty string
    while lead < len(text) and (unicodedata.combining(text[lead]) or ord(text[lead]) in _JAMO_TAIL):
        lead += 1
    return lead


@dataclass
class Marked:
    """A reader's text with its markers, the locators they index, and the OCR words of its scanned pages."""

    text: str
    locators: list[Locator | None] = field(default_factory=list)
    # Page number (1-based) -> [[word, x0, y0, x1, y1], ...], boxes as fractions of the page.
    ocr_words: dict[int, list[list[Any]]] = field(default_factory=dict)


def assemble(
    pieces: Iterable[tuple[Locator | None, str]], *, limit: int, too_long: Callable[[], Exception]
) -> Marked:
    """The pieces joined, each change of locator marked; `too_long` is raised past `limit` characters."""
    parts: list[str] = []
    locators: list[Locator | None] = []
    current: Locator | None = None
    total = 0
    for locator, text in pieces:
        total += len(text)
        if total > limit:
            raise too_long()
        if _OPEN in text or _ESCAPE in text:
            text = _SPECIAL_RE.sub(lambda match: _ESCAPE + match.group(), text)
        if locator != current:
            lead = _marker_position(text)
            # A piece of only whitespace waits: the next visible character starts the locator.
            if lead < len(text):
                parts.append(text[:lead])
                parts.append(f"{_OPEN}{len(locators)}{_CLOSE}")
                locators.append(locator)
                current = locator
                text = text[lead:]
        parts.append(text)
    return Marked("".join(parts), locators)


def _unmark(match: re.Match[str]) -> str:
    return match.group(1) or ""


def plain(text: str) -> str:
    """The text without its markers and escapes: what the reader read."""
    if _OPEN not in text and _ESCAPE not in text:
        return text
    return _TOKEN_RE.sub(_unmark, text)


def resolve(marked: str, locators: list[Locator | None]) -> tuple[str, list[Range]]:
    """The marked text without its markers, and the (start, end, locator) ranges they mark in it."""
    pieces: list[str] = []
    starts: list[tuple[int, int]] = []
    position = length = 0
    for match in _TOKEN_RE.finditer(marked):
        pieces.append(marked[position : match.start()])
        length += match.start() - position
        escaped = match.group(1)
        if escaped:
            pieces.append(escaped)
            length += 1
        else:
            starts.append((length, int(match.group(2))))
        position = match.end()
    pieces.append(marked[position:])
    clean = "".join(pieces)
    ranges: list[Range] = []
    for number, (start, index) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(clean)
        while end > start and clean[end - 1].isspace():
            end -= 1
        locator = locators[index] if index < len(locators) else None
        if locator is not None and end > start:
            ranges.append((start, end, locator))
    return clean, ranges


def locations(marked: Marked, text: str, normalise: Callable[[str], str]) -> tuple[Range, ...]:
    """The ranges of `text` (the normalised text of `marked` without markers) that each locator covers.

    None at all when normalising the marked text gives anything but `text` once the markers
    are out: locations are a nicety, the text is what everything else points into.
    """
    if not any(locator is not None for locator in marked.locators):
        return ()
    clean, ranges = resolve(normalise(marked.text), marked.locators)
    if clean != text:
        logger.warning("locations left out: the marked text normalised differently")
        return ()
    return tuple(ranges)
