"""Extraction from real files built in the test: PDF, DOCX, HTML, text, and hostile input."""

from __future__ import annotations

import io
import os
import zipfile

import docx
import pytest
from pypdf import PdfWriter

from documents.extraction import readers
from documents.extraction.readers import (
    Extracted,
    ExtractionError,
    extract_docx,
    extract_html,
    extract_pdf,
    extract_plain,
    extract_text,
    normalise,
    sniff_format,
)


def _pdf_escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def build_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF with one Helvetica text line per string, xref offsets exact."""
    objects: dict[int, bytes] = {}
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = " ".join(f"{page_id} 0 R" for page_id in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    for page_id, lines in zip(page_ids, pages, strict=True):
        operators = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
        operators += [f"({_pdf_escape(line)}) Tj T*" for line in lines]
        operators.append("ET")
        stream = "\n".join(operators).encode("latin-1")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for object_id in sorted(objects):
        offsets[object_id] = len(out)
        out += b"%d 0 obj\n" % object_id + objects[object_id] + b"\nendobj\n"
    xref_offset = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for object_id in range(1, size):
        out += b"%010d 00000 n \n" % offsets[object_id]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        xref_offset,
    )
    return bytes(out)


def encrypt_pdf(data: bytes, *, user_password: str, owner_password: str = "owner") -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password=owner_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def build_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("First paragraph before the table.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Cell alpha"
    table.cell(0, 1).text = "Cell beta"
    table.cell(1, 0).text = "Cell gamma"
    table.cell(1, 1).text = "Cell delta"
    document.add_paragraph("Closing paragraph after the table.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def build_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


HTML_PAGE = b"""<!DOCTYPE html>
<html><head><title>Page title here</title>
<meta name="description" content="meta words">
<style>body { color: red; } .secret-style {}</style>
<script>var secretScript = "do not index";</script>
</head>
<body>
<noscript>Enable JavaScript noscript text</noscript>
<h1>Main heading</h1>
<p>First <b>bold</b> paragraph.</p>
<div>Second block<br>after a break</div>
<ul><li>Item one</li><li>Item two</li></ul>
<template><p>Template text</p></template>
<svg><text>svg label</text></svg>
<!-- a comment that must not appear -->
<p hidden>Hidden paragraph</p>
<pre>  code   line
  second</pre>
<script type="application/ld+json">{"secret": "json"}</script>
</body></html>
"""


# -- PDF ---------------------------------------------------------------------


def test_pdf_text_is_recovered_page_by_page() -> None:
    data = build_pdf([["Hello PDF world.", "Second line (with parens)."], ["Page two."]])
    result = extract_text(data, filename="report.pdf")
    assert result == Extracted(text="Hello PDF world.\nSecond line (with parens).\n\nPage two.", format="pdf")


def test_extract_pdf_joins_pages_with_blank_line() -> None:
    raw = extract_pdf(build_pdf([["One."], ["Two."]]))
    assert "One." in raw and "Two." in raw
    assert "\n\n" in raw


def test_pdf_named_txt_is_still_read_as_pdf() -> None:
    result = extract_text(build_pdf([["Mislabelled but fine."]]), filename="notes.txt")
    assert result.format == "pdf"
    assert result.text == "Mislabelled but fine."


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9])
def test_truncated_pdf_raises_extraction_error(fraction: float) -> None:
    data = build_pdf([["Some text that will be cut."]])
    with pytest.raises(ExtractionError):
        extract_text(data[: int(len(data) * fraction)])


def test_garbage_after_pdf_magic_is_a_damaged_pdf() -> None:
    with pytest.raises(ExtractionError, match="(?i)pdf"):
        extract_text(b"%PDF-1.7\n" + os.urandom(2000))


def test_pdf_with_user_password_is_refused_as_encrypted() -> None:
    data = encrypt_pdf(build_pdf([["Top secret."]]), user_password="s3cret")
    with pytest.raises(ExtractionError, match="encrypted"):
        extract_text(data, filename="secret.pdf")


def test_pdf_with_only_owner_password_opens() -> None:
    data = encrypt_pdf(build_pdf([["Printable but locked."]]), user_password="")
    assert extract_text(data).text == "Printable but locked."


def test_pdf_with_too_many_pages_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_PDF_PAGES", 2)
    with pytest.raises(ExtractionError, match="too many pages"):
        extract_text(build_pdf([["a"], ["b"], ["c"]]))


def test_pdf_without_text_has_no_extractable_text() -> None:
    with pytest.raises(ExtractionError, match="no extractable text"):
        extract_text(build_pdf([[]]))


# -- DOCX --------------------------------------------------------------------


def test_docx_paragraphs_and_table_cells_come_in_document_order() -> None:
    result = extract_text(build_docx(), filename="report.docx")
    assert result.format == "docx"
    text = result.text
    order = [
        "Quarterly report",
        "First paragraph before the table.",
        "Cell alpha",
        "Cell beta",
        "Cell gamma",
        "Cell delta",
        "Closing paragraph after the table.",
    ]
    positions = [text.index(item) for item in order]
    assert positions == sorted(positions)


def test_a_word_table_row_is_one_line_so_a_value_stays_beside_its_labels() -> None:
    document = docx.Document()
    document.add_paragraph("Travel policy")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate(
        [["City", "Hotel cap", "Meals"], ["Berlin", "€180", "€45"], ["Lisbon", "€140", ""]]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 2).add_paragraph("see annex")  # two paragraphs in one cell stay on its line
    merged = document.add_table(rows=1, cols=3)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "Merged label"
    merged.cell(0, 2).text = "value"
    out = io.BytesIO()
    document.save(out)
    lines = extract_text(out.getvalue(), filename="policy.docx").text.split("\n")
    assert "City | Hotel cap | Meals" in lines
    assert "Berlin | €180 | €45" in lines
    assert "Lisbon | €140 | see annex" in lines
    assert "Merged label | value" in lines, "a merged cell once, not once per column it spans"


def test_docx_named_pdf_is_read_as_docx() -> None:
    assert sniff_format(build_docx(), "scan.pdf") == "docx"


def test_docx_with_garbage_document_xml_raises() -> None:
    data = build_zip(
        {
            "[Content_Types].xml": b"not xml at all",
            "word/document.xml": b"\x00\x01garbage<<<",
        }
    )
    with pytest.raises(ExtractionError, match="(?i)docx"):
        extract_text(data, filename="broken.docx")


def test_truncated_docx_raises() -> None:
    data = build_docx()
    with pytest.raises(ExtractionError):
        extract_text(data[: len(data) // 2], filename="cut.docx")


@pytest.mark.parametrize("label", ["DOCX", "PPTX", "XLSX", "EPUB"])
def test_a_damaged_package_is_called_damaged_in_words_a_person_reads(label: str) -> None:
    from documents.extraction import readers

    error = readers._damaged(label, zipfile.BadZipFile("File is not a zip file"))
    assert str(error) == f"The file is damaged (not a valid {label})."
    assert "zip file" not in str(error)
    # A reader's own words stay when they say something.
    assert "missing part" in str(readers._damaged(label, KeyError("missing part word/document.xml")))


def test_docx_zip_bomb_is_refused_before_parsing() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("word/document.xml", b"<w:document/>")
        # Streamed so the test never holds 300 MB in memory.
        with archive.open("word/media/zeros.bin", "w", force_zip64=True) as member:
            block = bytes(1024 * 1024)
            for _ in range(300):
                member.write(block)
    with pytest.raises(ExtractionError, match="possible zip bomb"):
        extract_text(out.getvalue(), filename="bomb.docx")


def test_docx_over_total_uncompressed_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readers, "MAX_DOCX_UNCOMPRESSED_BYTES", 10_000)
    data = build_zip({"word/document.xml": b"<w:document/>", "word/media/x.bin": os.urandom(20_000)})
    with pytest.raises(ExtractionError, match="possible zip bomb"):
        extract_docx(data)


def test_zip_that_is_not_an_office_document_or_epub_is_unsupported() -> None:
    data = build_zip({"photos/readme.txt": b"holiday pictures"})
    with pytest.raises(ExtractionError, match="(?i)unsupported file type"):
        extract_text(data, filename="sheet.docx")


# -- HTML --------------------------------------------------------------------


def test_html_keeps_visible_body_text_only() -> None:
    result = extract_text(HTML_PAGE, filename="page.html")
    assert result.format == "html"
    text = result.text
    for visible in ("Main heading", "First bold paragraph.", "Item one", "Item two"):
        assert visible in text
    for hidden in (
        "Page title",
        "meta words",
        "color: red",
        "secretScript",
        "noscript text",
        "Template text",
        "svg label",
        "comment",
        "Hidden paragraph",
        "secret",
    ):
        assert hidden not in text


def test_html_blocks_become_separate_lines() -> None:
    text = extract_text(HTML_PAGE).text
    lines = text.split("\n")
    assert "Main heading" in lines
    assert "First bold paragraph." in lines
    assert "Second block" in lines
    assert "after a break" in lines
    assert "Item one" in lines and "Item two" in lines


def test_html_pre_keeps_its_line_breaks() -> None:
    text = extract_html(b"<html><body><pre>alpha\n  beta</pre></body></html>")
    assert "alpha\n  beta" in text


def test_html_named_txt_is_read_as_html() -> None:
    result = extract_text(HTML_PAGE, filename="saved.txt")
    assert result.format == "html"
    assert "secretScript" not in result.text


def test_html_fragment_without_doctype_is_detected_by_its_tags() -> None:
    data = b"<div><p>Hello <a href='x'>there</a></p><ul><li>One</li></ul></div>"
    assert sniff_format(data) == "html"


def test_markdown_with_a_little_inline_html_stays_markdown() -> None:
    data = b'# Title\n\n<p align="center"><img src="x.png"></p>\n\nSome <b>text</b>.\n'
    assert sniff_format(data, "README.md") == "md"


def test_html_declared_charset_is_honoured() -> None:
    data = (
        b'<html><head><meta charset="windows-1252"></head><body><p>caf\xe9 \x93quoted\x94</p></body></html>'
    )
    assert extract_text(data).text == "café “quoted”"


def test_html_with_only_scripts_has_no_extractable_text() -> None:
    with pytest.raises(ExtractionError, match="no extractable text"):
        extract_text(b"<html><head><script>x=1</script></head><body></body></html>")


def test_deeply_nested_html_does_not_crash() -> None:
    data = b"<html><body>" + b"<div>" * 5000 + b"deep" + b"</div>" * 5000 + b"</body></html>"
    try:
        result = extract_text(data)
    except ExtractionError:
        return
    assert "deep" in result.text


# -- Plain text and Markdown -------------------------------------------------


def test_markdown_is_kept_as_written() -> None:
    data = b"# Heading\n\nSome *emphasis* and `code`.\n"
    result = extract_text(data, filename="notes.md")
    assert result == Extracted(text="# Heading\n\nSome *emphasis* and `code`.", format="md", title="Heading")


def test_markdown_long_extension_is_markdown() -> None:
    assert sniff_format(b"text", "notes.markdown") == "md"


def test_utf8_text_with_bom() -> None:
    result = extract_text("\ufeffNaïve café – ok".encode(), filename="a.txt")
    assert result == Extracted(text="Naïve café – ok", format="txt")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_with_bom(codec: str) -> None:
    body = "Ünïcödé text in UTF-16."
    data = body.encode(codec)
    if codec != "utf-16":
        data = ("\ufeff" + body).encode(codec)
    assert extract_text(data).text == body


def test_latin1_text_falls_back_to_cp1252() -> None:
    data = "Café crème brûlée, naïve façade.".encode("latin-1")
    assert extract_text(data, filename="old.txt").text == "Café crème brûlée, naïve façade."


def test_cp1252_smart_quotes() -> None:
    data = "\u201cQuoted\u201d \u2013 dash".encode("cp1252")
    assert extract_plain(data) == "\u201cQuoted\u201d \u2013 dash"


def test_utf8_cut_mid_character_is_still_utf8() -> None:
    data = "Zürich café".encode()[:-1]
    assert extract_text(data).text == "Zürich caf"


def test_unknown_extension_text_is_txt() -> None:
    assert sniff_format(b"plain words", "data.csv") == "txt"


# -- Hostile and empty input -------------------------------------------------


def test_empty_file_has_no_extractable_text() -> None:
    with pytest.raises(ExtractionError, match="no extractable text"):
        extract_text(b"", filename="empty.txt")


def test_whitespace_only_file_has_no_extractable_text() -> None:
    with pytest.raises(ExtractionError, match="no extractable text"):
        extract_text(b"   \n\t\r\n  ")


def test_binary_garbage_is_unsupported() -> None:
    data = bytes(range(256)) * 8
    with pytest.raises(ExtractionError, match="(?i)unsupported file type"):
        extract_text(data, filename="data.txt")


def test_random_bytes_are_unsupported() -> None:
    with pytest.raises(ExtractionError, match="(?i)unsupported file type"):
        extract_text(os.urandom(4096))


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "legacy Microsoft Office"),
        (b"{\\rtf1\\ansi hello}", "RTF"),
    ],
)
def test_known_binary_formats_are_named(data: bytes, hint: str) -> None:
    with pytest.raises(ExtractionError, match=hint):
        extract_text(data)


def test_text_over_the_length_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_TEXT_CHARS", 10)
    with pytest.raises(ExtractionError, match="too long"):
        extract_text(b"This text is longer than ten characters.")


def test_unexpected_parser_failure_becomes_extraction_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(data: bytes) -> str:
        raise RuntimeError("boom")

    monkeypatch.setitem(readers._EXTRACTORS, "html", explode)
    with pytest.raises(ExtractionError, match="Could not read the HTML file: boom"):
        extract_text(HTML_PAGE)


# -- Normalising -------------------------------------------------------------


def test_normalise_cleans_whitespace_controls_and_unicode() -> None:
    raw = "\r\n  Cafe\u0301\x00 has\t\t  spaces   \r\nline two\x07  \n\n\n\n\nafter\x0bgap \n"
    assert normalise(raw) == "Café has spaces\nline two\n\nafter\ngap"


def test_normalise_is_idempotent_on_an_example() -> None:
    once = normalise(" a \n\n\n b\t\tc \r\n")
    assert normalise(once) == once
