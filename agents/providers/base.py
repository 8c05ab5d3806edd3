"""What every LLM provider takes and returns, and the errors it may raise."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk handed to a provider; `text == document.text[start:end]`."""

    chunk_id: int
    document_id: str
    document_title: str
    text: str
    start: int
    end: int
    score: float = 0.0


@dataclass(frozen=True)
class Citation:
    """A span of a document's extracted text: `quote == document.text[start:end]`."""

    document_id: str
    chunk_id: int
    start: int
    end: int
    quote: str

    def as_dict(self) -> dict[str, object]:
        return {
            "document_id": self.document_id,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "quote": self.quote,
        }


@dataclass
class ProviderResult:
    answer: str
    citations: list[Citation]
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    output: dict = field(default_factory=dict)
    answered: bool = True


class ProviderError(Exception):
    """A failure that retrying will not fix (malformed output, a 4xx other than 429)."""


class TransientProviderError(ProviderError):
    """A failure that may pass: 429, 5xx, timeouts, connection errors.

    `retry_after` is the wait in seconds the service asked for (Retry-After), if any.
    """

    retry_after: float | None = None


class CircuitOpenError(ProviderError):
    """The provider's circuit breaker is open, so the call failed fast."""


class Provider(Protocol):
    name: str
    model: str

    def ask(
        self,
        question: str,
        passages: list[Passage],
        history: list[tuple[str, str]],
        on_delta: Callable[[str], None] | None = None,
    ) -> ProviderResult:
        """Answer `question` from `passages`, citing them.

        `on_delta`, when given, is called in order with pieces of the answer's
        prose (never JSON syntax) while it is generated; their concatenation is
        the answer as generated. The result's `answer` may differ slightly
        (citation markers renumbered, a decline reworded): callers replace the
        streamed text with it.
        """
        ...

    def rewrite_query(self, question: str, history: list[tuple[str, str]]) -> str:
        """`question`, a follow-up in a conversation, as a standalone search query.

        With no history it is `question` unchanged. Never raises ProviderError:
        a provider that cannot rewrite falls back to the offline rewrite.
        """
        ...

    def summarize(self, title: str, passages: list[Passage]) -> ProviderResult: ...

    def extract(self, title: str, passages: list[Passage]) -> ProviderResult: ...


NOT_ANSWERED = "I can't answer that from this project's documents."


def citation_in_passage(passage: Passage, start: int, end: int) -> Citation:
    """A citation for `passage.text[start:end]`, with offsets moved into the document."""
    return Citation(
        document_id=passage.document_id,
        chunk_id=passage.chunk_id,
        start=passage.start + start,
        end=passage.start + end,
        quote=passage.text[start:end],
    )


def _fold(text: str) -> tuple[str, list[int]]:
    """Collapse whitespace runs to one space and lower-case, keeping a map back.

    `positions[i]` is the index in `text` of folded character `i`, so a match in
    the folded string maps back to exact offsets in the original.
    """
    chars: list[str] = []
    positions: list[int] = []
    in_space = False
    for index, char in enumerate(text):
        if char.isspace():
            if not in_space and chars:
                chars.append(" ")
                positions.append(index)
            in_space = True
            continue
        in_space = False
        lowered = char.lower()
        chars.append(lowered if len(lowered) == 1 else char)
        positions.append(index)
    if chars and chars[-1] == " ":
        chars.pop()
        positions.pop()
    return "".join(chars), positions


_QUOTE_TRIM = " \t\r\n\"'“”‘’`«»"
_ELLIPSIS = re.compile(r"^(?:\.\.\.|…)\s*|\s*(?:\.\.\.|…)$")


def find_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` occurs in `text`: exactly, else ignoring whitespace and case.

    Returns offsets into `text` (so `text[start:end]` is the real wording), or
    None when the quote is not there.
    """
    cleaned = _ELLIPSIS.sub("", quote.strip(_QUOTE_TRIM)).strip(_QUOTE_TRIM)
    if not cleaned:
        return None
    exact = text.find(cleaned)
    if exact >= 0:
        return exact, exact + len(cleaned)
    folded_text, positions = _fold(text)
    folded_quote, _ = _fold(cleaned)
    if not folded_quote:
        return None
    found = folded_text.find(folded_quote)
    if found < 0:
        return None
    start = positions[found]
    end = positions[found + len(folded_quote) - 1] + 1
    return start, end
