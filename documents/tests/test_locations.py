"""Where a passage is in its file: merging the extraction's ranges, the labels people read, the
lookup of any span, and OCR word boxes for a quoted passage on a scanned page."""

from __future__ import annotations

from typing import Any

import pytest

from documents import locations
from documents.models import Document, DocumentStatus, PageWords
from documents.tests.factories import ChunkFactory

PAGE = {"kind": "page"}


@pytest.mark.parametrize(
    ("location", "text"),
    [
        ({"kind": "page", "page": 12}, "p. 12"),
        ({"kind": "page", "page": 12, "page_end": 13}, "pp. 12–13"),
        ({"kind": "slide", "slide": 4}, "Slide 4"),
        ({"kind": "slide", "slide": 4, "notes": True}, "Slide 4 (notes)"),
        ({"kind": "slide", "slide": 4, "slide_end": 6}, "Slides 4–6"),
        ({"kind": "sheet", "sheet": "Budget", "rows": [30, 32]}, "Budget, rows 30–32"),
        ({"kind": "sheet", "sheet": "Budget", "rows": [30, 30]}, "Budget, row 30"),
        ({"kind": "sheet", "sheet": "Budget"}, "Budget"),
        ({"kind": "rows", "rows": [2, 9]}, "Rows 2–9"),
        ({"kind": "chapter", "heading": "The Delta"}, "The Delta"),
        ({"kind": "section", "heading": "Warranty > Returns"}, "§ Warranty > Returns"),
        ({"kind": "section", "heading": "Prices", "table": True}, "§ Prices (table)"),
        (None, ""),
        ({"kind": "page", "page": 0}, ""),
        ({"kind": "page", "page": "3"}, ""),
        ({"kind": "mystery", "page": 3}, ""),
        ("p. 3", ""),
    ],
)
def test_a_location_reads_as_people_cite_it(location: Any, text: str) -> None:
    assert locations.label(location) == text


def test_a_passage_across_pages_merges_into_a_page_range() -> None:
    merged = locations.merge([{"kind": "page", "page": 12}, {"kind": "page", "page": 13}])
    assert merged == {"kind": "page", "page": 12, "page_end": 13}
    assert locations.merge([{"kind": "page", "page": 3, "ocr": True}]) == {
        "kind": "page",
        "page": 3,
        "ocr": True,
    }
    assert "ocr" not in (
        locations.merge([{"kind": "page", "page": 3, "ocr": True}, {"kind": "page", "page": 4}]) or {}
    )


def test_rows_merge_within_the_first_sheet_and_headings_keep_the_first() -> None:
    rows = [
        {"kind": "sheet", "sheet": "Budget", "rows": [30, 30]},
        {"kind": "sheet", "sheet": "Budget", "rows": [31, 32]},
        {"kind": "sheet", "sheet": "Staff", "rows": [1, 1]},
    ]
    assert locations.merge(rows) == {"kind": "sheet", "sheet": "Budget", "rows": [30, 32]}
    headings = [{"kind": "section", "heading": "A > B"}, {"kind": "section", "heading": "A > C"}]
    assert locations.merge(headings) == {"kind": "section", "heading": "A > B"}
    notes = [{"kind": "slide", "slide": 4}, {"kind": "slide", "slide": 4, "notes": True}]
    assert locations.merge(notes) == {"kind": "slide", "slide": 4}
    assert locations.merge([{"kind": "slide", "slide": 4, "notes": True}]) == {
        "kind": "slide",
        "slide": 4,
        "notes": True,
    }
    assert locations.merge([]) is None
    assert locations.merge([{"kind": "nonsense"}, "junk", None]) is None


def test_a_chunk_keeps_exactly_the_ranges_it_spans() -> None:
    ranges = [(0, 10, {"kind": "rows", "rows": [1, 1]}), (11, 20, {"kind": "rows", "rows": [2, 2]})]
    ranges += [(21 + 10 * n, 30 + 10 * n, {"kind": "rows", "rows": [3 + n, 3 + n]}) for n in range(10_000)]
    kept = locations.chunk_ranges(ranges, 5, 25)
    assert kept == [
        [5, 10, {"kind": "rows", "rows": [1, 1]}],
        [11, 20, {"kind": "rows", "rows": [2, 2]}],
        [21, 25, {"kind": "rows", "rows": [3, 3]}],
    ]
    assert locations.chunk_ranges(ranges, 10, 11) == []
    last = locations.chunk_ranges(ranges, 100_000, 100_020)
    assert [r[2]["rows"][0] for r in last] == [10_001, 10_002]
    assert locations.chunk_ranges([], 0, 5) == []


def ready(project: Any, text: str, fmt: str = "pdf") -> Document:
    return Document.objects.create(
        project=project, title="Manual", format=fmt, status=DocumentStatus.READY, text=text
    )


def test_locate_finds_the_page_of_any_span_from_the_chunks_that_cover_it(project: Any) -> None:
    text = "Page one text.\n\nPage two text.\n\nPage three text."
    doc = ready(project, text)
    pages = [
        (0, 14, {"kind": "page", "page": 1}),
        (16, 30, {"kind": "page", "page": 2}),
        (32, 48, {"kind": "page", "page": 3}),
    ]
    # Two overlapping chunks, as the chunker makes them.
    for index, (start, end) in enumerate([(0, 30), (16, 48)]):
        ChunkFactory(
            document=doc,
            index=index,
            text=text[start:end],
            start=start,
            end=end,
            locations=locations.chunk_ranges(pages, start, end),
        )
    other = ready(project, "plain", fmt="txt")
    ChunkFactory(document=other, index=0, text="plain", start=0, end=5)
    found = locations.locate(
        [
            (doc.pk, 20, 25),
            (str(doc.pk), 5, 20),
            (doc.pk, 33, 40),
            (other.pk, 0, 5),
            ("not-a-uuid", 0, 5),
            (doc.pk, 5, 5),
            (doc.pk, None, 3),
        ],
        project_ids=[project.pk],
    )
    assert found == [
        {"kind": "page", "page": 2},
        {"kind": "page", "page": 1, "page_end": 2},
        {"kind": "page", "page": 3},
        None,
        None,
        None,
        None,
    ]
    assert locations.document_ranges(doc) == [[s, e, loc] for s, e, loc in pages]


def test_the_chunks_api_and_search_hits_carry_the_location(
    project: Any, auth_api: Any, monkeypatch: Any
) -> None:
    from documents.tests.test_search import add_document, fixed_query_vector

    doc = add_document(project, "Deck", [("Quarterly revenue rose sharply", [1, 0, 0, 0])])
    doc.chunks.update(locations=[[0, 30, {"kind": "slide", "slide": 4, "notes": True}]])
    chunks = auth_api.get(f"/api/v1/documents/{doc.pk}/chunks/").json()["results"]
    assert chunks[0]["location"] == {"kind": "slide", "slide": 4, "notes": True, "label": "Slide 4 (notes)"}
    fixed_query_vector(monkeypatch, [1, 0, 0, 0])
    hits = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": "quarterly revenue"}).json()[
        "results"
    ]
    assert hits[0]["location"] == {"kind": "slide", "slide": 4, "notes": True, "label": "Slide 4 (notes)"}
    plain = add_document(project, "Notes", [("Revenue notes in plain text", [1, 0.1, 0, 0])])
    hits = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": "revenue"}).json()["results"]
    assert {h["document"]: h["location"] for h in hits}[str(plain.pk)] is None


def test_the_schema_documents_the_location(auth_api: Any) -> None:
    schema = auth_api.get("/api/schema/", {"format": "json"}).json()
    location = schema["components"]["schemas"]["LocationOut"]["properties"]
    assert {"kind", "label", "page", "page_end", "slide", "sheet", "rows", "heading"} <= set(location)


# --- OCR word boxes -----------------------------------------------------------------------

WORDS = [
    ["The", 0.1, 0.10, 0.15, 0.12],
    ["harbour", 0.16, 0.10, 0.25, 0.12],
    ["opens", 0.26, 0.10, 0.32, 0.12],
    ["at", 0.33, 0.10, 0.35, 0.12],
    ["dawn.", 0.36, 0.10, 0.42, 0.12],
    ["Ships", 0.1, 0.14, 0.16, 0.16],
    ["leave", 0.17, 0.14, 0.23, 0.16],
    ["at", 0.24, 0.14, 0.26, 0.16],
    ["noon.", 0.27, 0.14, 0.33, 0.16],
]


def test_the_words_of_a_quote_on_a_scanned_page_are_boxed(project: Any) -> None:
    doc = ready(project, "The harbour opens at dawn. Ships leave at noon.")
    PageWords.objects.create(document=doc, page=2, words=WORDS)
    boxes = locations.page_marks(doc, "harbour opens at dawn", 2)
    assert boxes == [w[1:] for w in WORDS[1:5]]
    # Case, punctuation and line breaks do not matter; the quote may run over lines.
    assert locations.page_marks(doc, "AT DAWN.\nShips leave", 2) == [w[1:] for w in WORDS[3:7]]
    # OCR misread a word: the longest run still marks most of the passage.
    assert locations.page_marks(doc, "opens at dawn. Shlps leave at noon", 2) == [w[1:] for w in WORDS[2:5]]
    assert locations.page_marks(doc, "at", 2) == [WORDS[3][1:]]
    assert locations.page_marks(doc, "nothing of the kind here", 2) == []
    assert locations.page_marks(doc, "harbour opens at dawn", 1) == []
    assert locations.page_marks(doc, "", 2) == []
