"""File bytes -> plain text, one function per format.

The format is judged by the bytes, never by the file name: uploads are often
mislabelled (a PDF saved as ``.txt``, an HTML page saved as ``.doc``). The name
only tells apart formats whose bytes read the same way: Markdown and CSV from
plain text, and a web page fetched by URL (stored as ``*.web.html``, read for
its main content) from an uploaded HTML file (read for all its visible text).

Scanned PDF pages (no text layer) and images are read with Tesseract OCR, within
the bounds of ``LIMITS``, which the sandbox sets from the settings.

Every failure leaves ``extract_text`` as an ``ExtractionError`` whose message a
person can read, because it is shown on the document page as the reason the
document could not be indexed.

Readers also say where each stretch of text came from (``Extracted.locations``), in the
file's own terms, so that a citation can name its place (documents.locations):

- PDF: ``{"kind": "page", "page": N}`` per page (1-based), ``"ocr": true`` on a page read by OCR;
  a multi-page TIFF the same. The OCR words of each such page, with their boxes, are kept in
  ``Extracted.ocr_words``; a single image keeps its words as page 1 but has no locations.
- PPTX: ``{"kind": "slide", "slide": N}``, the "Notes: ..." block ``{..., "notes": true}``.
- XLSX: ``{"kind": "sheet", "sheet": name, "rows": [r, r]}`` per row line, ``r`` the row number
  Excel shows (empty rows skipped in the text still count); the "Sheet: name" heading line
  belongs to the sheet's first row line.
- CSV: ``{"kind": "rows", "rows": [r, r]}`` per line, ``r`` the record number (header = 1).
- EPUB: ``{"kind": "chapter", "heading": title}``, the chapter's first h1-h3, else its label in
  the table of contents, else its <title>.
- DOCX, uploaded HTML, Markdown: ``{"kind": "section", "heading": "A > B"}``, the path of
  headings above the text; DOCX table rows add ``"table": true``. No locator before the first
  heading.
- Text and fetched web pages: none.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import logging
import math
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from documents.extraction import locating
from documents.extraction.locating import Locator, Marked

logger = logging.getLogger(__name__)

__all__ = [
    "LIMITS",
    "MAX_PDF_PAGES",
    "MAX_TEXT_CHARS",
    "WEB_PAGE_SUFFIX",
    "Extracted",
    "ExtractionError",
    "ReaderLimits",
    "extract_csv",
    "extract_docx",
    "extract_epub",
    "extract_html",
    "extract_image",
    "extract_pdf",
    "extract_plain",
    "extract_pptx",
    "extract_text",
    "extract_web_page",
    "extract_xlsx",
    "normalise",
    "sniff_format",
    "tidy_title",
]

MAX_PDF_PAGES = 2000
MAX_TEXT_CHARS = 5_000_000
# Bounds of every ZIP-based format (DOCX, PPTX, XLSX, EPUB), named after the first one.
MAX_DOCX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_DOCX_COMPRESSION_RATIO = 100
MAX_DOCX_MEMBERS = 10_000
# Resolution PDF pages are rendered at for OCR: enough for body text, a third of
# the pixels (and of Tesseract's time) of 300 dpi.
OCR_DPI = 200
# Rendered pages and images smaller than this are not worth running Tesseract on.
_OCR_MIN_PIXELS = 16 * 16
# How deep form XObjects are searched for the images of a scanned page.
_XOBJECT_DEPTH = 3
# The name a web page fetched by URL is stored under ends with this (documents.extraction.fetching).
WEB_PAGE_SUFFIX = ".web.html"
# Small members (a styles part full of repeated XML) compress far better than
# 100:1 and are harmless; only members big enough to hurt are ratio-checked.
_RATIO_CHECK_MIN_BYTES = 1024 * 1024
# Raw text is allowed to be longer than the limit before normalising, since
# whitespace collapses; beyond this we stop early instead of building it all.
_RAW_TEXT_LIMIT = MAX_TEXT_CHARS * 4
# Share of control characters above which decoded "text" is really binary.
_MAX_CONTROL_RATIO = 0.05
_SNIFF_CHARS = 4096
_REASON_CHARS = 200

FORMATS = ("pdf", "docx", "pptx", "xlsx", "epub", "html", "web", "csv", "png", "jpeg", "tiff", "md", "txt")
IMAGE_FORMATS = frozenset({"png", "jpeg", "tiff"})
_SUPPORTED = (
    "Upload a PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), CSV, EPUB, HTML, Markdown "
    "or plain-text file, or a PNG, JPEG or TIFF image."
)


class ExtractionError(Exception):
    """A file could not be turned into text; the message says why, for people."""


@dataclass(frozen=True)
class Extracted:
    text: str
    format: str
    # The title the file gives itself (PDF or Office metadata, an HTML <title>, a Markdown H1), if any.
    title: str | None = None
    # (start, end, locator) ranges of `text`, sorted and apart; text between them has no locator.
    # Not compared: two extractions are the same when their text, format and title are.
    locations: tuple[tuple[int, int, Locator], ...] = field(default=(), compare=False)
    # Page number (1-based) -> [[word, x0, y0, x1, y1], ...] for each page read by OCR that has
    # words: boxes as fractions of the page's width and height, origin top-left, in reading order.
    ocr_words: dict[int, list[list[Any]]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ReaderLimits:
    """Bounds the settings may change; the sandbox passes them to its child (no Django there)."""

    ocr_max_pages: int = 50
    ocr_languages: str = "eng"
    image_max_pixels: int = 50_000_000
    sheet_max_cells: int = 500_000


# Read at call time, so the sandbox's child (and tests) can replace it.
LIMITS = ReaderLimits()


# --------------------------------------------------------------------------
# Sniffing and decoding
# --------------------------------------------------------------------------

_UTF8_BOM = b"\xef\xbb\xbf"
# UTF-32 first: its little-endian BOM starts with the UTF-16 one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    # BigTIFF
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
)
# Known binary formats get a specific message instead of "looks binary".
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "a legacy Microsoft Office file (.doc, .xls or .ppt); save it as .docx or PDF",
    ),
    (b"{\\rtf", "an RTF document; save it as .docx or PDF"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a program"),
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_HTML_START_RE = re.compile(r"<!doctype\s+html|<html[\s>]")
_HTML_TAG_RE = re.compile(
    r"<(head|body|div|p|span|a|table|tr|td|th|ul|ol|li|h[1-6]|br|hr|meta|title|"
    r"script|style|link|img|section|article|nav|header|footer|main|form|strong|em|b|i)"
    r"(?=[\s>/])"
)
_MIN_HTML_TAGS = 3


def _reason(exc: BaseException) -> str:
    """Short, single-line description of an exception for a user-facing message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > _REASON_CHARS:
        text = text[: _REASON_CHARS - 1] + "…"
    return text


# What a damaged ZIP package makes Python say: no help to a person, so not repeated.
_ZIP_JARGON = (
    "File is not a zip file",
    "Bad magic number",
    "Truncated file header",
    "Bad CRC-32",
    "Error -3",
    "no member",
    "Package not found",
)


def _damaged(label: str, exc: BaseException) -> ExtractionError:
    """'The file is damaged (not a valid DOCX)', with the reader's own words when they say more."""
    reason = _reason(exc).strip("\"'")
    if isinstance(exc, zipfile.BadZipFile) or any(reason.startswith(jargon) for jargon in _ZIP_JARGON):
        return ExtractionError(f"The file is damaged (not a valid {label}).")
    return ExtractionError(f"The file is damaged (not a valid {label}): {reason}")


def _looks_textual(text: str) -> bool:
    if not text:
        return True
    controls = len(_CONTROL_RE.findall(text))
    return controls / len(text) <= _MAX_CONTROL_RATIO


def _decode_utf8_lenient(data: bytes) -> str | None:
    """UTF-8, tolerating a cut-off final character and a few stray bytes.

    A file that is mostly valid UTF-8 with a handful of bad bytes is far more
    likely UTF-8 than cp1252; decoding it as cp1252 would garble every accent.
    """
    try:
        # final=False: a multi-byte character cut off by truncation is dropped.
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good_non_ascii = sum(1 for ch in text if ord(ch) > 0x7F) - bad
    return text if good_non_ascii > bad else None


def _decode_text(data: bytes) -> str | None:
    """Decode bytes that should be text; None when they look binary."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    else:
        for bom, codec in _BOMS:
            if data.startswith(bom):
                try:
                    text = data[len(bom) :].decode(codec)
                except UnicodeDecodeError:
                    return None
                return text if _looks_textual(text) else None
    if b"\x00" in data:
        return None
    text = _decode_utf8_lenient(data)
    if text is None:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            # cp1252 leaves five bytes undefined; latin-1 maps every byte.
            text = data.decode("latin-1")
    return text if _looks_textual(text) else None


def _looks_like_html(text: str, filename: str) -> bool:
    head = text[:_SNIFF_CHARS].lstrip("\ufeff \t\r\n").lower()
    if head.startswith(("<!doctype html", "<html")):
        return True
    if _is_markdown_name(filename):
        # Markdown routinely embeds a few HTML tags; only a whole page counts.
        return False
    if _HTML_START_RE.search(head):
        return True
    return len(set(_HTML_TAG_RE.findall(head))) >= _MIN_HTML_TAGS


def _is_markdown_name(filename: str) -> bool:
    return filename.lower().endswith((".md", ".markdown"))


def _is_csv_name(filename: str) -> bool:
    return filename.lower().endswith((".csv", ".tsv"))


def _is_web_page_name(filename: str) -> bool:
    return filename.lower().endswith(WEB_PAGE_SUFFIX)


# Members that name an Office Open XML or EPUB package, and the content types that do
# when a producer put the main part elsewhere.
_ZIP_MAIN_PARTS = (
    ("word/document.xml", "docx"),
    ("ppt/presentation.xml", "pptx"),
    ("xl/workbook.xml", "xlsx"),
)
_OOXML_CONTENT_TYPES = (
    (b"wordprocessingml.document.main", "docx"),
    (b"presentationml.presentation.main", "pptx"),
    (b"spreadsheetml.sheet.main", "xlsx"),
)
_EPUB_MIMETYPE = b"application/epub+zip"


def _zip_kind(data: bytes) -> str | None:
    """``docx``, ``pptx``, ``xlsx`` or ``epub`` for a ZIP package of that kind, else None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            for part, kind in _ZIP_MAIN_PARTS:
                if part in names:
                    return kind
            small_mimetype = "mimetype" in names and zf.getinfo("mimetype").file_size < 1024
            if small_mimetype and zf.read("mimetype").strip() == _EPUB_MIMETYPE:
                return "epub"
            if _EPUB_CONTAINER in names:
                return "epub"
            info = zf.getinfo("[Content_Types].xml") if "[Content_Types].xml" in names else None
            if info is not None and info.file_size < 1024 * 1024:
                types = zf.read(info)
                for marker, kind in _OOXML_CONTENT_TYPES:
                    if marker in types:
                        return kind
            return None
    except Exception as exc:
        raise _damaged("DOCX, PPTX, XLSX or EPUB", exc) from exc


_CSV_DELIMITERS = ",;\t|"
_CSV_SNIFF_CHARS = 64 * 1024


def _csv_dialect(text: str) -> type[csv.Dialect] | None:
    """The dialect of delimited text, or None when it does not look delimited."""
    sample = text[:_CSV_SNIFF_CHARS]
    if len(sample) < len(text):
        # A cut-off last line would confuse the sniffer.
        sample = sample.rsplit("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS)
    except csv.Error:
        return None


def _sniff(data: bytes, filename: str) -> tuple[str, str | None]:
    """Format of ``data`` and, for text formats, the decoded text (to decode once)."""
    head = data[:1024]
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"%PDF-"):
        return "pdf", None
    if head.startswith(_ZIP_MAGIC):
        kind = _zip_kind(data)
        if kind is not None:
            return kind, None
        raise ExtractionError(
            "Unsupported file type: a ZIP archive that is not a Word, PowerPoint, Excel or EPUB "
            "document. " + _SUPPORTED
        )
    for signature, fmt in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return fmt, None
    for signature, description in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise ExtractionError(f"Unsupported file type: this is {description}. " + _SUPPORTED)
    text = _decode_text(data)
    if text is None:
        raise ExtractionError("Unsupported file type: the file looks binary, not text. " + _SUPPORTED)
    if _looks_like_html(text, filename):
        return ("web" if _is_web_page_name(filename) else "html"), text
    if _is_csv_name(filename) and _csv_dialect(text) is not None:
        return "csv", text
    return ("md" if _is_markdown_name(filename) else "txt"), text


def sniff_format(data: bytes, filename: str = "") -> str:
    """One of ``FORMATS``, judged by content; raises for unsupported files."""
    return _sniff(bytes(data), filename)[0]


# --------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------


def _marked(pieces: Iterable[tuple[Locator | None, str]]) -> Marked:
    return locating.assemble(pieces, limit=_RAW_TEXT_LIMIT, too_long=_too_long)


def _separated(
    pieces: Iterable[tuple[Locator | None, str]], separator: str = "\n\n"
) -> Iterator[tuple[Locator | None, str]]:
    """The pieces with `separator` before each but the first: blocks joined as str.join would."""
    for number, (locator, text) in enumerate(pieces):
        yield locator, (separator + text if number else text)


def extract_pdf(data: bytes) -> str:
    """Text of every page, pages separated by a blank line."""
    return locating.plain(_read_pdf(data).text)


def _read_pdf(data: bytes) -> Marked:
    """Text of every page, pages separated by a blank line, each page located by its number."""
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                # Many PDFs are "encrypted" only to restrict printing/copying
                # and open with an empty user password.
                opened = reader.decrypt("")
            except Exception as exc:
                raise ExtractionError(
                    f"The PDF is encrypted with a method that cannot be opened: {_reason(exc)}"
                ) from exc
            if opened == PasswordType.NOT_DECRYPTED:
                raise ExtractionError(
                    "The PDF is encrypted (password-protected); upload an unprotected copy."
                )
        page_count = len(reader.pages)
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"The PDF is damaged or not a PDF: {_reason(exc)}") from exc

    if page_count > MAX_PDF_PAGES:
        raise ExtractionError(f"The PDF has too many pages ({page_count:,}; the limit is {MAX_PDF_PAGES:,}).")
    texts: dict[int, str] = {}
    # Pages without a text layer that draw images: scans, read with OCR below.
    scanned: dict[int, list[tuple[int, int]]] = {}
    failures: list[Exception] = []
    total = 0
    for number in range(page_count):
        try:
            page = reader.pages[number]
            page_text = page.extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - pypdf fails in undocumented ways
            # One broken page should not cost the rest of the document.
            logger.warning("PDF page %d could not be read: %s", number + 1, _reason(exc))
            failures.append(exc)
            continue
        total += len(page_text)
        if total > _RAW_TEXT_LIMIT:
            raise _too_long()
        texts[number] = page_text
        if not page_text.strip():
            images = _page_images(page)
            if images:
                scanned[number] = images
    if failures and len(failures) == page_count:
        raise ExtractionError(f"The PDF is damaged or not a PDF: {_reason(failures[0])}")
    ocr_words: dict[int, list[list[Any]]] = {}
    if scanned:
        has_text = any(text.strip() for text in texts.values())
        for number, (text, words) in _ocr_pdf_pages(data, scanned, has_text=has_text).items():
            total += len(text)
            if total > _RAW_TEXT_LIMIT:
                raise _too_long()
            texts[number] = text
            ocr_words[number + 1] = words
    marked = _marked(
        _separated(
            (
                {"kind": "page", "page": number + 1, "ocr": True}
                if number + 1 in ocr_words
                else {"kind": "page", "page": number + 1},
                texts[number],
            )
            for number in sorted(texts)
        )
    )
    marked.ocr_words = {page: words for page, words in ocr_words.items() if words}
    return marked


def _resolve(obj: Any) -> Any:
    return obj.get_object() if hasattr(obj, "get_object") else obj


_MAX_XOBJECTS = 1000


def _page_images(page: Any) -> list[tuple[int, int]]:
    """(width, height) of each image a PDF page draws, searching form XObjects a few levels deep."""
    sizes: list[tuple[int, int]] = []
    stack: list[tuple[Any, int]] = [(page.get("/Resources"), 0)]
    visited = 0
    try:
        while stack and visited < _MAX_XOBJECTS:
            resources, depth = stack.pop()
            resources = _resolve(resources)
            xobjects = _resolve(resources.get("/XObject")) if isinstance(resources, dict) else None
            if not isinstance(xobjects, dict):
                continue
            for ref in list(xobjects.values())[:_MAX_XOBJECTS]:
                visited += 1
                xobject = _resolve(ref)
                if not isinstance(xobject, dict):
                    continue
                subtype = _resolve(xobject.get("/Subtype"))
                if subtype == "/Image":
                    width = int(_resolve(xobject.get("/Width", 0)))
                    height = int(_resolve(xobject.get("/Height", 0)))
                    sizes.append((width, height))
                elif subtype == "/Form" and depth < _XOBJECT_DEPTH:
                    stack.append((xobject.get("/Resources"), depth + 1))
    except Exception as exc:  # noqa: BLE001 - a damaged resource dictionary is not a scan
        logger.warning("PDF page resources could not be read: %s", _reason(exc))
    return sizes


def _ocr_pdf_pages(
    data: bytes, scanned: dict[int, list[tuple[int, int]]], *, has_text: bool
) -> dict[int, tuple[str, list[list[Any]]]]:
    """OCR text and words of the scanned pages of a PDF, by page index."""
    limits = LIMITS
    if len(scanned) > limits.ocr_max_pages:
        raise ExtractionError(
            f"The PDF has {len(scanned):,} scanned pages without a text layer; at most "
            f"{limits.ocr_max_pages:,} pages of a document are read with OCR."
        )
    for sizes in scanned.values():
        for width, height in sizes:
            _check_pixels(width, height, "The PDF contains an image that is")
    if shutil.which("tesseract") is None:
        if has_text:
            # The text pages are still worth indexing, as before OCR existed.
            logger.warning("Tesseract is not installed: %d scanned PDF pages were left out", len(scanned))
            return {}
        raise ExtractionError(_NO_TESSERACT)
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as exc:
        raise ExtractionError(f"The PDF's scanned pages could not be rendered: {_reason(exc)}") from exc
    try:
        texts: dict[int, tuple[str, list[list[Any]]]] = {}
        for number in sorted(scanned):
            page = pdf[number]
            try:
                width, height = page.get_size()
                if width <= 0 or height <= 0:
                    continue
                image = page.render(scale=_render_scale(width, height), grayscale=True).to_pil()
            finally:
                page.close()
            texts[number] = _ocr(image)
        return texts
    finally:
        pdf.close()


def _render_scale(width_pt: float, height_pt: float) -> float:
    """Points to pixels at OCR_DPI, lowered so that a huge page stays within the pixel limit."""
    scale = OCR_DPI / 72
    pixels = width_pt * height_pt * scale * scale
    limit = LIMITS.image_max_pixels
    if pixels > limit:
        scale = math.sqrt(limit / (width_pt * height_pt))
    return scale


_NO_TESSERACT = (
    "Reading text from images (OCR) needs Tesseract, which is not installed on this server; "
    "ask the administrator to install the tesseract-ocr package."
)


def _check_pixels(width: int, height: int, what: str = "The image is") -> None:
    limit = LIMITS.image_max_pixels
    if width * height > limit:
        raise ExtractionError(
            f"{what} too large to read ({width:,} × {height:,} pixels; the limit is "
            f"{limit / 1_000_000:g} megapixels; possible decompression bomb)."
        )


def _ocr(image: Any) -> tuple[str, list[list[Any]]]:
    """The text Tesseract reads in a Pillow image, and its words: [[word, x0, y0, x1, y1], ...]
    with boxes as fractions of the image's width and height, origin top-left, in reading order.

    One recognition gives both: Tesseract's plain-text output, as before there were boxes, and
    its TSV output, which has a row per word with its box.
    """
    if image.width * image.height < _OCR_MIN_PIXELS:
        return "", []
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        raise ExtractionError(_NO_TESSERACT)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    languages = LIMITS.ocr_languages
    with tempfile.TemporaryDirectory(prefix="docent-ocr-") as directory:
        base = os.path.join(directory, "page")
        done = subprocess.run(
            [tesseract, "stdin", base, "-l", languages, "txt", "tsv"],
            input=buffer.getvalue(),
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            with open(base + ".txt", "rb") as text, open(base + ".tsv", "rb") as table:
                return (
                    text.read().decode("utf-8", errors="replace"),
                    _tsv_words(table.read().decode("utf-8", errors="replace"), image.width, image.height),
                )
    if b"Failed loading language" in done.stderr:
        raise ExtractionError(
            f"OCR could not start: Tesseract has no language data for “{languages}” on this server; "
            "ask the administrator to install it or change DOCENT_OCR_LANGUAGES."
        )
    if done.returncode < 0:
        raise ExtractionError(
            f"OCR stopped on this image (signal {-done.returncode}); it may be too large or damaged."
        )
    detail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
    raise ExtractionError(f"OCR failed on this image: {_reason(Exception(detail[-1] if detail else ''))}")


# Tesseract's TSV columns: level, page, block, paragraph, line, word, left, top, width, height, conf, text.
_TSV_WORD_LEVEL = "5"
_TSV_COLUMNS = 12


def _tsv_words(tsv: str, width: int, height: int) -> list[list[Any]]:
    """[word, x0, y0, x1, y1] for each word of Tesseract's TSV output, as fractions of the image."""
    words: list[list[Any]] = []
    for line in tsv.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) < _TSV_COLUMNS or fields[0] != _TSV_WORD_LEVEL:
            continue
        word = "\t".join(fields[_TSV_COLUMNS - 1 :]).strip()
        try:
            left, top, box_width, box_height = (int(value) for value in fields[6:10])
        except ValueError:
            continue
        if not word:
            continue
        words.append(
            [
                word,
                _fraction(left, width),
                _fraction(top, height),
                _fraction(left + box_width, width),
                _fraction(top + box_height, height),
            ]
        )
    return words


def _fraction(value: int, whole: int) -> float:
    return round(min(max(value / whole, 0.0), 1.0), 5)


def _ocr_ready(image: Any) -> Any:
    """Upright, grey, on white: what Tesseract reads best (transparent pixels would turn black)."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, "white")
        background.alpha_composite(rgba)
        image = background
    return image.convert("L")


def _image_label(data: bytes) -> str:
    for signature, fmt in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return _FORMAT_NAMES[fmt]
    return "image"


def extract_image(data: bytes) -> str:
    """OCR text of a PNG, JPEG or TIFF image; each page of a multi-page TIFF in turn."""
    return locating.plain(_read_image(data).text)


def _read_image(data: bytes) -> Marked:
    """OCR text of an image, with its words; the pages of a multi-page TIFF located by number."""
    from PIL import Image

    label = _image_label(data)
    limit = LIMITS.image_max_pixels
    # Pillow's own guard against decompression bombs, for any path that decodes.
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            # Past the limit, the size check below refuses the image with its size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            frames = int(getattr(image, "n_frames", 1))
    except Image.DecompressionBombError as exc:
        raise ExtractionError(
            f"The {label} image is too large to read (more than {limit / 1_000_000:g} megapixels; "
            "possible decompression bomb)."
        ) from exc
    except Exception as exc:
        raise ExtractionError(f"The {label} image is damaged or not an image: {_reason(exc)}") from exc
    if frames > LIMITS.ocr_max_pages:
        raise ExtractionError(
            f"The {label} image has {frames:,} pages; at most {LIMITS.ocr_max_pages:,} pages "
            "of a document are read with OCR."
        )
    texts: list[str] = []
    words: dict[int, list[list[Any]]] = {}
    total = 0
    with image:
        for index in range(frames):
            try:
                image.seek(index)
                _check_pixels(*image.size, f"The {label} image is")
                image.load()
                ready = _ocr_ready(image)
            except ExtractionError:
                raise
            except Exception as exc:
                raise ExtractionError(f"The {label} image is damaged: {_reason(exc)}") from exc
            text, page_words = _ocr(ready)
            total += len(text)
            if total > _RAW_TEXT_LIMIT:
                raise _too_long()
            texts.append(text)
            if page_words:
                words[index + 1] = page_words
    # A single image has no pages to name; its words are page 1's all the same.
    marked = _marked(
        _separated(
            ({"kind": "page", "page": number, "ocr": True} if frames > 1 else None, text)
            for number, text in enumerate(texts, start=1)
        )
    )
    marked.ocr_words = words
    return marked


def _check_zip(data: bytes, label: str) -> None:
    """Refuse archives that would expand to something huge before parsing them."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except Exception as exc:
        raise _damaged(label, exc) from exc
    if len(infos) > MAX_DOCX_MEMBERS:
        raise ExtractionError(
            f"The {label} file contains too many parts ({len(infos):,}; possible zip bomb)."
        )
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > _RATIO_CHECK_MIN_BYTES and info.file_size > MAX_DOCX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise ExtractionError(
                f"The {label} file expands to more than {MAX_DOCX_COMPRESSION_RATIO} times "
                "its compressed size (possible zip bomb)."
            )
    if total > MAX_DOCX_UNCOMPRESSED_BYTES:
        raise ExtractionError(
            f"The {label} file expands to more than "
            f"{MAX_DOCX_UNCOMPRESSED_BYTES // (1024 * 1024)} MB (possible zip bomb)."
        )


def _docx_blocks(container: Any, parent: Any) -> Iterator[tuple[str, Any]]:
    """Paragraph texts and table rows under an XML container, in document order, each with its
    paragraph element (None for a table row): a table row is one line, `cell | cell | cell`, as
    XLSX and CSV rows are, so a value stays beside its labels."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    p_tag, tbl_tag, sdt_tag = qn("w:p"), qn("w:tbl"), qn("w:sdt")
    for child in container.iterchildren():
        if child.tag == p_tag:
            yield Paragraph(child, parent).text, child
        elif child.tag == tbl_tag:
            # Merged cells are returned once per grid column they span. The set
            # holds the elements themselves: lxml proxies stay identical only
            # while referenced, so ids of dropped ones can be reused.
            seen: set[Any] = set()
            for row in Table(child, parent).rows:
                cells = []
                for cell in row.cells:
                    if cell._tc in seen:
                        continue
                    seen.add(cell._tc)
                    # A cell's paragraphs (and any table inside it) on the row's one line.
                    cells.append(
                        " ".join(" ".join(block.split()) for block, _ in _docx_blocks(cell._tc, cell))
                    )
                if any(cells):
                    yield " | ".join(cells), None
        elif child.tag == sdt_tag:
            # Content controls (cover pages, tables of contents) wrap real text.
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from _docx_blocks(content, parent)


# Longer headings are cut in a locator: a heading path names a place, it does not quote it.
_MAX_HEADING_CHARS = 200
_DOCX_HEADING_STYLE_RE = re.compile(r"heading ([1-9])", re.IGNORECASE)
# Word's outline levels 0-8 are heading levels 1-9; 9 is body text.
_DOCX_BODY_OUTLINE = 9
_DOCX_STYLE_DEPTH = 10


def _heading_text(text: str) -> str:
    heading = _one_line(text)
    if len(heading) > _MAX_HEADING_CHARS:
        heading = heading[: _MAX_HEADING_CHARS - 1].rstrip() + "…"
    return heading


class _HeadingPath:
    """The headings above the current text, by level: a heading closes those at its level and below."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []
        self.path: str | None = None
        self._key: tuple[str, tuple[tuple[str, Any], ...]] | None = None
        self._locator: Locator | None = None

    def enter(self, level: int, text: str) -> None:
        heading = _heading_text(text)
        if not heading:
            return
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, heading))
        self.path = " > ".join(title for _, title in self._open)

    def locator(self, **extra: Any) -> Locator | None:
        """{"kind": "section", "heading": path, **extra}, the same object while nothing changes."""
        if not self.path:
            return None
        key = (self.path, tuple(sorted(extra.items())))
        if key != self._key:
            self._key = key
            self._locator = {"kind": "section", "heading": self.path, **extra}
        return self._locator


def _docx_outline_level(element: Any) -> int | None:
    """The outline level (0-9) an element's paragraph properties set, if any."""
    from docx.oxml.ns import qn

    properties = element.find(qn("w:pPr"))
    outline = properties.find(qn("w:outlineLvl")) if properties is not None else None
    if outline is None:
        return None
    try:
        return int(outline.get(qn("w:val")))
    except (TypeError, ValueError):
        return None


def _docx_style_levels(document: Any) -> tuple[dict[str, int | None], int | None]:
    """Heading level (1-9, None for body text) of each paragraph style by id, and of the default one.

    A style is a heading by its name ("Heading 1".."Heading 9"; "Title" counts as level 1, the
    level of the sections under it) or by its outline level, its own or one it is based on.
    """
    from docx.oxml.ns import qn

    styles: dict[str, Any] = {}
    default: str | None = None
    for style in document.styles.element.iterchildren(qn("w:style")):
        if style.get(qn("w:type")) not in (None, "paragraph"):
            continue
        style_id = style.get(qn("w:styleId")) or ""
        styles[style_id] = style
        if style.get(qn("w:default")) in ("1", "true", "on") and default is None:
            default = style_id

    def own_level(style: Any) -> int | None:
        name_element = style.find(qn("w:name"))
        name = (name_element.get(qn("w:val")) or "").strip() if name_element is not None else ""
        match = _DOCX_HEADING_STYLE_RE.fullmatch(name)
        if match:
            return int(match.group(1))
        if name.lower() == "title":
            return 1
        outline = _docx_outline_level(style)
        if outline is not None:
            return outline + 1 if outline < _DOCX_BODY_OUTLINE else 0
        return None

    levels: dict[str, int | None] = {}
    for style_id, style in styles.items():
        level: int | None = None
        current, seen = style, 0
        while current is not None and seen < _DOCX_STYLE_DEPTH:
            level = own_level(current)
            if level is not None:
                break
            based_on = current.find(qn("w:basedOn"))
            current = styles.get(based_on.get(qn("w:val")) or "") if based_on is not None else None
            seen += 1
        levels[style_id] = level or None
    return levels, levels.get(default or "")


def _docx_paragraph_level(paragraph: Any, levels: dict[str, int | None], default: int | None) -> int | None:
    from docx.oxml.ns import qn

    outline = _docx_outline_level(paragraph)
    if outline is not None:
        return outline + 1 if outline < _DOCX_BODY_OUTLINE else None
    properties = paragraph.find(qn("w:pPr"))
    style = properties.find(qn("w:pStyle")) if properties is not None else None
    if style is None:
        return default
    return levels.get(style.get(qn("w:val")) or "")


def _docx_pieces(document: Any) -> Iterator[tuple[Locator | None, str]]:
    """Each paragraph and table row, located by the path of headings above it."""
    try:
        levels, default = _docx_style_levels(document)
    except Exception as exc:  # noqa: BLE001 - headings are a nicety: odd styles never cost the text
        logger.info("DOCX styles not read for headings: %s", _reason(exc))
        levels, default = {}, None
    headings = _HeadingPath()
    for text, paragraph in _docx_blocks(document.element.body, document):
        if paragraph is None:
            yield headings.locator(table=True), text
            continue
        level = _docx_paragraph_level(paragraph, levels, default)
        if level is not None:
            headings.enter(level, text)
        yield headings.locator(), text


def extract_docx(data: bytes) -> str:
    """Body paragraphs and table cells in document order, blank-line separated."""
    return locating.plain(_read_docx(data).text)


def _read_docx(data: bytes) -> Marked:
    import docx

    _check_zip(data, "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
        return _marked(_separated(_docx_pieces(document)))
    except ExtractionError:
        raise
    except Exception as exc:
        raise _damaged("DOCX", exc) from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _pptx_shapes(shapes: Any) -> Iterator[Any]:
    """Every shape on a slide, the members of groups in place of the group."""
    from pptx.shapes.group import GroupShape

    # Iterative: groups nested thousands deep must not hit the recursion limit.
    stack: list[Iterator[Any]] = [iter(shapes)]
    while stack:
        shape = next(stack[-1], None)
        if shape is None:
            stack.pop()
        elif isinstance(shape, GroupShape):
            stack.append(iter(shape.shapes))
        else:
            yield shape


def _slide_blocks(number: int, slide: Any) -> Iterator[tuple[Locator, str]]:
    """ "Slide N: title", then text boxes and table rows, then the speaker notes, each located."""
    here: Locator = {"kind": "slide", "slide": number}
    title_shape = slide.shapes.title
    title = _one_line(title_shape.text_frame.text) if title_shape is not None else ""
    yield here, f"Slide {number}: {title}" if title else f"Slide {number}"
    for shape in _pptx_shapes(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if shape.has_text_frame:
            if shape.text_frame.text.strip():
                yield here, shape.text_frame.text
        elif shape.has_table:
            for row in shape.table.rows:
                # A merged cell's text is in its first cell; the cells it covers are empty.
                cells = [_one_line(cell.text) for cell in row.cells if not cell.is_spanned]
                if any(cells):
                    yield here, " | ".join(cells)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            yield {**here, "notes": True}, "Notes: " + notes.text


def extract_pptx(data: bytes) -> str:
    """Each slide in order under a "Slide N" heading: title, text, tables, speaker notes."""
    return locating.plain(_read_pptx(data).text)


def _read_pptx(data: bytes) -> Marked:
    import pptx

    _check_zip(data, "PPTX")
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        return _marked(
            _separated(
                block
                for number, slide in enumerate(presentation.slides, start=1)
                for block in _slide_blocks(number, slide)
            )
        )
    except ExtractionError:
        raise
    except Exception as exc:
        raise _damaged("PPTX", exc) from exc


@dataclass
class _CellBudget:
    """Cells and characters a spreadsheet may still produce."""

    limit: int
    used: int = 0
    chars: int = 0
    exhausted: bool = False

    def take(self, cells: int) -> bool:
        if self.used + cells > self.limit:
            self.exhausted = True
            return False
        self.used += cells
        return True

    def note(self, what: str) -> str:
        return f"[The {what} has more than {self.limit:,} cells; only the rows within that limit were read.]"


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:.15g}"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return _one_line(str(value))


def _table_lines(rows: Iterable[Any], budget: _CellBudget) -> list[tuple[int, str]]:
    """One line per non-empty row, cells separated by " | ", until the budget runs out; each with
    its row's number (1-based), empty rows counted."""
    lines: list[tuple[int, str]] = []
    for number, row in enumerate(rows, start=1):
        if not budget.take(len(row)):
            break
        cells = [_cell_text(value) for value in row]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            line = " | ".join(cells)
            budget.chars += len(line)
            if budget.chars > _RAW_TEXT_LIMIT:
                raise _too_long()
            lines.append((number, line))
    return lines


def extract_xlsx(data: bytes) -> str:
    """Each worksheet under a "Sheet: name" heading, one line per row (cached formula values)."""
    return locating.plain(_read_xlsx(data).text)


def _read_xlsx(data: bytes) -> Marked:
    """Each row line located by its sheet and row number; the "Sheet: name" line goes with the first row."""
    import openpyxl

    _check_zip(data, "XLSX")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise _damaged("XLSX", exc) from exc
    budget = _CellBudget(LIMITS.sheet_max_cells)
    pieces: list[tuple[Locator | None, str]] = []
    try:
        for sheet in workbook.worksheets:
            # The size a file declares may be a million rows; read the rows that are there.
            sheet.reset_dimensions()
            # Read-only rows come one per row number from 1, missing ones as empty rows.
            lines = _table_lines(sheet.iter_rows(values_only=True), budget)
            for index, (number, line) in enumerate(lines):
                locator = {"kind": "sheet", "sheet": sheet.title, "rows": [number, number]}
                if index == 0:
                    line = ("\n\n" if pieces else "") + f"Sheet: {sheet.title}\n" + line
                else:
                    line = "\n" + line
                pieces.append((locator, line))
            if budget.exhausted:
                pieces.append((None, ("\n\n" if pieces else "") + budget.note("workbook")))
                break
    except ExtractionError:
        raise
    except Exception as exc:
        raise _damaged("XLSX", exc) from exc
    finally:
        workbook.close()
    return _marked(pieces)


def extract_csv(data: bytes) -> str:
    """One line per row, cells separated by " | "; encoding, delimiter and quoting are sniffed."""
    return locating.plain(_read_csv(data).text)


def _read_csv(data: bytes) -> Marked:
    """Each line located by its record number (the header is record 1)."""
    text = _decode_text(bytes(data))
    if text is None:
        raise ExtractionError("Unsupported file type: the file looks binary, not text. " + _SUPPORTED)
    dialect = _csv_dialect(text) or csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    budget = _CellBudget(LIMITS.sheet_max_cells)
    try:
        lines = _table_lines(reader, budget)
    except csv.Error as exc:
        raise ExtractionError(
            f"The CSV file could not be read at line {reader.line_num:,}: {_reason(exc)}"
        ) from exc
    pieces: list[tuple[Locator | None, str]] = [
        ({"kind": "rows", "rows": [number, number]}, line) for number, line in lines
    ]
    if budget.exhausted:
        pieces.append((None, budget.note("file")))
    return _marked(_separated(pieces, "\n"))


_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_EPUB_CONTAINER = "META-INF/container.xml"
_EPUB_ENCRYPTION = "META-INF/encryption.xml"


def _parse_xml(data: bytes) -> Any:
    from lxml import etree

    # No DTDs, entities or network: an EPUB's XML is data, not instructions.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True)
    root = etree.fromstring(data, parser=parser)
    if root is None:
        raise ExtractionError("The EPUB file is damaged: an XML part is empty or unreadable.")
    return root


def _xml_elements(root: Any, name: str) -> Iterator[Any]:
    """Elements with this local name, whatever their namespace (producers vary)."""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.rsplit("}", 1)[-1] == name:
            yield element


def _epub_package_path(zf: zipfile.ZipFile, names: set[str]) -> str:
    if _EPUB_CONTAINER in names:
        for rootfile in _xml_elements(_parse_xml(zf.read(_EPUB_CONTAINER)), "rootfile"):
            path = rootfile.get("full-path") or ""
            if path in names:
                return path
    packages = sorted(name for name in names if name.lower().endswith(".opf"))
    if not packages:
        raise ExtractionError("The EPUB file is damaged: it has no package document (.opf).")
    return packages[0]


def _epub_encrypted(zf: zipfile.ZipFile, names: set[str]) -> set[str]:
    """Members listed as encrypted (DRM, or obfuscated fonts)."""
    if _EPUB_ENCRYPTION not in names:
        return set()
    root = _parse_xml(zf.read(_EPUB_ENCRYPTION))
    return {
        posixpath.normpath(unquote(reference.get("URI") or ""))
        for reference in _xml_elements(root, "CipherReference")
    }


def _epub_chapters(zf: zipfile.ZipFile) -> list[str]:
    """Member paths of the (X)HTML chapters, in spine (reading) order."""
    names = set(zf.namelist())
    package_path = _epub_package_path(zf, names)
    package = _parse_xml(zf.read(package_path))
    base = posixpath.dirname(package_path)
    manifest = {
        item.get("id"): (item.get("href") or "", (item.get("media-type") or "").strip().lower())
        for item in _xml_elements(package, "item")
    }
    chapters: list[str] = []
    for itemref in _xml_elements(package, "itemref"):
        href, media_type = manifest.get(itemref.get("idref"), ("", ""))
        if not href or media_type not in _XHTML_TYPES:
            continue
        path = posixpath.normpath(posixpath.join(base, unquote(href.split("#", 1)[0])))
        if path in names and path not in chapters:
            chapters.append(path)
    if not chapters:
        raise ExtractionError("The EPUB file lists no chapters to read.")
    if _epub_encrypted(zf, names).intersection(chapters):
        raise ExtractionError(
            "The EPUB is protected with DRM (its chapters are encrypted); upload an unprotected copy."
        )
    return chapters


_NCX_TYPE = "application/x-dtbncx+xml"
_OPS_TYPE = "{http://www.idpf.org/2007/ops}type"


def _epub_toc_labels(zf: zipfile.ZipFile) -> dict[str, str]:
    """The label the table of contents gives each chapter, by member path: from the EPUB 3
    navigation document, else the EPUB 2 NCX; the first label of a chapter wins."""
    names = set(zf.namelist())
    package_path = _epub_package_path(zf, names)
    package = _parse_xml(zf.read(package_path))
    base = posixpath.dirname(package_path)
    items = list(_xml_elements(package, "item"))
    nav = [item for item in items if "nav" in (item.get("properties") or "").split()]
    ncx = [item for item in items if (item.get("media-type") or "").strip().lower() == _NCX_TYPE]
    labels: dict[str, str] = {}
    for item in nav[:1] or ncx[:1]:
        toc_path = posixpath.normpath(
            posixpath.join(base, unquote((item.get("href") or "").split("#", 1)[0]))
        )
        if toc_path not in names or zf.getinfo(toc_path).file_size > _METADATA_PART_MAX_BYTES:
            continue
        toc = _parse_xml(zf.read(toc_path))
        links: list[tuple[str, str]] = []
        if item in nav:
            navs = list(_xml_elements(toc, "nav"))
            chosen = [element for element in navs if element.get(_OPS_TYPE) == "toc"] or navs[:1]
            for element in chosen[:1]:
                links = [(a.get("href") or "", "".join(a.itertext())) for a in _xml_elements(element, "a")]
        else:
            for point in _xml_elements(toc, "navPoint"):
                label = next((("".join(t.itertext())) for t in _xml_elements(point, "text")), "")
                content = next(_xml_elements(point, "content"), None)
                links.append(((content.get("src") or "") if content is not None else "", label))
        for href, label in links:
            if not href:
                continue
            path = posixpath.normpath(
                posixpath.join(posixpath.dirname(toc_path), unquote(href.split("#", 1)[0]))
            )
            heading = _heading_text(label)
            if heading and path not in labels:
                labels[path] = heading
    return labels


def _chapter_title(chapter: _HtmlText, toc_label: str | None) -> str | None:
    """What a reader sees a chapter called: its first h1-h3, else its table-of-contents label, else its <title>."""
    for candidate in (chapter.first_heading, toc_label, chapter.title):
        heading = _heading_text(candidate or "")
        if heading:
            return heading
    return None


def _epub_pieces(zf: zipfile.ZipFile) -> Iterator[tuple[Locator | None, str]]:
    chapters = _epub_chapters(zf)
    try:
        labels = _epub_toc_labels(zf)
    except Exception as exc:  # noqa: BLE001 - the table of contents is only a fallback for names
        logger.info("EPUB table of contents not read: %s", _reason(exc))
        labels = {}
    for path in chapters:
        chapter = _html_text(zf.read(path))
        title = _chapter_title(chapter, labels.get(path))
        yield ({"kind": "chapter", "heading": title} if title else None), chapter.joined()


def extract_epub(data: bytes) -> str:
    """The chapters' text in reading (spine) order, each read as HTML."""
    return locating.plain(_read_epub(data).text)


def _read_epub(data: bytes) -> Marked:
    """The chapters' text, each located by its title."""
    _check_zip(data, "EPUB")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return _marked(_separated(_epub_pieces(zf)))
    except ExtractionError:
        raise
    except Exception as exc:
        raise _damaged("EPUB", exc) from exc


_trafilatura_config: Any = None


def extract_web_page(data: bytes) -> str:
    """The main content of a web page (trafilatura): no menus, footers, ads or cookie banners.

    A page in which trafilatura finds no main content gives all its visible text instead.
    """
    global _trafilatura_config
    import trafilatura
    from trafilatura.settings import use_config

    if _trafilatura_config is None:
        config = use_config()
        # The upload limit bounds the page already; trafilatura's own cap is lower.
        config.set("DEFAULT", "MAX_FILE_SIZE", str(1 << 30))
        config.set("DEFAULT", "EXTENSIVE_DATE_SEARCH", "off")
        _trafilatura_config = config
    text = trafilatura.extract(
        data,
        config=_trafilatura_config,
        include_comments=False,
        include_tables=True,
        include_images=False,
        favor_recall=True,
        deduplicate=False,
        with_metadata=False,
    )
    if not text or not text.strip():
        return extract_html(data)
    # One line per paragraph: a blank line is what the sentence splitter reads as a break.
    return text.replace("\n", "\n\n")


_HTML_DROP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "head",
        "title",
        "meta",
        "link",
        "svg",
        "math",
        "iframe",
        "object",
        "embed",
        "canvas",
        "select",
        "datalist",
    }
)
_HTML_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
_HTML_CELL = frozenset({"td", "th"})
_WHITESPACE_RE = re.compile(r"\s+")


_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# A heading's text is gathered from at most this many of its nodes: deeply nested headings
# must not make the walk quadratic.
_HTML_HEADING_NODES = 2000


@dataclass
class _HtmlText:
    """The visible text of an HTML document in pieces, each with its section's locator."""

    parts: list[str]
    # (index of the first part, locator) of each section, in order.
    sections: list[tuple[int, Locator | None]]
    # The first h1-h3 and the <title> in the head, which name an EPUB chapter.
    first_heading: str | None
    title: str | None

    def joined(self) -> str:
        return "".join(self.parts)

    def pieces(self) -> Iterator[tuple[Locator | None, str]]:
        ends = [start for start, _ in self.sections[1:]] + [len(self.parts)]
        for (start, locator), end in zip(self.sections, ends, strict=True):
            yield locator, "".join(self.parts[start:end])


def _html_heading_text(node: Any) -> str:
    from bs4 import NavigableString

    found: list[str] = []
    size = 0
    for count, child in enumerate(node.descendants):
        if count >= _HTML_HEADING_NODES or size > _MAX_HEADING_CHARS:
            break
        if type(child) is NavigableString and (child.parent is None or child.parent.name not in _HTML_DROP):
            found.append(str(child))
            size += len(child)
    return _heading_text("".join(found))


def extract_html(data: bytes) -> str:
    """Visible body text; block elements become paragraphs, <br> a line break."""
    return _html_text(data).joined()


def _read_html(data: bytes) -> Marked:
    """Visible body text, located by the path of headings (h1-h6) above it."""
    return _marked(_html_text(data).pieces())


def _html_text(data: bytes) -> _HtmlText:
    from bs4 import BeautifulSoup, NavigableString, Tag

    try:
        # Bytes, not str: BeautifulSoup honours the page's declared charset.
        soup = BeautifulSoup(data, "lxml")
    except Exception as exc:
        raise ExtractionError(f"The HTML could not be parsed: {_reason(exc)}") from exc
    root = soup.body or soup
    head_title = soup.head.find("title") if soup.head else None
    title = head_title.get_text() if head_title is not None else None
    first_heading: str | None = None
    headings = _HeadingPath()
    parts: list[str] = []
    sections: list[tuple[int, Locator | None]] = [(0, None)]
    at_line_start = True
    pre_depth = 0
    # Iterative walk: deeply nested markup must not hit the recursion limit.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            if node.name == "pre":
                pre_depth -= 1
            if node.name in _HTML_BLOCK:
                parts.append("\n\n")
                at_line_start = True
            elif node.name in _HTML_CELL:
                parts.append("\t")
            continue
        if isinstance(node, NavigableString):
            # Subclasses are comments, doctypes, CDATA and processing instructions.
            if type(node) is not NavigableString:
                continue
            text = str(node)
            if not pre_depth:
                text = _WHITESPACE_RE.sub(" ", text)
                if at_line_start:
                    text = text.lstrip()
            if text:
                parts.append(text)
                at_line_start = text.endswith("\n")
            continue
        if not isinstance(node, Tag):
            continue
        name = (node.name or "").lower()
        if name in _HTML_DROP or node.has_attr("hidden"):
            continue
        if name == "br":
            parts.append("\n")
            at_line_start = True
            continue
        if name in _HTML_BLOCK:
            parts.append("\n\n")
            at_line_start = True
        level = _HTML_HEADINGS.get(name)
        if level is not None:
            heading = _html_heading_text(node)
            headings.enter(level, heading)
            if headings.locator() is not sections[-1][1]:
                sections.append((len(parts), headings.locator()))
            if first_heading is None and level <= 3 and heading:
                first_heading = heading
        if name == "pre":
            pre_depth += 1
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return _HtmlText(parts, sections, first_heading, title)


def extract_plain(data: bytes) -> str:
    """Decoded text of a plain-text or Markdown file (Markdown is kept as written)."""
    text = _decode_text(bytes(data))
    if text is None:
        raise ExtractionError("Unsupported file type: the file looks binary, not text. " + _SUPPORTED)
    return text


# Line ends as markdown-it counts lines (it normalises \r\n and \r to \n first).
_MARKDOWN_LINE_END_RE = re.compile(r"\r\n?|\n")
# Of a heading's source, only this much is read for its name.
_MARKDOWN_HEADING_SOURCE_CHARS = 4 * _MAX_HEADING_CHARS


def _markdown_inline_text(parser: Any, source: str) -> str:
    """The text of a heading's inline Markdown: `*Returns*` -> Returns."""
    tokens = parser.parseInline(source[:_MARKDOWN_HEADING_SOURCE_CHARS])
    children = tokens[0].children if tokens else None
    return "".join(
        " " if child.type in ("softbreak", "hardbreak") else child.content
        for child in children or []
        if child.type in ("text", "code_inline", "softbreak", "hardbreak")
    )


def _markdown_pieces(text: str) -> Iterator[tuple[Locator | None, str]]:
    """Markdown as written, each heading (ATX or setext) starting a section named by its path.

    Only markdown-it's block rules run, which are linear in the text; the inline rules run on
    the headings alone.
    """
    from markdown_it import MarkdownIt

    blocks = MarkdownIt("commonmark").disable(["inline", "text_join"], ignoreInvalid=True)
    inline = MarkdownIt("commonmark")
    tokens = blocks.parse(text)
    line_starts = [0] + [match.end() for match in _MARKDOWN_LINE_END_RE.finditer(text)]
    headings = _HeadingPath()
    locator: Locator | None = None
    position = 0
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or not token.map or index + 1 >= len(tokens):
            continue
        line = token.map[0]
        start = line_starts[line] if line < len(line_starts) else len(text)
        if start < position:
            continue
        yield locator, text[position:start]
        headings.enter(int(token.tag[1:]), _markdown_inline_text(inline, tokens[index + 1].content))
        locator, position = headings.locator(), start
    yield locator, text[position:]


# --------------------------------------------------------------------------
# Normalising and the entry point
# --------------------------------------------------------------------------

_LINE_BREAKS_RE = re.compile(r"\r\n?|[\v\f\x85\u2028\u2029]")
# Control characters other than \t and \n, lone surrogates (which cannot be
# stored as UTF-8) and byte-order marks left in the middle of text.
_STRIP_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")
_HSPACE_RE = re.compile(r"[^\S\n]+")
_TRAILING_SPACE_RE = re.compile(r" +$", re.MULTILINE)
_BLANK_LINES_RE = re.compile(r"\n{3,}")


def normalise(text: str) -> str:
    """Canonical text: NFC, \\n line ends, no control characters, tidy whitespace.

    Runs of spaces and tabs become one space, trailing spaces go, and more
    than one blank line becomes one blank line, which the sentence splitter
    reads as a paragraph break. The result is a fixed point: normalising it
    again changes nothing, so stored offsets stay valid.
    """
    text = _LINE_BREAKS_RE.sub("\n", text)
    # Before NFC, so characters separated only by a control character compose.
    text = _STRIP_RE.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _HSPACE_RE.sub(" ", text)
    text = _TRAILING_SPACE_RE.sub("", text)
    text = _BLANK_LINES_RE.sub("\n\n", text)
    return text.strip()


def _too_long() -> ExtractionError:
    return ExtractionError(f"The extracted text is too long (the limit is {MAX_TEXT_CHARS:,} characters).")


# --------------------------------------------------------------------------
# Titles
# --------------------------------------------------------------------------

# Longer titles are cut with an ellipsis (the document's own limit, documents.services.TITLE_MAX).
MAX_TITLE_CHARS = 300
# A title sits near the top of a page or a Markdown file; only this much is searched for one,
# so that a file the text reader barely got through is not parsed a second time in full.
_TITLE_SCAN_BYTES = 256 * 1024
_TITLE_SCAN_CHARS = 64 * 1024
_METADATA_PART_MAX_BYTES = 1024 * 1024
# What producers write when nobody gave the document a title.
_PLACEHOLDER_TITLES = frozenset(
    {
        "untitled",
        "untitled document",
        "no title",
        "title",
        "document",
        "new document",
        "presentation",
        "powerpoint presentation",
        "slide 1",
        "blank",
        "default",
        "none",
        "null",
        "unknown",
        "anonymous",
    }
)
_PLACEHOLDER_TITLE_RE = re.compile(
    # "Microsoft Word - report.doc", "Microsoft PowerPoint - deck.ppt": the printer driver's name.
    r"^microsoft\s+(?:office\s+)?(?:word|powerpoint|excel)\s*-"
    # "Document1", "Presentation 3", "Untitled-2", "Book1": an application's unsaved file.
    r"|^(?:untitled|document|presentation|book|sheet|slide)\s*-?\s*\d+$"
    # A path or a bare file name: "C:\\Users\\x\\report.docx", "/tmp/a.pdf", "final_v2.doc".
    r"|^[a-z]:[\\/]|^/|^file:"
    r"|^\S+\.(?:docx?|pdf|pptx?|xlsx?|rtf|odt|txt|md|html?|tex|dvi|ps|indd|qxd|tmp)$"
    # A browser's page that was printed before it had a title: "about:blank", a bare address.
    r"|^about:|^(?:https?|data|blob):"
    # The temporary names editors write: "~$report.docx", "~WRL0001", "tmpa1b2c3d4", ".~lock".
    r"|^~|^\.~lock|^tmp[a-z0-9_]{4,}$",
    re.IGNORECASE,
)


def tidy_title(raw: Any) -> str | None:
    """A title on one line with no control characters, at most MAX_TITLE_CHARS; None for a placeholder."""
    if not isinstance(raw, str):
        return None
    title = " ".join(unicodedata.normalize("NFC", _STRIP_RE.sub("", " ".join(raw.split()))).split())
    if not any(ch.isalpha() for ch in title):
        return None
    if title.lower() in _PLACEHOLDER_TITLES or _PLACEHOLDER_TITLE_RE.search(title):
        return None
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return title


def _first_title(candidates: Iterable[Any]) -> str | None:
    for candidate in candidates:
        title = tidy_title(candidate)
        if title:
            return title
    return None


def _pdf_title(data: bytes, raw: str) -> str | None:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        # Only a PDF that opens with the empty password gets this far (extract_pdf).
        reader.decrypt("")
    metadata = reader.metadata
    return metadata.title if metadata is not None else None


def _core_properties_title(data: bytes) -> str | None:
    """dc:title of an Office Open XML package's core properties (docProps/core.xml)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        try:
            info = zf.getinfo("docProps/core.xml")
        except KeyError:
            return None
        if info.file_size > _METADATA_PART_MAX_BYTES:
            return None
        root = _parse_xml(zf.read(info))
    return _first_title("".join(element.itertext()) for element in _xml_elements(root, "title"))


def _docx_title(data: bytes, raw: str) -> str | None:
    return _core_properties_title(data)


_FIRST_SLIDE_TITLE_RE = re.compile(r"\ASlide 1: (.+)$", re.MULTILINE)


def _pptx_title(data: bytes, raw: str) -> str | None:
    """The core properties' title, else the first slide's (the first line _slide_blocks wrote)."""
    first_slide = _FIRST_SLIDE_TITLE_RE.match(raw)
    return _first_title([_core_properties_title(data), first_slide.group(1) if first_slide else None])


def _epub_title(data: bytes, raw: str) -> str | None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        package = _parse_xml(zf.read(_epub_package_path(zf, set(zf.namelist()))))
    return _first_title(
        "".join(title.itertext())
        for metadata in _xml_elements(package, "metadata")
        for title in _xml_elements(metadata, "title")
    )


def _html_title(data: bytes, raw: str) -> str | None:
    """<title>, else og:title, else the first <h1>, read from the top of the page."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data[:_TITLE_SCAN_BYTES], "lxml")
    # In the head only: an inline SVG's <title> names an icon, not the page.
    title = soup.head.find("title") if soup.head else None
    og_title = soup.find("meta", attrs={"property": "og:title"})
    h1 = soup.find("h1")
    return _first_title(
        [
            title.get_text() if title else None,
            og_title.get("content") if og_title else None,
            h1.get_text(" ") if h1 else None,
        ]
    )


def _markdown_title(data: bytes, raw: str) -> str | None:
    """The text of the first heading when it is an H1 (``# Title`` or ``Title`` underlined with ``=``)."""
    from markdown_it import MarkdownIt

    text = raw[:_TITLE_SCAN_CHARS]
    if len(text) < len(raw):
        text = text.rsplit("\n", 1)[0]
    tokens = MarkdownIt("commonmark", {"html": False}).parse(text)
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        if token.tag != "h1":
            return None  # the document opens with a section, not a title
        inline = tokens[index + 1]
        return "".join(
            " " if child.type in ("softbreak", "hardbreak") else child.content
            for child in inline.children or []
            if child.type in ("text", "code_inline", "softbreak", "hardbreak")
        )
    return None


# Formats that can carry a title. A web page fetched by URL has one already: the fetch took it.
_TITLE_READERS: dict[str, Callable[[bytes, str], str | None]] = {
    "pdf": _pdf_title,
    "docx": _docx_title,
    "pptx": _pptx_title,
    "xlsx": _docx_title,
    "epub": _epub_title,
    "html": _html_title,
    "md": _markdown_title,
}


def _read_title(fmt: str, data: bytes, raw: str) -> str | None:
    reader = _TITLE_READERS.get(fmt)
    if reader is None:
        return None
    try:
        return tidy_title(reader(data, raw))
    except Exception as exc:  # noqa: BLE001 - a title is a nicety: an unreadable one never costs the text
        logger.info("no title read from the %s file: %s", fmt, _reason(exc))
        return None


# Readers by format: the text, or the text marked with where each piece came from (locating).
_EXTRACTORS: dict[str, Callable[[bytes], str | Marked]] = {
    "pdf": _read_pdf,
    "docx": _read_docx,
    "pptx": _read_pptx,
    "xlsx": _read_xlsx,
    "epub": _read_epub,
    "html": _read_html,
    "web": extract_web_page,
    "csv": _read_csv,
    "png": _read_image,
    "jpeg": _read_image,
    "tiff": _read_image,
    "md": extract_plain,
    "txt": extract_plain,
}
_FORMAT_NAMES = {
    "pdf": "PDF",
    "docx": "DOCX",
    "pptx": "PPTX",
    "xlsx": "XLSX",
    "epub": "EPUB",
    "html": "HTML",
    "web": "web page",
    "csv": "CSV",
    "png": "PNG",
    "jpeg": "JPEG",
    "tiff": "TIFF",
    "md": "Markdown",
    "txt": "text",
}


def extract_text(data: bytes, *, filename: str = "") -> Extracted:
    """Sniff, extract and normalise; every failure is an ExtractionError."""
    fmt = ""
    marked: Marked | None = None
    try:
        data = bytes(data)
        fmt, decoded = _sniff(data, filename)
        result = decoded if decoded is not None and fmt in ("md", "txt") else _EXTRACTORS[fmt](data)
        if isinstance(result, Marked):
            marked, raw = result, locating.plain(result.text)
        else:
            raw = result
        if len(raw) > _RAW_TEXT_LIMIT:
            raise _too_long()
        text = normalise(raw)
    except ExtractionError:
        raise
    except Exception as exc:
        # Parsers fail in many undocumented ways on hostile input; none of
        # them may take down the ingest worker.
        label = _FORMAT_NAMES.get(fmt, "")
        what = f"the {label} file" if label else "the file"
        raise ExtractionError(f"Could not read {what}: {_reason(exc)}") from exc
    if not text:
        if fmt in IMAGE_FORMATS:
            raise ExtractionError("The image contains no text that OCR could read.")
        raise ExtractionError(
            "The file contains no extractable text (it may be empty, or a scan in which OCR found no text)."
        )
    if len(text) > MAX_TEXT_CHARS:
        raise ExtractionError(
            f"The extracted text is too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,})."
        )
    return Extracted(
        text=text,
        format=fmt,
        title=_read_title(fmt, data, raw),
        locations=_places(fmt, raw, marked, text),
        ocr_words=marked.ocr_words if marked is not None else {},
    )


def _places(fmt: str, raw: str, marked: Marked | None, text: str) -> tuple[tuple[int, int, Locator], ...]:
    """Where each stretch of the text is in the file; none (never a failed document) when the
    places cannot be worked out, since the text is what the document is indexed by."""
    try:
        if fmt == "md":
            marked = _read_markdown(raw)
        return locating.locations(marked, text, normalise) if marked is not None else ()
    except (MemoryError, Exception) as exc:  # noqa: BLE001 - a nicety, like the title: never costs the text
        # MemoryError too: near the memory limit the marked copy is what does not fit, and the
        # text is already read; dropping the places frees it.
        logger.warning("no locations read from the %s file: %s", fmt, _reason(exc))
        return ()


def _read_markdown(text: str) -> Marked | None:
    try:
        return _marked(_markdown_pieces(text))
    except Exception as exc:  # noqa: BLE001 - sections are a nicety: an unparsed one never costs the text
        logger.info("no sections read from the Markdown file: %s", _reason(exc))
        return None
