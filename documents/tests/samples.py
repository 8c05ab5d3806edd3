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
