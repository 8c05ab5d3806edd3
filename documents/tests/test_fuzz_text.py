"""Property tests: hostile bytes never crash extraction; chunks keep their invariants."""

from __future__ import annotations

import io
import itertools
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from documents.chunking import ChunkSpan, chunk_text, split_sentences
from documents.extraction.readers import FORMATS, ExtractionError, extract_text, normalise

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text rich in the characters the splitter and normaliser care about.
prose = st.lists(
    st.one_of(
        st.sampled_from(list("abcXYZ019 .!?…\"'“”()-*•#\n\t\r。")),
        st.sampled_from(["e.g.", "Dr.", " et al. ", "3.14", "No. 5", "\n\n", "\u00a0", "word "]),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
).map("".join)

filenames = st.sampled_from(["", "a.txt", "a.md", "a.pdf", "a.docx", "a.html", "noext"])

prefixes = st.sampled_from(
    [
        b"",
        b"%PDF-1.4\n",
        b"PK\x03\x04",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"<html>",
        b"{\\rtf",
    ]
)


def _docx_like(document_xml: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", document_xml)
    return out.getvalue()


def _check_extraction(data: bytes, filename: str) -> None:
    try:
        result = extract_text(data, filename=filename)
    except ExtractionError as error:
        assert str(error)
        return
    assert result.format in FORMATS
    assert result.text
    assert normalise(result.text) == result.text


@FUZZ
@given(data=st.binary(max_size=4096), prefix=prefixes, filename=filenames)
def test_random_bytes_only_ever_raise_extraction_error(data: bytes, prefix: bytes, filename: str) -> None:
    _check_extraction(prefix + data, filename)


@FUZZ
@given(
    text=prose,
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]),
    filename=filenames,
)
def test_random_text_only_ever_raises_extraction_error(text: str, encoding: str, filename: str) -> None:
    _check_extraction(text.encode(encoding, errors="surrogatepass"), filename)


@FUZZ
@given(body=st.binary(max_size=2048))
def test_zip_with_random_document_xml_only_raises_extraction_error(body: bytes) -> None:
    _check_extraction(_docx_like(body), "x.docx")


@FUZZ
@given(text=prose)
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


@FUZZ
@given(text=prose)
def test_sentence_spans_are_tight_ordered_and_cover_the_text(text: str) -> None:
    spans = split_sentences(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        assert text[previous_end:start].strip() == ""
        previous_end = end
    assert text[previous_end:].strip() == ""


def _words(text: str) -> int:
    return len(text.split())


def _ceil_quarter_chars(text: str) -> int:
    # Not additive: checks the chunker re-verifies what it packs.
    return -(-len(text) // 4)


def _assert_invariants(text: str, chunks: list[ChunkSpan], max_tokens: int) -> None:
    covered = [False] * len(text)
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.token_count <= max_tokens
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    for earlier, later in itertools.pairwise(chunks):
        assert later.start > earlier.start and later.end > earlier.end
    assert all(covered[i] for i, char in enumerate(text) if not char.isspace())
    if not text.strip():
        assert chunks == []


@FUZZ
@given(
    text=prose,
    max_tokens=st.integers(min_value=1, max_value=60),
    overlap_tokens=st.integers(min_value=0, max_value=80),
    counter=st.sampled_from([None, _words, _ceil_quarter_chars]),
)
def test_chunk_invariants_hold_for_any_text(
    text: str, max_tokens: int, overlap_tokens: int, counter: object
) -> None:
    chunks = chunk_text(
        text,
        max_tokens=max_tokens,
        overlap_tokens=overlap_tokens,
        count_tokens=counter,  # type: ignore[arg-type]
    )
    _assert_invariants(text, chunks, max_tokens)
    assert (
        chunk_text(
            text,
            max_tokens=max_tokens,
            overlap_tokens=overlap_tokens,
            count_tokens=counter,  # type: ignore[arg-type]
        )
        == chunks
    )
