"""File bytes -> plain text, one function per format.

The format is judged by the bytes, never by the file name: uploads are often
mislabelled (a PDF saved as ``.txt``, an HTML page saved as ``.doc``), and the
name is only used to tell Markdown from plain text, which read the same way.

Every failure leaves ``extract_text`` as an ``ExtractionError`` whose message a
person can read, because it is shown on the document page as the reason the
document could not be indexed.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_PDF_PAGES",
    "MAX_TEXT_CHARS",
    "Extracted",
    "ExtractionError",
    "extract_docx",
    "extract_html",
    "extract_pdf",
    "extract_plain",
    "extract_text",
    "normalise",
    "sniff_format",
]

MAX_PDF_PAGES = 2000
MAX_TEXT_CHARS = 5_000_000
MAX_DOCX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_DOCX_COMPRESSION_RATIO = 100
MAX_DOCX_MEMBERS = 10_000
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

FORMATS = ("pdf", "docx", "html", "md", "txt")
_SUPPORTED = "Upload a PDF, Word (.docx), HTML, Markdown or plain-text file."


class ExtractionError(Exception):
    """A file could not be turned into text; the message says why, for people."""


@dataclass(frozen=True)
class Extracted:
    text: str
    format: str


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
# Known binary formats get a specific message instead of "looks binary".
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "a legacy Microsoft Office file (.doc, .xls or .ppt); save it as .docx or PDF",
    ),
    (b"{\\rtf", "an RTF document; save it as .docx or PDF"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
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


def _zip_is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if "word/document.xml" in names:
                return True
            info = zf.getinfo("[Content_Types].xml") if "[Content_Types].xml" in names else None
            if info is not None and info.file_size < 1024 * 1024:
                return b"wordprocessingml.document.main" in zf.read(info)
            return False
    except Exception as exc:
        raise ExtractionError(
            f"The file looks like a ZIP archive (such as a .docx) but is damaged: {_reason(exc)}"
        ) from exc


def _sniff(data: bytes, filename: str) -> tuple[str, str | None]:
    """Format of ``data`` and, for text formats, the decoded text (to decode once)."""
    head = data[:1024]
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"%PDF-"):
        return "pdf", None
    if head.startswith(_ZIP_MAGIC):
        if _zip_is_docx(data):
            return "docx", None
        raise ExtractionError(
            "Unsupported file type: a ZIP archive that is not a Word .docx document. " + _SUPPORTED
        )
    for signature, description in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise ExtractionError(f"Unsupported file type: this is {description}. " + _SUPPORTED)
    text = _decode_text(data)
    if text is None:
        raise ExtractionError("Unsupported file type: the file looks binary, not text. " + _SUPPORTED)
    if _looks_like_html(text, filename):
        return "html", text
    return ("md" if _is_markdown_name(filename) else "txt"), text


def sniff_format(data: bytes, filename: str = "") -> str:
    """One of ``FORMATS``, judged by content; raises for unsupported files."""
    return _sniff(bytes(data), filename)[0]


# --------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------


def extract_pdf(data: bytes) -> str:
    """Text of every page, pages separated by a blank line."""
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
    texts: list[str] = []
    failures: list[Exception] = []
    total = 0
    for number in range(page_count):
        try:
            page_text = reader.pages[number].extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - pypdf fails in undocumented ways
            # One broken page should not cost the rest of the document.
            logger.warning("PDF page %d could not be read: %s", number + 1, _reason(exc))
            failures.append(exc)
            continue
        total += len(page_text)
        if total > _RAW_TEXT_LIMIT:
            raise _too_long()
        texts.append(page_text)
    if failures and len(failures) == page_count:
        raise ExtractionError(f"The PDF is damaged or not a PDF: {_reason(failures[0])}")
    return "\n\n".join(texts)


def _check_docx_zip(data: bytes) -> None:
    """Refuse archives that would expand to something huge before parsing them."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except Exception as exc:
        raise ExtractionError(f"The DOCX file is damaged or not a DOCX: {_reason(exc)}") from exc
    if len(infos) > MAX_DOCX_MEMBERS:
        raise ExtractionError(f"The DOCX file contains too many parts ({len(infos):,}; possible zip bomb).")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > _RATIO_CHECK_MIN_BYTES and info.file_size > MAX_DOCX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise ExtractionError(
                f"The DOCX file expands to more than {MAX_DOCX_COMPRESSION_RATIO} times "
                "its compressed size (possible zip bomb)."
            )
    if total > MAX_DOCX_UNCOMPRESSED_BYTES:
        raise ExtractionError(
            f"The DOCX file expands to more than "
            f"{MAX_DOCX_UNCOMPRESSED_BYTES // (1024 * 1024)} MB (possible zip bomb)."
        )


def _docx_blocks(container: Any, parent: Any) -> Iterator[str]:
    """Paragraph and table-cell texts under an XML container, in document order."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    p_tag, tbl_tag, sdt_tag = qn("w:p"), qn("w:tbl"), qn("w:sdt")
    for child in container.iterchildren():
        if child.tag == p_tag:
            yield Paragraph(child, parent).text
        elif child.tag == tbl_tag:
            # Merged cells are returned once per grid column they span. The set
            # holds the elements themselves: lxml proxies stay identical only
            # while referenced, so ids of dropped ones can be reused.
            seen: set[Any] = set()
            for row in Table(child, parent).rows:
                for cell in row.cells:
                    if cell._tc in seen:
                        continue
                    seen.add(cell._tc)
                    yield from _docx_blocks(cell._tc, cell)
        elif child.tag == sdt_tag:
            # Content controls (cover pages, tables of contents) wrap real text.
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from _docx_blocks(content, parent)


def extract_docx(data: bytes) -> str:
    """Body paragraphs and table cells in document order, blank-line separated."""
    import docx

    _check_docx_zip(data)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        total = 0
        for block in _docx_blocks(document.element.body, document):
            total += len(block)
            if total > _RAW_TEXT_LIMIT:
                raise _too_long()
            blocks.append(block)
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"The DOCX file is damaged or not a DOCX: {_reason(exc)}") from exc
    return "\n\n".join(blocks)


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


def extract_html(data: bytes) -> str:
    """Visible body text; block elements become paragraphs, <br> a line break."""
    from bs4 import BeautifulSoup, NavigableString, Tag

    try:
        # Bytes, not str: BeautifulSoup honours the page's declared charset.
        soup = BeautifulSoup(data, "lxml")
    except Exception as exc:
        raise ExtractionError(f"The HTML could not be parsed: {_reason(exc)}") from exc
    root = soup.body or soup
    parts: list[str] = []
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
        if name == "pre":
            pre_depth += 1
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return "".join(parts)


def extract_plain(data: bytes) -> str:
    """Decoded text of a plain-text or Markdown file (Markdown is kept as written)."""
    text = _decode_text(bytes(data))
    if text is None:
        raise ExtractionError("Unsupported file type: the file looks binary, not text. " + _SUPPORTED)
    return text


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


_EXTRACTORS: dict[str, Callable[[bytes], str]] = {
    "pdf": extract_pdf,
    "docx": extract_docx,
    "html": extract_html,
    "md": extract_plain,
    "txt": extract_plain,
}
_FORMAT_NAMES = {
    "pdf": "PDF",
    "docx": "DOCX",
    "html": "HTML",
    "md": "Markdown",
    "txt": "text",
}


def extract_text(data: bytes, *, filename: str = "") -> Extracted:
    """Sniff, extract and normalise; every failure is an ExtractionError."""
    fmt = ""
    try:
        data = bytes(data)
        fmt, decoded = _sniff(data, filename)
        raw = decoded if decoded is not None and fmt in ("md", "txt") else _EXTRACTORS[fmt](data)
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
        raise ExtractionError(
            "The file contains no extractable text (it may be empty, or a scan "
            "made of images without a text layer)."
        )
    if len(text) > MAX_TEXT_CHARS:
        raise ExtractionError(
            f"The extracted text is too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,})."
        )
    return Extracted(text=text, format=fmt)
