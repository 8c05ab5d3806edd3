"""Where extracted text came from, from real files built in the test: PDF pages (typed, scanned
and mixed, with the OCR word boxes), slides and their notes, sheet rows as Excel numbers them,
CSV records, EPUB chapters, and the heading paths of Word, HTML and Markdown documents."""

from __future__ import annotations

import io
from typing import Any

import docx
import pytest
from docx.table import Table
from pypdf import PdfReader

from documents.extraction import locating, readers, sandbox
from documents.extraction.readers import Extracted, extract_text, normalise
from documents.tests import samples
from documents.tests.test_extraction import HTML_PAGE, build_pdf


def assert_ranges_are_sound(result: Extracted) -> None:
    """Every range lies within the text, after the one before, and covers text, not whitespace."""
    end_before = 0
    for start, end, locator in result.locations:
        assert end_before <= start < end <= len(result.text), result.locations
        span = result.text[start:end]
        assert span == span.strip()
        assert isinstance(locator, dict) and locator["kind"] in (
            "page",
            "slide",
            "sheet",
            "rows",
            "chapter",
            "section",
        )
        end_before = end


def located(result: Extracted, needle: str) -> dict[str, Any] | None:
    """The locator of the range holding `needle` (all of it), None when no range does."""
    at = result.text.index(needle)
    for start, end, locator in result.locations:
        if start <= at and at + len(needle) <= end:
            return locator
    return None


def word_box(result: Extracted, page: int, word: str) -> list[float]:
    boxes = [entry[1:] for entry in result.ocr_words[page] if entry[0].strip(".,") == word]
    assert boxes, (word, result.ocr_words[page])
    return boxes[0]


# -- PDF -------------------------------------------------------------------------


def test_each_page_of_a_five_page_pdf_is_located_at_its_page() -> None:
    pages = [
        [f"Page {number} is about harbour topic {number}.", f"More on topic {number}."]
        for number in range(1, 6)
    ]
    data = build_pdf(pages)
    result = extract_text(data, filename="report.pdf")
    assert_ranges_are_sound(result)
    for number in range(1, 6):
        assert located(
            result, f"Page {number} is about harbour topic {number}.\nMore on topic {number}."
        ) == {
            "kind": "page",
            "page": number,
        }
    assert len(result.locations) == 5
    assert result.ocr_words == {}
    # The text is what it always was: the pages' text, a blank line between pages.
    reader = PdfReader(io.BytesIO(data))
    assert result.text == normalise("\n\n".join(page.extract_text() for page in reader.pages))


def test_a_page_without_text_has_no_range_and_the_next_page_keeps_its_number() -> None:
    result = extract_text(build_pdf([["First page."], [], ["Third page."]]))
    assert result.text == "First page.\n\nThird page."
    assert result.locations == (
        (0, 11, {"kind": "page", "page": 1}),
        (13, 24, {"kind": "page", "page": 3}),
    )


def scanned_page(number: int) -> Any:
    """A tall scan: one line near the top, one near the bottom."""
    return samples.scan([f"Upper harbour note {number}", "", "", "", "", "", f"Lower ferry note {number}"])


def test_scanned_pdf_pages_are_located_as_ocr_pages_with_word_boxes() -> None:
    result = extract_text(samples.scanned_pdf([scanned_page(n) for n in (1, 2, 3)]), filename="scan.pdf")
    assert_ranges_are_sound(result)
    for number in (1, 2, 3):
        assert located(result, f"Upper harbour note {number}") == {
            "kind": "page",
            "page": number,
            "ocr": True,
        }
        assert located(result, f"Lower ferry note {number}") == {"kind": "page", "page": number, "ocr": True}
    assert sorted(result.ocr_words) == [1, 2, 3]
    for number in (1, 2, 3):
        words = result.ocr_words[number]
        assert [
            entry[0] for entry in words
        ] == f"Upper harbour note {number} Lower ferry note {number}".split()
        for _, x0, y0, x1, y1 in words:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        upper, lower = word_box(result, number, "Upper"), word_box(result, number, "Lower")
        assert upper[3] < 0.5 < lower[1]
        # Left-aligned lines: both start near the left edge, "note" further right than "Upper".
        assert upper[0] < 0.1 and lower[0] < 0.1
        assert word_box(result, number, "note")[0] > upper[2]


def test_a_mixed_pdf_locates_typed_and_scanned_pages_and_keeps_words_of_the_scans_only() -> None:
    data = samples.merge_pdfs(
        build_pdf([["Typed page about the lighthouse."]]),
        samples.scanned_pdf([scanned_page(2)]),
        build_pdf([["Typed page about the pier."]]),
    )
    result = extract_text(data, filename="mixed.pdf")
    assert_ranges_are_sound(result)
    assert located(result, "Typed page about the lighthouse.") == {"kind": "page", "page": 1}
    assert located(result, "Upper harbour note 2") == {"kind": "page", "page": 2, "ocr": True}
    assert located(result, "Typed page about the pier.") == {"kind": "page", "page": 3}
    assert sorted(result.ocr_words) == [2]
    assert word_box(result, 2, "harbour")[3] < 0.5


def test_ocr_text_is_tesseracts_plain_text_as_before() -> None:
    image = samples.scan(["The harbour opens at dawn.", "Invoice number 4711", "", "A new paragraph here"])
    text, words = readers._ocr(image)
    assert text.split() == [entry[0] for entry in words]
    assert "The harbour opens at dawn.\n" in text and "Invoice number 4711" in text


def test_each_page_of_a_multipage_tiff_is_located_and_a_single_image_keeps_only_its_words() -> None:
    tiff = samples.multipage_tiff([samples.scan(["First page words"]), samples.scan(["Second page words"])])
    result = extract_text(tiff, filename="scan.tiff")
    assert located(result, "First page words") == {"kind": "page", "page": 1, "ocr": True}
    assert located(result, "Second page words") == {"kind": "page", "page": 2, "ocr": True}
    assert [entry[0] for entry in result.ocr_words[2]] == ["Second", "page", "words"]
    png = extract_text(samples.image_bytes(samples.scan(["The harbour opens at dawn."]), "PNG"))
    assert png.locations == ()
    assert [entry[0] for entry in png.ocr_words[1]] == ["The", "harbour", "opens", "at", "dawn."]


# -- PPTX, XLSX, CSV -------------------------------------------------------------


def test_slides_are_located_by_number_and_speaker_notes_are_flagged() -> None:
    result = extract_text(samples.pptx_deck(), filename="deck.pptx")
    assert_ranges_are_sound(result)
    assert result.text == (
        "Slide 1: Harbour plan\n\nDredge the channel\nRebuild the north pier\n\n"
        "Slide 2: Budget\n\nItem | Cost\n\nDredging | 40000\n\n"
        "Notes: Mention the grant from the port authority.\n\n"
        "Slide 3\n\nQuestions welcome at the quay."
    )
    assert located(result, "Rebuild the north pier") == {"kind": "slide", "slide": 1}
    assert located(result, "Slide 2: Budget\n\nItem | Cost\n\nDredging | 40000") == {
        "kind": "slide",
        "slide": 2,
    }
    assert located(result, "Notes: Mention the grant") == {"kind": "slide", "slide": 2, "notes": True}
    assert located(result, "Slide 3\n\nQuestions welcome at the quay.") == {"kind": "slide", "slide": 3}


def test_sheet_rows_are_located_by_the_row_numbers_excel_shows() -> None:
    result = extract_text(samples.xlsx_with_gaps(), filename="budget.xlsx")
    assert_ranges_are_sound(result)
    assert result.text == (
        "Sheet: Budget\nItem | Cost\nRope | 12.5\nSail | 300\nAnchor | 80\n\nSheet: Crew\nAda | Skipper\nGrace | Navigator"
    )

    def sheet(name: str, row: int) -> dict[str, Any]:
        return {"kind": "sheet", "sheet": name, "rows": [row, row]}

    # The "Sheet: name" line goes with the sheet's first row.
    assert located(result, "Sheet: Budget\nItem | Cost") == sheet("Budget", 1)
    assert located(result, "Rope | 12.5") == sheet("Budget", 2)
    assert located(result, "Sail | 300") == sheet("Budget", 4)  # row 3 is empty
    assert located(result, "Anchor | 80") == sheet("Budget", 5)
    assert located(result, "Sheet: Crew\nAda | Skipper") == sheet("Crew", 4)
    assert located(result, "Grace | Navigator") == sheet("Crew", 5)
    assert len(result.locations) == 6


def test_the_cell_limit_note_of_a_workbook_has_no_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "LIMITS", readers.ReaderLimits(sheet_max_cells=30))
    result = extract_text(samples.xlsx_workbook(rows=40))
    assert result.text.endswith("only the rows within that limit were read.]")
    assert located(result, "[The workbook has more than 30 cells") is None
    assert located(result, "Extra 0 | 0") == {"kind": "sheet", "sheet": "Budget", "rows": [3, 3]}


def test_csv_lines_are_located_by_record_number() -> None:
    data = b'name,qty\nrope,3\n\nsail,"one\nor two"\nmast,1\n'
    result = extract_text(data, filename="stock.csv")
    assert_ranges_are_sound(result)
    assert result.text == "name | qty\nrope | 3\nsail | one or two\nmast | 1"
    assert [locator for _, _, locator in result.locations] == [
        {"kind": "rows", "rows": [1, 1]},
        {"kind": "rows", "rows": [2, 2]},
        # The blank line is record 3; the quoted line break stays inside record 4.
        {"kind": "rows", "rows": [4, 4]},
        {"kind": "rows", "rows": [5, 5]},
    ]
    assert located(result, "sail | one or two") == {"kind": "rows", "rows": [4, 4]}


# -- EPUB --------------------------------------------------------------------------


def test_epub_chapters_are_located_by_their_headings() -> None:
    result = extract_text(samples.epub_book(spine=("two", "one", "three")), filename="voyage.epub")
    assert_ranges_are_sound(result)
    assert located(result, "Chapter Two\n\nA storm gathers over the bay.") == {
        "kind": "chapter",
        "heading": "Chapter Two",
    }
    assert located(result, "The ship leaves the harbour.") == {"kind": "chapter", "heading": "Chapter One"}
    assert located(result, "The crew comes home at dawn.") == {"kind": "chapter", "heading": "Chapter Three"}


@pytest.mark.parametrize("toc", ["nav", "ncx"])
def test_an_epub_chapter_without_a_heading_is_named_by_the_table_of_contents_then_its_title(toc: str) -> None:
    result = extract_text(samples.epub_with_toc(toc=toc), filename="voyage.epub")
    assert_ranges_are_sound(result)
    assert (
        result.text
        == "Leaving Port\n\nThe ship leaves the harbour.\n\nA storm gathers over the bay.\n\nThe crew comes home at dawn."
    )
    # A heading in the chapter wins over the table of contents' "Part One".
    assert located(result, "The ship leaves the harbour.") == {"kind": "chapter", "heading": "Leaving Port"}
    assert located(result, "A storm gathers over the bay.") == {"kind": "chapter", "heading": "The Storm"}
    assert located(result, "The crew comes home at dawn.") == {"kind": "chapter", "heading": "Homecoming"}


# -- DOCX, HTML, Markdown -------------------------------------------------------------


def section(heading: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "section", "heading": heading, **extra}


def test_a_long_word_document_is_located_by_heading_path_and_table() -> None:
    data = samples.docx_handbook()
    result = extract_text(data, filename="handbook.docx")
    assert_ranges_are_sound(result)
    assert located(result, "Preface before any heading.") is None
    # A Title is the level of a Heading 1: the sections under it replace it.
    assert located(result, "Welcome to the company handbook.") == section("Employee Handbook")
    assert located(result, "Warranty filler paragraph 11") == section("Warranty")
    assert located(result, "Returns are accepted within thirty days.") == section("Warranty > Returns")
    assert located(result, "Item | Days\n\nKettle | 30") == section("Warranty > Returns", table=True)
    assert located(result, "After the returns table.") == section("Warranty > Returns")
    assert located(result, "Refunds\n\nRefunds go to the original card.") == section(
        "Warranty > Returns > Refunds"
    )
    assert located(result, "Shipping filler paragraph 0") == section("Shipping")
    # A style based on Heading 2 is a level-2 heading; an outline level alone makes a heading.
    assert located(result, "Oversize parcels travel by freight.") == section("Shipping > Oversize parcels")
    assert located(result, "Customs forms are filled in by the sender.") == section("Customs by outline")
    # The text is what it always was: paragraphs and table rows, a blank line between them.
    document = docx.Document(io.BytesIO(data))
    blocks = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            blocks += [" | ".join(cell.text for cell in row.cells) for row in block.rows]
        else:
            blocks.append(block.text)
    assert result.text == normalise("\n\n".join(blocks))


def test_html_sections_follow_the_heading_levels() -> None:
    page = (
        b"<!doctype html><html><head><title>Policy</title></head><body>"
        b"<p>Before any heading.</p><h1>Warranty</h1><p>Cover for two years.</p>"
        b"<h2>Returns <em>and</em> refunds</h2><p>Thirty days.</p><h3>Receipts</h3><p>Keep them.</p>"
        b"<h2>Repairs</h2><table><tr><td>Kettle</td><td>free</td></tr></table>"
        b"<h2></h2><p>An empty heading changes nothing.</p><h1>Shipping</h1><p>By parcel.</p></body></html>"
    )
    result = extract_text(page, filename="policy.html")
    assert_ranges_are_sound(result)
    assert result.text == (
        "Before any heading.\n\nWarranty\n\nCover for two years.\n\nReturns and refunds\n\nThirty days.\n\n"
        "Receipts\n\nKeep them.\n\nRepairs\n\nKettle free\n\nAn empty heading changes nothing.\n\nShipping\n\nBy parcel."
    )
    assert located(result, "Before any heading.") is None
    assert located(result, "Warranty\n\nCover for two years.") == section("Warranty")
    assert located(result, "Thirty days.") == section("Warranty > Returns and refunds")
    assert located(result, "Keep them.") == section("Warranty > Returns and refunds > Receipts")
    assert located(result, "Kettle free") == section("Warranty > Repairs")
    assert located(result, "An empty heading changes nothing.") == section("Warranty > Repairs")
    assert located(result, "By parcel.") == section("Shipping")


def test_markdown_sections_follow_atx_and_setext_headings_but_not_code() -> None:
    source = (
        "Front words.\n\n# Warranty\n\nCover for two years.\n\nReturns *and* refunds\n---------------------\n\n"
        "Thirty days.\n\n```\n# not a heading\n```\n\n### Receipts ###\nKeep them.\n\nShipping\n========\nBy parcel.\n"
    )
    result = extract_text(source.encode(), filename="policy.md")
    assert_ranges_are_sound(result)
    assert result.text == normalise(source)
    assert located(result, "Front words.") is None
    assert located(result, "# Warranty\n\nCover for two years.") == section("Warranty")
    assert located(result, "Returns *and* refunds\n----") == section("Warranty > Returns and refunds")
    assert located(result, "# not a heading") == section("Warranty > Returns and refunds")
    assert located(result, "Keep them.") == section("Warranty > Returns and refunds > Receipts")
    assert located(result, "Shipping\n===") == section("Shipping")


def test_text_and_fetched_web_pages_have_no_locations() -> None:
    assert extract_text(b"# Not markdown here", filename="notes.txt").locations == ()
    web = extract_text(samples.NEWS_PAGE, filename="tides" + readers.WEB_PAGE_SUFFIX)
    assert web.text and web.locations == ()
    uploaded = extract_text(samples.NEWS_PAGE, filename="tides.html")
    assert located(uploaded, "Fishermen welcomed the news") == section("The tide turns at noon")


# -- The markers never touch the text ---------------------------------------------------


def test_noncharacters_in_a_document_stay_in_its_text_and_do_not_confuse_the_locations() -> None:
    odd = "\ufdd0" + "0" + "\ufdd1" + "\ufdd2\ufdd0" + "5\ufdd1"
    page = f"<h1>Odd {odd} heading</h1><p>Body {odd} text.</p><h2>Next</h2><p>\u0301accent first</p>".encode()
    result = extract_text(page, filename="odd.html")
    assert result.text == f"Odd {odd} heading\n\nBody {odd} text.\n\nNext\n\n\u0301accent first"
    assert_ranges_are_sound(result)
    assert located(result, f"Body {odd} text.") == section(f"Odd {odd} heading")
    assert located(result, "accent first") == section(f"Odd {odd} heading > Next")


def test_locations_are_left_out_rather_than_let_a_marker_change_the_text() -> None:
    # Tamil vowel signs that compose into one character; a marker between them would stop that.
    marked = locating.assemble(
        [({"kind": "rows", "rows": [1, 1]}, "\u0bc6"), ({"kind": "rows", "rows": [2, 2]}, "\u0bbe more")],
        limit=1000,
        too_long=RuntimeError,
    )
    text = normalise(locating.plain(marked.text))
    assert text == "\u0bca more"
    assert locating.locations(marked, text, normalise) == ()


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("a.pdf", lambda: build_pdf([["One."], ["Two."]])),
        ("a.pptx", samples.pptx_deck),
        ("a.xlsx", samples.xlsx_with_gaps),
        ("a.epub", samples.epub_book),
        ("a.docx", samples.docx_handbook),
        ("a.html", lambda: HTML_PAGE),
        ("a.html", lambda: samples.NEWS_PAGE),
        ("a.csv", lambda: b"a;b\n1;2\n"),
    ],
)
def test_every_format_gives_sound_ranges_that_cover_its_words(name: str, build: Any) -> None:
    result = extract_text(build(), filename=name)
    assert result.locations
    assert_ranges_are_sound(result)
    covered = "".join(result.text[start:end] for start, end, _ in result.locations)
    assert len(covered) > len(result.text) / 2


# -- The sandbox -----------------------------------------------------------------


def test_the_sandbox_child_gives_the_same_locations_and_ocr_words(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "mixed.pdf": samples.merge_pdfs(build_pdf([["Typed page."]]), samples.scanned_pdf([scanned_page(2)])),
        "budget.xlsx": samples.xlsx_with_gaps(),
        "handbook.docx": samples.docx_handbook(filler=2),
        "deck.pptx": samples.pptx_deck(),
    }
    direct = {name: extract_text(data, filename=name) for name, data in files.items()}

    def refuse(data: bytes) -> str:
        raise AssertionError("read in the worker process itself")

    for fmt in sandbox.SANDBOXED_FORMATS:
        monkeypatch.setitem(readers._EXTRACTORS, fmt, refuse)
    for name, data in files.items():
        child = sandbox.extract_text_bounded(data, filename=name)
        assert child == direct[name]
        assert child.locations == direct[name].locations, name
        assert child.ocr_words == direct[name].ocr_words, name
    assert sorted(direct["mixed.pdf"].ocr_words) == [2]
