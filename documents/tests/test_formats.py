"""The newer formats, from real files built in the test: OCR of scans and images, PPTX, XLSX, CSV,
EPUB and web pages; each sniffed by content and failing with a reason a person can read."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest

from documents.extraction import readers
from documents.extraction.readers import ExtractionError, ReaderLimits, extract_text, sniff_format
from documents.tests import samples
from documents.tests.test_extraction import build_pdf
from tests.security import hostile


def limits(monkeypatch: pytest.MonkeyPatch, **changes: object) -> None:
    monkeypatch.setattr(readers, "LIMITS", dataclasses.replace(readers.LIMITS, **changes))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size without the pixels to match: enough to open, not to decode."""
    return hostile.png_bomb(width, height)


# -- OCR: images ---------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "expected"), [("PNG", "png"), ("JPEG", "jpeg"), ("TIFF", "tiff")])
def test_an_image_of_text_is_read_with_ocr(fmt: str, expected: str) -> None:
    data = samples.image_bytes(samples.scan(["The harbour opens at dawn.", "Invoice number 4711"]), fmt)
    result = extract_text(data, filename="scan.bin")
    assert result.format == expected
    assert "The harbour opens at dawn." in result.text
    assert "Invoice number 4711" in result.text


def test_every_page_of_a_multipage_tiff_is_read_in_order() -> None:
    data = samples.multipage_tiff([samples.scan(["First page words"]), samples.scan(["Second page words"])])
    text = extract_text(data).text
    assert text.index("First page words") < text.index("Second page words")


def test_a_transparent_png_is_read_on_white() -> None:
    scan = samples.scan(["Clear water ahead"])
    # Black text on a fully transparent background: read naively, the page would be all black.
    transparent = scan.convert("LA")
    transparent.putalpha(scan.point(lambda value: 255 - value))
    assert "Clear water ahead" in extract_text(samples.image_bytes(transparent, "PNG")).text


def test_an_image_without_text_says_so() -> None:
    blank = samples.image_bytes(samples.scan([]), "PNG")
    with pytest.raises(ExtractionError, match="no text that OCR could read"):
        extract_text(blank)


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, image_max_pixels=1_000_000)
    # 1.22 megapixels: past the limit, within Pillow's own (twice the limit).
    data = samples.image_bytes(samples.scan(["Too big"] * 5, width=1830), "JPEG")
    with pytest.raises(
        ExtractionError, match=r"too large to read \(1,830 × 670 pixels; the limit is 1 megapixels"
    ):
        extract_text(data)
    bigger = samples.image_bytes(samples.scan(["Too big"] * 10, width=2000), "JPEG")
    with pytest.raises(ExtractionError, match=r"too large to read \(more than 1 megapixels"):
        extract_text(bigger)


def test_a_png_that_declares_a_gigapixel_is_a_decompression_bomb() -> None:
    with pytest.raises(ExtractionError, match="possible decompression bomb"):
        extract_text(png_header(100_000, 100_000))


def test_a_tiff_with_more_pages_than_ocr_reads_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, ocr_max_pages=2)
    data = samples.multipage_tiff([samples.scan([f"Page {n}"]) for n in range(3)])
    with pytest.raises(ExtractionError, match="has 3 pages; at most 2 pages of a document are read with OCR"):
        extract_text(data)


def test_a_damaged_image_names_its_format() -> None:
    with pytest.raises(ExtractionError, match="The JPEG image is damaged"):
        extract_text(b"\xff\xd8\xff\xe0" + bytes(200))


def test_a_missing_ocr_language_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, ocr_languages="zzz")
    with pytest.raises(ExtractionError, match="no language data for “zzz”"):
        extract_text(samples.image_bytes(samples.scan(["Words"]), "PNG"))


def test_without_tesseract_an_image_fails_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers.shutil, "which", lambda name: None)
    with pytest.raises(ExtractionError, match="needs Tesseract, which is not installed"):
        extract_text(samples.image_bytes(samples.scan(["Words"]), "PNG"))


# -- OCR: PDFs -----------------------------------------------------------------


def test_a_scanned_pdf_without_a_text_layer_is_read_with_ocr() -> None:
    data = samples.scanned_pdf([samples.scan(["The harbour opens at dawn."])])
    result = extract_text(data, filename="scan.pdf")
    assert result.format == "pdf"
    assert "The harbour opens at dawn." in result.text


def test_a_mixed_pdf_gives_the_text_layer_and_the_scan_in_page_order() -> None:
    text_page = build_pdf([["Typed page about the lighthouse."]])
    scanned_page = samples.scanned_pdf([samples.scan(["Scanned page about the ferry."])])
    text = extract_text(samples.merge_pdfs(text_page, scanned_page)).text
    assert "Typed page about the lighthouse." in text
    assert "Scanned page about the ferry." in text
    assert text.index("lighthouse") < text.index("ferry")


def test_pages_with_a_text_layer_are_never_ocrd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_ocr", lambda image: pytest.fail("a text page went to OCR"))
    assert extract_text(build_pdf([["Already text."], []])).text == "Already text."


def test_a_pdf_with_more_scanned_pages_than_ocr_reads_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, ocr_max_pages=2)
    data = samples.scanned_pdf([samples.scan([f"Page {n}"]) for n in range(3)])
    with pytest.raises(ExtractionError, match="3 scanned pages without a text layer; at most 2 pages"):
        extract_text(data)


def test_a_pdf_image_over_the_pixel_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, image_max_pixels=1_000_000)
    data = samples.scanned_pdf([samples.scan(["Big scan"] * 10)])
    with pytest.raises(ExtractionError, match="The PDF contains an image that is too large to read"):
        extract_text(data)


def test_a_huge_page_is_rendered_within_the_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, image_max_pixels=4_000_000)
    scale = readers._render_scale(14_400, 14_400)  # a 200-inch square page
    assert (14_400 * scale) ** 2 <= 4_000_000 * 1.0001
    assert readers._render_scale(612, 792) == readers.OCR_DPI / 72


def test_without_tesseract_a_mixed_pdf_keeps_its_text_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers.shutil, "which", lambda name: None)
    text_page = build_pdf([["Typed page about the lighthouse."]])
    scanned = samples.scanned_pdf([samples.scan(["Scanned"])])
    assert extract_text(samples.merge_pdfs(text_page, scanned)).text == "Typed page about the lighthouse."
    with pytest.raises(ExtractionError, match="needs Tesseract"):
        extract_text(scanned)


# -- PPTX ----------------------------------------------------------------------


def test_pptx_slides_keep_their_numbers_titles_tables_notes_and_groups() -> None:
    result = extract_text(samples.pptx_deck(), filename="deck.pptx")
    assert result.format == "pptx"
    text = result.text
    order = [
        "Slide 1: Harbour plan",
        "Dredge the channel",
        "Rebuild the north pier",
        "Slide 2: Budget",
        "Item | Cost",
        "Dredging | 40000",
        "Notes: Mention the grant from the port authority.",
        "Slide 3",
        "Questions welcome at the quay.",
    ]
    positions = [text.index(item) for item in order]
    assert positions == sorted(positions)
    assert text.count("Harbour plan") == 1  # the title is not repeated as a text box


def test_pptx_named_docx_is_read_as_pptx() -> None:
    assert sniff_format(samples.pptx_deck(), "notes.docx") == "pptx"


def test_a_damaged_pptx_says_so() -> None:
    data = samples.pptx_deck()
    with pytest.raises(
        ExtractionError, match=r"^The file is damaged \(not a valid DOCX, PPTX, XLSX or EPUB\)\.$"
    ):
        extract_text(data[: len(data) // 2])
    garbage = zipfile.ZipFile(out := io.BytesIO(), "w")
    garbage.writestr("ppt/presentation.xml", b"\x00 not xml")
    garbage.close()
    with pytest.raises(ExtractionError, match=r"^The file is damaged \(not a valid PPTX\)\.$"):
        extract_text(out.getvalue())


# -- XLSX ----------------------------------------------------------------------


def test_xlsx_rows_come_under_their_sheet_names() -> None:
    result = extract_text(samples.xlsx_workbook(), filename="budget.xlsx")
    assert result.format == "xlsx"
    assert result.text == (
        "Sheet: Budget\nItem | Cost | Due\nRope | 12.5 | 2026-03-01\n\nSheet: Crew\nName | | Role\nAda | | Skipper"
    )


def test_xlsx_beyond_the_cell_limit_is_truncated_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, sheet_max_cells=1000)
    text = extract_text(samples.xlsx_workbook(rows=1000)).text
    assert "Extra 10 | 10" in text
    assert "Extra 900" not in text
    assert text.endswith(
        "[The workbook has more than 1,000 cells; only the rows within that limit were read.]"
    )
    assert "Crew" not in text


def test_xlsx_that_declares_a_million_rows_reads_only_the_rows_there() -> None:
    data = samples.xlsx_workbook()
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            body = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                body = body.replace(b'<dimension ref="A1:C2"/>', b'<dimension ref="A1:XFD1048576"/>')
            target.writestr(info, body)
    assert "Rope | 12.5" in extract_text(out.getvalue()).text


# -- CSV -----------------------------------------------------------------------


def test_csv_dialect_is_sniffed() -> None:
    data = b'name;qty;note\nrope;3;"tarred; strong"\nsail;1;""\n'
    result = extract_text(data, filename="stock.csv")
    assert result.format == "csv"
    assert result.text == "name | qty | note\nrope | 3 | tarred; strong\nsail | 1"


def test_tsv_and_cp1252_csv_are_read() -> None:
    assert extract_text(b"a\tb\n1\t2\n", filename="t.tsv").text == "a | b\n1 | 2"
    data = "Name,Città\r\nAda,Genova\r\n".encode("cp1252")
    assert extract_text(data, filename="people.csv").text == "Name | Città\nAda | Genova"


def test_utf16_csv_with_a_bom_is_read() -> None:
    assert extract_text("x,y\n1,2\n".encode("utf-16"), filename="u.csv").text == "x | y\n1 | 2"


def test_csv_beyond_the_cell_limit_is_truncated_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, sheet_max_cells=1000)
    data = b"".join(b"%d,%d\n" % (n, n * n) for n in range(2000))
    text = extract_text(data, filename="squares.csv").text
    assert "499 | 249001" in text and "500 | 250000" not in text
    assert text.endswith("[The file has more than 1,000 cells; only the rows within that limit were read.]")


def test_a_csv_field_over_the_field_limit_fails_with_the_line() -> None:
    data = b"a,b\n1,2\n" + b"3," + b"x" * 200_000 + b"\n"
    with pytest.raises(ExtractionError, match="The CSV file could not be read at line 3"):
        extract_text(data, filename="wide.csv")


def test_a_csv_name_on_prose_stays_plain_text() -> None:
    assert sniff_format(b"Just a sentence without any columns", "notes.csv") == "txt"


# -- EPUB ----------------------------------------------------------------------


def test_epub_chapters_come_in_spine_order_without_their_heads() -> None:
    result = extract_text(samples.epub_book(spine=("two", "one", "three")), filename="voyage.epub")
    assert result.format == "epub"
    text = result.text
    assert text.index("A storm gathers") < text.index("The ship leaves") < text.index("The crew comes home")
    assert "head" not in text and "margin" not in text


def test_epub_named_zip_is_sniffed_by_content() -> None:
    assert sniff_format(samples.epub_book(), "book.zip") == "epub"


def test_epub_with_encrypted_chapters_is_refused_as_drm() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(samples.epub_book())) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr(
            "META-INF/encryption.xml",
            b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            b'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
            b'<enc:CipherReference URI="OEBPS/text/one.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>',
        )
    with pytest.raises(ExtractionError, match="protected with DRM"):
        extract_text(out.getvalue())


def test_epub_without_a_package_document_is_damaged() -> None:
    data = samples.epub_book()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if not info.filename.endswith(".opf"):
                target.writestr(info, source.read(info))
    with pytest.raises(ExtractionError, match="no package document"):
        extract_text(out.getvalue())


# -- Web pages fetched by URL --------------------------------------------------


def test_a_fetched_web_page_gives_its_main_content_only() -> None:
    result = extract_text(samples.NEWS_PAGE, filename="tides" + readers.WEB_PAGE_SUFFIX)
    assert result.format == "web"
    assert "The tide turns at noon" in result.text
    assert "Fishermen welcomed the news" in result.text
    for boilerplate in ("Sport menu link", "newsletter", "All rights reserved", "tracker"):
        assert boilerplate not in result.text


def test_an_uploaded_html_file_still_gives_all_its_visible_text() -> None:
    result = extract_text(samples.NEWS_PAGE, filename="tides.html")
    assert result.format == "html"
    assert "Sport menu link" in result.text and "Fishermen welcomed the news" in result.text


def test_a_web_page_with_no_main_content_falls_back_to_its_visible_text() -> None:
    page = b"<!doctype html><html><body><div><span>Open 9-5</span></div></body></html>"
    assert "Open 9-5" in extract_text(page, filename="x" + readers.WEB_PAGE_SUFFIX).text


def test_reader_limits_default_to_the_settings_defaults() -> None:
    from django.conf import settings

    assert ReaderLimits() == ReaderLimits(
        ocr_max_pages=settings.OCR_MAX_PAGES,
        ocr_languages=settings.OCR_LANGUAGES,
        image_max_pixels=settings.IMAGE_MAX_PIXELS,
        sheet_max_cells=settings.SHEET_MAX_CELLS,
    )
