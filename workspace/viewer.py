"""Links to a passage at its source: the PDF viewer (workspace/views/viewer.py) or the text view.

Pages that show a citation or a search hit link with `viewer_url`; the viewer sends a document
that is not a PDF (or has no file) on to the text view with the same span.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def viewer_url(
    document_id: Any,
    *,
    start: int | None = None,
    end: int | None = None,
    run: Any = None,
    cite: int | None = None,
) -> str:
    """The viewer at a span of the document's extracted text, or at citation `cite` of `run`
    (the viewer then offers the run's other citations too)."""
    params: list[tuple[str, Any]] = []
    if _is_offset(start) and _is_offset(end) and start < end:  # type: ignore[operator]
        params += [("start", start), ("end", end)]
    if run is not None and cite is not None:
        params += [("run", run), ("cite", cite)]
    url = reverse("documents:view", args=[document_id])
    return f"{url}?{urlencode(params)}" if params else url


def text_url(document_id: Any, *, start: Any = None, end: Any = None, failed: bool = False) -> str:
    """The document's text view, the span highlighted and scrolled to; `failed` has it say the
    PDF could not be shown in the viewer."""
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
