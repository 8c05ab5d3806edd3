"""Where a passage is in its file: page, slide, sheet rows or section, for people to check it.

Extraction records (start, end, locator) ranges of a document's text (documents.extraction);
each chunk keeps the ranges it spans. A locator is a small dict, one of:

    {"kind": "page", "page": 3}                    PDF page (and "page_end" for a range; "ocr": true)
    {"kind": "slide", "slide": 4, "notes": true}   PPTX slide, its speaker notes flagged ("slide_end")
    {"kind": "sheet", "sheet": "Budget", "rows": [30, 32]}   XLSX rows as the sheet numbers them
    {"kind": "rows", "rows": [30, 32]}             CSV records
    {"kind": "chapter", "heading": "The River"}    EPUB chapter
    {"kind": "section", "heading": "A > B", "table": true}   DOCX, HTML and Markdown heading path

`locate` gives the locator of any span of a document's text (a hit, a citation, a nearest
passage) in one query, from the chunks that cover it, so every face shows the same place.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.db.models import Q
from django.urls import reverse

from documents.models import Chunk, Document, PageWords

KINDS = ("page", "slide", "sheet", "rows", "chapter", "section")
DASH = "\u2013"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _rows(value: Any) -> tuple[int, int] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        first, last = _int(value[0]), _int(value[1])
        if first is not None and last is not None:
            return (min(first, last), max(first, last))
    return None


def _clean(raw: Any) -> dict[str, Any] | None:
    """A locator as the API documents it, or None for anything else stored."""
    if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
        return None
    kind = raw["kind"]
    if kind == "page" and _int(raw.get("page")):
        page = {"kind": "page", "page": raw["page"]}
        end = _int(raw.get("page_end"))
        if end is not None and end > page["page"]:
            page["page_end"] = end
        if raw.get("ocr") is True:
            page["ocr"] = True
        return page
    if kind == "slide" and _int(raw.get("slide")):
        slide: dict[str, Any] = {"kind": "slide", "slide": raw["slide"]}
        end = _int(raw.get("slide_end"))
        if end is not None and end > slide["slide"]:
            slide["slide_end"] = end
        if raw.get("notes") is True:
            slide["notes"] = True
        return slide
    if kind == "sheet" and isinstance(raw.get("sheet"), str):
        sheet: dict[str, Any] = {"kind": "sheet", "sheet": raw["sheet"]}
        rows = _rows(raw.get("rows"))
        if rows is not None:
            sheet["rows"] = list(rows)
        return sheet
    if kind == "rows" and _rows(raw.get("rows")):
        return {"kind": "rows", "rows": list(_rows(raw.get("rows")) or ())}
    if kind in ("chapter", "section") and isinstance(raw.get("heading"), str) and raw["heading"].strip():
        heading: dict[str, Any] = {"kind": kind, "heading": raw["heading"]}
        if raw.get("table") is True:
            heading["table"] = True
        return heading
    return None


def merge(locators: Iterable[Any]) -> dict[str, Any] | None:
    """One locator for a passage that spans these (in text order): pages, slides and rows
    become a range; a sheet keeps its first sheet's rows; a heading is the first one's."""
    found = [loc for loc in (_clean(raw) for raw in locators) if loc is not None]
    if not found:
        return None
    first = found[0]
    same = [loc for loc in found if loc["kind"] == first["kind"]]
    kind = first["kind"]
    if kind == "page":
        pages = [loc["page"] for loc in same] + [loc.get("page_end", loc["page"]) for loc in same]
        merged: dict[str, Any] = {"kind": "page", "page": min(pages)}
        if max(pages) > merged["page"]:
            merged["page_end"] = max(pages)
        if all(loc.get("ocr") for loc in same):
            merged["ocr"] = True
        return merged
    if kind == "slide":
        slides = [loc["slide"] for loc in same] + [loc.get("slide_end", loc["slide"]) for loc in same]
        merged = {"kind": "slide", "slide": min(slides)}
        if max(slides) > merged["slide"]:
            merged["slide_end"] = max(slides)
        elif all(loc.get("notes") for loc in same):
            merged["notes"] = True
        return merged
    if kind in ("sheet", "rows"):
        same = [loc for loc in same if loc.get("sheet") == first.get("sheet")]
        spans = [loc["rows"] for loc in same if "rows" in loc]
        merged = dict(first)
        if spans:
            merged["rows"] = [min(s[0] for s in spans), max(s[1] for s in spans)]
        return merged
    return first


def place_of(ranges: Any) -> dict[str, Any] | None:
    """One locator for a whole chunk, from the [start, end, locator] ranges it keeps."""
    items = ranges if isinstance(ranges, list) else []
    return merge(item[2] for item in items if isinstance(item, list) and len(item) == 3)


def _range(first: int, last: int | None, one: str, many: str) -> str:
    if last is None or last == first:
        return f"{one} {first}"
    return f"{many} {first}{DASH}{last}"


def label(location: dict[str, Any] | None) -> str:
    """How a person reads the place: "p. 12", "pp. 12–13", "Slide 4 (notes)", "Budget, rows 30–32",
    "§ Warranty > Returns"; "" when there is none."""
    loc = _clean(location)
    if loc is None:
        return ""
    kind = loc["kind"]
    if kind == "page":
        return _range(loc["page"], loc.get("page_end"), "p.", "pp.")
    if kind == "slide":
        text = _range(loc["slide"], loc.get("slide_end"), "Slide", "Slides")
        return text + " (notes)" if loc.get("notes") else text
    if kind == "sheet":
        rows = loc.get("rows")
        return f"{loc['sheet']}, {_range(rows[0], rows[1], 'row', 'rows')}" if rows else loc["sheet"]
    if kind == "rows":
        return _range(loc["rows"][0], loc["rows"][1], "Row", "Rows")
    if kind == "chapter":
        return loc["heading"]
    return f"§ {loc['heading']}" + (" (table)" if loc.get("table") else "")


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def viewer_url(
    document_id: Any, *, start: Any = None, end: Any = None, run: Any = None, cite: Any = None
) -> str:
    """The PDF viewer at a span of the document's text, or at citation `cite` of `run` (the
    viewer then offers the run's other citations too)."""
    params: list[tuple[str, Any]] = []
    if _is_offset(start) and _is_offset(end) and start < end:
        params += [("start", start), ("end", end)]
    if run is not None and cite is not None:
        params += [("run", run), ("cite", cite)]
    url = reverse("documents:view", args=[document_id])
    return f"{url}?{urlencode(params)}" if params else url


def text_url(document_id: Any, *, start: Any = None, end: Any = None, failed: bool = False) -> str:
    """The document's text view, the span marked and scrolled to; `failed` has it say the PDF
    could not be shown in the viewer."""
    params: list[tuple[str, Any]] = []
    span = _is_offset(start) and _is_offset(end) and start < end
    if span:
        params += [("start", start), ("end", end)]
    if failed:
        params.append(("viewer", "failed"))
    url = reverse("documents:detail", args=[document_id])
    if params:
        url += f"?{urlencode(params)}"
    return url + "#passage" if span else url


def source_href(
    document_id: Any, fmt: str, start: Any, end: Any, *, run: Any = None, cite: Any = None
) -> str:
    """Where a passage opens: a PDF in the viewer at its page (with the run's other citations a
    click away), any other file as its text with the passage marked."""
    if fmt == "pdf":
        return viewer_url(document_id, start=start, end=end, run=run, cite=cite)
    return text_url(document_id, start=start, end=end)


def clip(ranges: Iterable[Any], start: int, end: int) -> list[list[Any]]:
    """The stored [start, end, locator] ranges that overlap [start, end), cut to it."""
    kept = []
    for item in ranges:
        if not isinstance(item, list | tuple) or len(item) != 3:
            continue
        a, b, loc = item
        if isinstance(a, int) and isinstance(b, int) and a < end and b > start and isinstance(loc, dict):
            kept.append([max(a, start), min(b, end), loc])
    return kept


def chunk_ranges(ranges: Sequence[Any], start: int, end: int) -> list[list[Any]]:
    """What a chunk keeps of its document's ranges: `ranges` as extraction gives them, sorted
    and not overlapping, so a sheet of 100,000 rows is searched, not scanned, per chunk."""
    kept = []
    for index in range(_first_after(ranges, start), len(ranges)):
        a, b, loc = ranges[index]
        if a >= end:
            break
        if b > start:
            kept.append([max(a, start), min(b, end), loc])
    return kept


def _first_after(ranges: Sequence[Any], start: int) -> int:
    """Index of the first range that ends after `start` (binary search on the sorted ends)."""
    low, high = 0, len(ranges)
    while low < high:
        middle = (low + high) // 2
        if ranges[middle][1] <= start:
            low = middle + 1
        else:
            high = middle
    return low


def locate(
    spans: Sequence[tuple[Any, Any, Any]], *, project_ids: Iterable[Any] | None = None
) -> list[dict[str, Any] | None]:
    """The locator of each (document id, start, end) span of a document's text, from the
    chunks that cover it (one query); None where the document has no locations (plain text,
    or ingested before they were recorded and not re-indexed since) or the span is not valid.
    Naming the documents' projects keeps the query inside their partitions."""
    wanted: list[tuple[UUID, int, int] | None] = []
    for document_id, start, end in spans:
        try:
            doc = UUID(str(document_id))
        except ValueError:
            wanted.append(None)
            continue
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end:
            wanted.append((doc, start, end))
        else:
            wanted.append(None)
    real = [w for w in wanted if w is not None]
    if not real:
        return [None] * len(wanted)
    condition = Q()
    for doc, start, end in real:
        condition |= Q(document_id=doc, start__lt=end, end__gt=start)
    chunks = Chunk.objects.filter(condition)
    if project_ids is not None:
        chunks = chunks.filter(project_id__in=list(project_ids))
    rows = chunks.exclude(locations=[]).values_list("document_id", "locations")
    by_document: dict[UUID, list[list[Any]]] = {}
    for doc_id, ranges in rows:
        by_document.setdefault(doc_id, []).extend(ranges if isinstance(ranges, list) else [])
    found: list[dict[str, Any] | None] = []
    for item in wanted:
        if item is None:
            found.append(None)
            continue
        doc, start, end = item
        parts = {(r[0], r[1]): r[2] for r in clip(by_document.get(doc, []), start, end)}
        found.append(merge(parts[key] for key in sorted(parts)))
    return found


def located(
    items: list[dict[str, Any]], *, key: str = "document", project_ids: Iterable[Any] | None = None
) -> list[dict[str, Any]]:
    """Adds `location` and `location_label` to each item with a document id and start/end."""
    places = locate(
        [(item.get(key), item.get("start"), item.get("end")) for item in items], project_ids=project_ids
    )
    for item, place in zip(items, places, strict=True):
        item["location"] = place
        item["location_label"] = label(place)
    return items


def document_ranges(document: Document) -> list[list[Any]]:
    """The document's [start, end, locator] ranges, from its chunks (overlaps merged away)."""
    ranges: dict[tuple[int, int], Any] = {}
    for chunk_ranges_ in Chunk.objects.filter(
        project_id=document.project_id, document_id=document.pk
    ).values_list("locations", flat=True):
        for item in chunk_ranges_ if isinstance(chunk_ranges_, list) else []:
            if isinstance(item, list) and len(item) == 3:
                ranges[(item[0], item[1])] = item[2]
    # Clipped pieces of one range meet end to start; keep each range once, from its first start.
    merged: list[list[Any]] = []
    for (start, end), loc in sorted(ranges.items()):
        if merged and merged[-1][2] == loc and merged[-1][1] >= start:
            merged[-1][1] = max(merged[-1][1], end)
        elif merged and start < merged[-1][1]:
            continue
        else:
            merged.append([start, end, loc])
    return merged


# --- marks on scanned pages ---------------------------------------------------------------

_WORD = re.compile(r"\w+")
QUOTE_CHARS_MAX = 5000
QUOTE_WORDS_MAX = 200


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(folded)


def page_marks(document: Document, quote: str, page: int) -> list[list[float]]:
    """Boxes [x0, y0, x1, y1] (fractions of the page) of the OCR words that read the quote on a
    scanned page: the longest run of the quote's words found in order. Empty when the page was
    not read by OCR or none of its words match."""
    row = PageWords.objects.filter(document=document, page=page).values_list("words", flat=True).first()
    if not row or not isinstance(row, list):
        return []
    boxes: list[list[float]] = []
    tokens: list[tuple[str, int]] = []  # (word piece, index of its OCR word)
    for index, item in enumerate(row):
        if isinstance(item, list) and len(item) == 5 and isinstance(item[0], str):
            tokens.extend((piece, index) for piece in _words(item[0]))
    # A quote is a sentence or a few; its first words are enough to find it, and keep the
    # search (page words x quote words) small whatever span was asked for.
    wanted = _words(quote[:QUOTE_CHARS_MAX])[:QUOTE_WORDS_MAX]
    if not wanted or not tokens:
        return []
    best = (0, 0, 0)  # (length, first token, quote offset)
    pieces = [piece for piece, _ in tokens]
    for at in range(len(pieces)):
        for offset in range(len(wanted)):
            length = 0
            while (
                at + length < len(pieces)
                and offset + length < len(wanted)
                and pieces[at + length] == wanted[offset + length]
            ):
                length += 1
            if length > best[0]:
                best = (length, at, offset)
            if best[0] == len(wanted):
                break
        if best[0] == len(wanted):
            break
    length, at, _ = best
    # One stray common word is no match; a short quote must match whole.
    if length < min(3, len(wanted)):
        return []
    seen: set[int] = set()
    for _, index in tokens[at : at + length]:
        if index not in seen:
            seen.add(index)
            x0, y0, x1, y1 = (float(v) for v in row[index][1:5])
            boxes.append([round(x0, 5), round(y0, 5), round(x1, 5), round(y1, 5)])
    return boxes
