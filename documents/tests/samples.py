"""Ordinary files of the newer formats, built in the test: scans, slides, sheets, books, pages."""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

# OCR tests need Debian's tesseract-ocr, which `make install` and .ci/run install: never skipped.

# A TrueType font Tesseract reads reliably; Pillow's own font, scaled up, where none is installed.
_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
_FONT_SIZE = 48
_LINE_HEIGHT = 110


def _font() -> Any:
    for path in _FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, _FONT_SIZE)
    return ImageFont.load_default(size=_FONT_SIZE)


def scan(lines: list[str], *, width: int = 1700) -> Image.Image:
    """A clean 'scanned page': black text in a large font on white, greyscale."""
    image = Image.new("L", (width, 120 + _LINE_HEIGHT * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    font = _font()
    for number, line in enumerate(lines):
        draw.text((60, 60 + _LINE_HEIGHT * number), line, font=font, fill=0)
    return image


def image_bytes(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def multipage_tiff(pages: list[Image.Image]) -> bytes:
    return image_bytes(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def scanned_pdf(pages: list[Image.Image]) -> bytes:
    """A PDF whose pages are only images: no text layer at all."""
    rgb = [page.convert("RGB") for page in pages]
    return image_bytes(rgb[0], "PDF", resolution=200, save_all=True, append_images=rgb[1:])


def merge_pdfs(*parts: bytes) -> bytes:
    writer = PdfWriter()
    for part in parts:
        writer.append(PdfReader(io.BytesIO(part)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pptx_deck() -> bytes:
    """Three slides: title and bullets; a table with speaker notes; a group of text boxes."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Harbour plan"
    first.placeholders[1].text = "Dredge the channel\nRebuild the north pier"

    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Budget"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "Item", "Cost"
    table.cell(1, 0).text, table.cell(1, 1).text = "Dredging", "40000"
    second.notes_slide.notes_text_frame.text = "Mention the grant from the port authority."

    third = deck.slides.add_slide(deck.slide_layouts[6])
    group = third.shapes.add_group_shape()
    box = group.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1))
    box.text_frame.text = "Questions welcome at the quay."
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_workbook(rows: int = 2) -> bytes:
    """Two sheets, "Budget" and "Crew", with numbers, a date and a gap in a row."""
    import openpyxl

    workbook = openpyxl.Workbook()
    budget = workbook.active
    budget.title = "Budget"
    budget.append(["Item", "Cost", "Due"])
    budget.append(["Rope", 12.5, datetime.date(2026, 3, 1)])
    for number in range(rows - 2):
        budget.append([f"Extra {number}", number, None])
    crew = workbook.create_sheet("Crew")
    crew.append(["Name", None, "Role"])
    crew.append(["Ada", None, "Skipper"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


_CONTAINER = b"""<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""


def _chapter(title: str, body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>{title} head</title></head><body><h1>{title}</h1><p>{body}</p></body></html>"
    ).encode()


def epub_book(*, spine: tuple[str, ...] = ("one", "two", "three")) -> bytes:
    """Three chapters listed in the manifest out of order; the spine gives the reading order."""
    chapters = {
        "one": ("Chapter One", "The ship leaves the harbour."),
        "two": ("Chapter Two", "A storm gathers over the bay."),
        "three": ("Chapter Three", "The crew comes home at dawn."),
    }
    manifest = "".join(
        f'<item id="{key}" href="text/{key}.xhtml" media-type="application/xhtml+xml"/>'
        for key in ("three", "one", "two")
    )
    package = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Voyage</dc:title></metadata>'
        f'<manifest>{manifest}<item id="css" href="style.css" media-type="text/css"/></manifest>'
        "<spine>" + "".join(f'<itemref idref="{key}"/>' for key in spine) + '<itemref idref="css"/></spine>'
        "</package>"
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), b"application/epub+zip", compress_type=zipfile.ZIP_STORED
        )
        archive.writestr("META-INF/container.xml", _CONTAINER)
        archive.writestr("OEBPS/content.opf", package)
        archive.writestr("OEBPS/style.css", b"body { margin: 0 }")
        for key, (title, body) in chapters.items():
            archive.writestr(f"OEBPS/text/{key}.xhtml", _chapter(title, body))
    return out.getvalue()


NEWS_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tide tables | Harbour News</title>
<script>var tracker = "do not index";</script></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/sport">Sport menu link</a></li>
<li><a href="/weather">Weather menu link</a></li></ul></nav>
<header><p>Harbour News: subscribe to our newsletter today</p></header>
<main><article>
<h1>The tide turns at noon</h1>
<p>The harbour master said on Monday that the tide will turn at noon for the rest of the week,
and that boats leaving the inner basin should plan their departures accordingly.</p>
<p>Fishermen welcomed the news, saying that a regular schedule makes it far easier to land
the catch before the fish market opens its doors in the early afternoon.</p>
<p>The pilot service will keep its usual crews on duty, and the lock gates stay open two hours
either side of high water, as they have done every spring since the quay was rebuilt.</p>
</article></main>
<footer><p>Copyright 2026 Harbour News. All rights reserved. Privacy policy and cookie settings.</p></footer>
</body></html>
"""


# -- Files whose places (pages, rows, headings, chapters) the extraction tests check ----------


def xlsx_with_gaps() -> bytes:
    """Two sheets: "Budget" with an empty row 3 between its rows, "Crew" starting at row 4."""
    import openpyxl

    workbook = openpyxl.Workbook()
    budget = workbook.active
    budget.title = "Budget"
    budget["A1"], budget["B1"] = "Item", "Cost"
    budget["A2"], budget["B2"] = "Rope", 12.5
    budget["A4"], budget["B4"] = "Sail", 300
    budget["A5"], budget["B5"] = "Anchor", 80
    crew = workbook.create_sheet("Crew")
    crew["A4"], crew["B4"] = "Ada", "Skipper"
    crew["A5"], crew["B5"] = "Grace", "Navigator"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def docx_handbook(filler: int = 12) -> bytes:
    """A long Word document: a Title, nested Heading 1-3 sections, a heading made by an outline
    level alone, a heading style based on Heading 2, and a table under a Heading 2."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    custom = document.styles.add_style("Clause Heading", WD_STYLE_TYPE.PARAGRAPH)
    custom.base_style = document.styles["Heading 2"]
    document.add_paragraph("Preface before any heading.")
    document.add_heading("Employee Handbook", level=0)
    document.add_paragraph("Welcome to the company handbook.")
    document.add_heading("Warranty", level=1)
    for number in range(filler):
        document.add_paragraph(f"Warranty filler paragraph {number} about general cover.")
    document.add_heading("Returns", level=2)
    document.add_paragraph("Returns are accepted within thirty days.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Item", "Days"
    table.cell(1, 0).text, table.cell(1, 1).text = "Kettle", "30"
    document.add_paragraph("After the returns table.")
    document.add_heading("Refunds", level=3)
    document.add_paragraph("Refunds go to the original card.")
    document.add_heading("Shipping", level=1)
    for number in range(filler):
        document.add_paragraph(f"Shipping filler paragraph {number} about parcels.")
    document.add_paragraph("Oversize parcels", style="Clause Heading")
    document.add_paragraph("Oversize parcels travel by freight.")
    outlined = document.add_paragraph("Customs by outline")
    properties = outlined._p.get_or_add_pPr()
    level = OxmlElement("w:outlineLvl")
    level.set(qn("w:val"), "0")
    properties.append(level)
    document.add_paragraph("Customs forms are filled in by the sender.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def epub_with_toc(*, toc: str = "nav") -> bytes:
    """Three chapters: the first with an <h2>, the second named only by the table of contents
    ("nav" for an EPUB 3 navigation document, "ncx" for an EPUB 2 NCX), the third only by its <title>."""
    chapters = {
        "one": "<html xmlns='http://www.w3.org/1999/xhtml'><head><title>Book</title></head>"
        "<body><h2>Leaving Port</h2><p>The ship leaves the harbour.</p></body></html>",
        "two": "<html xmlns='http://www.w3.org/1999/xhtml'><head><title>Book</title></head>"
        "<body><p>A storm gathers over the bay.</p></body></html>",
        "three": "<html xmlns='http://www.w3.org/1999/xhtml'><head><title>Homecoming</title></head>"
        "<body><p>The crew comes home at dawn.</p></body></html>",
    }
    if toc == "nav":
        toc_item = '<item id="toc" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        toc_name, toc_body = (
            "OEBPS/nav.xhtml",
            "<html xmlns='http://www.w3.org/1999/xhtml' xmlns:epub='http://www.idpf.org/2007/ops'><body>"
            "<nav epub:type='landmarks'><ol><li><a href='text/two.xhtml'>Landmark</a></li></ol></nav>"
            "<nav epub:type='toc'><ol><li><a href='text/one.xhtml'>Part One</a></li>"
            "<li><a href='text/two.xhtml#start'>The Storm</a></li></ol></nav></body></html>",
        )
    else:
        toc_item = '<item id="toc" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
        toc_name, toc_body = (
            "OEBPS/toc.ncx",
            "<ncx xmlns='http://www.daisy.org/z3986/2005/ncx/' version='2005-1'><navMap>"
            "<navPoint id='a'><navLabel><text>Part One</text></navLabel><content src='text/one.xhtml'/></navPoint>"
            "<navPoint id='b'><navLabel><text>The Storm</text></navLabel><content src='text/two.xhtml'/></navPoint>"
            "</navMap></ncx>",
        )
    manifest = "".join(
        f'<item id="{key}" href="text/{key}.xhtml" media-type="application/xhtml+xml"/>' for key in chapters
    )
    package = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Voyage</dc:title></metadata>'
        f'<manifest>{manifest}{toc_item}</manifest><spine toc="toc">'
        + "".join(f'<itemref idref="{key}"/>' for key in chapters)
        + "</spine></package>"
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), b"application/epub+zip", compress_type=zipfile.ZIP_STORED
        )
        archive.writestr("META-INF/container.xml", _CONTAINER)
        archive.writestr("OEBPS/content.opf", package)
        archive.writestr(toc_name, toc_body.encode())
        for key, body in chapters.items():
            archive.writestr(f"OEBPS/text/{key}.xhtml", body.encode())
    return out.getvalue()
