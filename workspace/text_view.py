"""A document's extracted text as the document page shows it: the places of the file (Page 3,
Slide 4, Sheet Budget, a section's heading path) set above the text they hold, and a cited
passage marked, with the first mark as the `#passage` anchor the page scrolls to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


def place_heading(location: Any) -> str:
    """What the text view sets above a stretch of text; "" where none is worth a line (CSV rows)."""
    if not isinstance(location, dict):
        return ""
    kind = location.get("kind")
    if kind == "page" and isinstance(location.get("page"), int):
        return f"Page {location['page']}" + (" (read by OCR)" if location.get("ocr") else "")
    if kind == "slide" and isinstance(location.get("slide"), int):
        return f"Slide {location['slide']}" + (" — speaker notes" if location.get("notes") else "")
    if kind == "sheet" and isinstance(location.get("sheet"), str):
        return f"Sheet {location['sheet']}"
    if kind in ("chapter", "section") and isinstance(location.get("heading"), str):
        return location["heading"]
    return ""


def located_text(text: str, ranges: Sequence[Any], span: tuple[int, int] | None) -> SafeString:
    """The text, escaped, with a heading where the file's place changes and the span marked."""
    headings: dict[int, str] = {}
    previous = ""
    for item in ranges:
        heading = place_heading(item[2]) if isinstance(item, list | tuple) and len(item) == 3 else ""
        if heading and heading != previous and isinstance(item[0], int) and 0 <= item[0] < len(text):
            headings[item[0]] = heading
        previous = heading or previous
    cuts = sorted({0, len(text), *headings, *(span or ())})
    pieces: list[str] = []
    anchored = False
    for start, end in zip(cuts, cuts[1:], strict=False):
        if start in headings:
            pieces.append(
                str(format_html('<span class="text-place" data-field="place">{}</span>', headings[start]))
            )
        piece = escape(text[start:end])
        if span and span[0] <= start and end <= span[1]:
            anchor = "" if anchored else ' id="passage"'
            anchored = True
            pieces.append(f"<mark{anchor}>{piece}</mark>")
        else:
            pieces.append(piece)
    return mark_safe("".join(pieces))  # noqa: S308  (every piece escaped above)
