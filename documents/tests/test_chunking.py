"""Sentence splitting and token-bounded chunking with exact offsets."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from documents.chunking import (
    ChunkSpan,
    chunk_text,
    count_tokens_batch,
    default_token_counter,
    split_sentences,
)

ABSTRACT = (
    "Background: Chronic kidney disease affects 10.5% of adults worldwide. "
    "We studied 1,204 patients recruited by Dr. Okafor et al. between 2015 and 2019. "
    "Renal function, i.e. the estimated GFR, was measured every 3.5 months. "
    "Results were compared vs. a matched control group (see Fig. 2 and No. 7 in the appendix). "
    "Patients on the new regimen lost less function! Was the effect durable? "
    "Yes: it persisted at 24 months. "
    '"These findings change practice," said Prof. Lindqvist. '
    "Mr. Hale and Mrs. Yu coordinated the sites in the U.S. and Sweden. "
    "Adverse events were rare, and no deaths were attributed to treatment. "
    "Further trials are warranted to confirm long-term safety in older adults."
)


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def words(text: str) -> int:
    """An additive stand-in counter: one token per whitespace-separated word."""
    return len(text.split())


def assert_chunk_invariants(text: str, chunks: list[ChunkSpan], max_tokens: int) -> None:
    covered = [False] * len(text)
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.token_count <= max_tokens
        for offset in range(chunk.start, chunk.end):
            covered[offset] = True
    for earlier, later in itertools.pairwise(chunks):
        assert later.start > earlier.start
        assert later.end > earlier.end
    assert all(covered[i] for i, char in enumerate(text) if not char.isspace())


# -- Sentences ---------------------------------------------------------------


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    assert sentences(ABSTRACT) == [
        "Background: Chronic kidney disease affects 10.5% of adults worldwide.",
        "We studied 1,204 patients recruited by Dr. Okafor et al. between 2015 and 2019.",
        "Renal function, i.e. the estimated GFR, was measured every 3.5 months.",
        ("Results were compared vs. a matched control group (see Fig. 2 and No. 7 in the appendix)."),
        "Patients on the new regimen lost less function!",
        "Was the effect durable?",
        "Yes: it persisted at 24 months.",
        '"These findings change practice," said Prof. Lindqvist.',
        "Mr. Hale and Mrs. Yu coordinated the sites in the U.S. and Sweden.",
        "Adverse events were rare, and no deaths were attributed to treatment.",
        "Further trials are warranted to confirm long-term safety in older adults.",
    ]


def test_e_g_and_et_al_before_a_capital_do_not_split() -> None:
    text = "Use a vector store, e.g. Qdrant or FAISS. Smith et al. Showed it first."
    assert sentences(text) == [
        "Use a vector store, e.g. Qdrant or FAISS.",
        "Smith et al. Showed it first.",
    ]


def test_no_followed_by_a_capital_is_a_sentence_end() -> None:
    assert sentences("The answer is no. Then we left. See No. 5 here.") == [
        "The answer is no.",
        "Then we left.",
        "See No. 5 here.",
    ]


def test_initials_do_not_split() -> None:
    assert sentences("Written by J. R. Tolkien. It sold well.") == [
        "Written by J. R. Tolkien.",
        "It sold well.",
    ]


def test_sentence_after_closing_quote_and_before_opening_quote() -> None:
    assert sentences('He said "stop." "Why?" she asked. (Nobody knew.) Then rain.') == [
        'He said "stop."',
        '"Why?" she asked.',
        "(Nobody knew.)",
        "Then rain.",
    ]


def test_lowercase_after_period_does_not_split() -> None:
    assert sentences("Values near approx. five were seen. ok then.") == [
        "Values near approx. five were seen. ok then."
    ]


def test_paragraph_breaks_bullets_and_headings_split() -> None:
    text = (
        "# Methods\nWe did things\n\nNo punctuation here\n\n"
        "Steps:\n- first step\n* second step\n2. third step\n"
    )
    assert sentences(text) == [
        "# Methods",
        "We did things",
        "No punctuation here",
        "Steps:",
        "- first step",
        "* second step",
        "2. third step",
    ]


def test_single_line_break_inside_a_sentence_does_not_split() -> None:
    text = "A sentence wrapped\nacross two lines. Next one."
    assert sentences(text) == ["A sentence wrapped\nacross two lines.", "Next one."]


def test_sentence_spans_are_tight_and_exact() -> None:
    text = "  \n First one.   Second one!\t\n\n  Third?  \n"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one!", "Third?"]
    for start, end in spans:
        assert not text[start].isspace() and not text[end - 1].isspace()


def test_split_sentences_of_blank_text_is_empty() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\t ") == []


def test_cjk_terminators_split_without_spaces() -> None:
    assert sentences("これは文です。次の文です！") == ["これは文です。", "次の文です！"]


# -- Token counting ----------------------------------------------------------


def test_default_counter_excludes_special_tokens_and_never_truncates() -> None:
    count = default_token_counter()
    assert count("") == 0
    assert count("hello world") == 2
    long_text = "word " * 1000
    assert count(long_text) == 1000


def test_batch_counts_match_single_counts() -> None:
    texts = ["hello world", "", "Chronic kidney disease.", "naïve café"]
    count = default_token_counter()
    assert count_tokens_batch(texts) == [count(text) for text in texts]
    assert count_tokens_batch([]) == []


def test_chunker_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from documents.chunking import chunk_text; chunk_text('Hello there.'); "
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules"
    )
    project_root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=project_root)


# -- Chunks ------------------------------------------------------------------


def test_blank_text_gives_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text("  \n\n \t") == []


def test_short_text_is_one_tight_chunk() -> None:
    text = "\n  One sentence only.  \n"
    assert chunk_text(text) == [ChunkSpan(index=0, start=3, end=21, text="One sentence only.", token_count=4)]


def test_abstract_chunks_respect_limit_and_offsets() -> None:
    chunks = chunk_text(ABSTRACT, max_tokens=60, overlap_tokens=15)
    assert len(chunks) > 1
    assert_chunk_invariants(ABSTRACT, chunks, 60)
    count = default_token_counter()
    assert all(chunk.token_count == count(chunk.text) for chunk in chunks)


def test_chunks_are_whole_sentences() -> None:
    spans = split_sentences(ABSTRACT)
    starts = {start for start, _ in spans}
    ends = {end for _, end in spans}
    for chunk in chunk_text(ABSTRACT, max_tokens=50, overlap_tokens=10):
        assert chunk.start in starts
        assert chunk.end in ends


def test_consecutive_chunks_overlap_by_trailing_sentences() -> None:
    text = " ".join(f"Sentence number {n} has five words." for n in range(1, 21))
    chunks = chunk_text(text, max_tokens=20, overlap_tokens=6, count_tokens=words)
    assert len(chunks) > 2
    assert_chunk_invariants(text, chunks, 20)
    for earlier, later in itertools.pairwise(chunks):
        assert later.start < earlier.end  # overlapping
        overlap = text[later.start : earlier.end]
        assert words(overlap) <= 6
        assert overlap == text[later.start : earlier.end].strip()


def test_zero_overlap_gives_disjoint_chunks() -> None:
    text = " ".join(f"Sentence number {n} has five words." for n in range(1, 21))
    chunks = chunk_text(text, max_tokens=20, overlap_tokens=0, count_tokens=words)
    for earlier, later in itertools.pairwise(chunks):
        assert later.start > earlier.end


def test_overlap_larger_than_limit_still_progresses() -> None:
    text = " ".join(f"Short sentence {n}." for n in range(50))
    chunks = chunk_text(text, max_tokens=6, overlap_tokens=100, count_tokens=words)
    assert_chunk_invariants(text, chunks, 6)
    assert len(chunks) < 60


def test_long_single_sentence_is_split_at_word_boundaries() -> None:
    text = "This " + "very " * 500 + "long sentence never ends."
    chunks = chunk_text(text, max_tokens=50, overlap_tokens=10)
    assert len(chunks) >= 10
    assert_chunk_invariants(text, chunks, 50)
    boundaries = {0, len(text)} | {i for i, c in enumerate(text) if c == " "}
    boundaries |= {i + 1 for i, c in enumerate(text) if c == " "}
    for chunk in chunks:
        assert chunk.start in boundaries and chunk.end in boundaries


def test_single_enormous_word_is_split_by_characters() -> None:
    text = "x" * 50 + " " + "ab" * 3000
    chunks = chunk_text(text, max_tokens=5, overlap_tokens=0, count_tokens=lambda s: len(s) // 20)
    assert_chunk_invariants(text, chunks, 5)


def test_every_sentence_appears_in_some_chunk() -> None:
    text = ABSTRACT + "\n\n" + ABSTRACT.upper()
    chunks = chunk_text(text, max_tokens=40, overlap_tokens=10)
    for start, end in split_sentences(text):
        assert any(c.start <= start and end <= c.end for c in chunks)


def test_chunking_is_deterministic() -> None:
    text = ABSTRACT * 5
    assert chunk_text(text, max_tokens=64) == chunk_text(text, max_tokens=64)


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        chunk_text("Hi.", max_tokens=0)
    with pytest.raises(ValueError):
        chunk_text("Hi.", overlap_tokens=-1)


def test_abstract_chunks_in_under_five_milliseconds() -> None:
    abstract = (ABSTRACT * 2)[:1500]
    chunk_text(abstract)  # load the tokenizer outside the timing
    rounds = 20
    best = float("inf")
    # Best of several batches, so a busy machine does not fail the test.
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(rounds):
            chunk_text(abstract)
        best = min(best, (time.perf_counter() - began) / rounds)
    assert best < 0.005
