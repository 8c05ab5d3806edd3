"""The in-app PDF viewer: the original file at the cited page, the quoted passage marked on it.

`view` takes a span of the document's extracted text (?start=&end=, as the text view does) or
citation n of a run (?run=&cite=n, offering that run's other citations). The page carries the
marks as JSON for static/js/viewer.js, which renders the PDF with PDF.js; `file` streams the
original through the same access checks. A document that is not a PDF, or has no stored file,
goes to the text view of the same span.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET

from agents import presenting
from agents.models import AgentRun
from agents.selectors import run_for
from documents import locations, selectors
from documents.locations import text_url, viewer_url
from documents.models import Document
from workspace.views.documents import _span

NO_CITATION = "That run cites nothing in this document."


def _shows_pdf(doc: Document | dict[str, Any]) -> bool:
    """Whether the viewer can show the document: a PDF with its original file."""
    if isinstance(doc, dict):
        return doc["format"] == "pdf" and bool(doc["file"])
    return doc.format == "pdf" and bool(doc.file)


def _pdfjs() -> dict[str, str] | None:
    """Where PDF.js's files are (make install puts them under /static/pdfjs/); None when the
    static files manifest lacks them (collectstatic ran before PDF.js was installed)."""
    try:
        module, worker = static("pdfjs/pdf.min.mjs"), static("pdfjs/pdf.worker.min.mjs")
    except ValueError:
        return None
    # Folders PDF.js fetches from by name: the unhashed copies collectstatic also keeps.
    base = f"{settings.STATIC_URL}pdfjs/"
    return {
        "module": module,
        "worker": worker,
        "cmaps": f"{base}cmaps/",
        "fonts": f"{base}standard_fonts/",
        "wasm": f"{base}wasm/",
        "iccs": f"{base}iccs/",
    }


# The longest passage the viewer marks: a citation or a hit's sentence is far shorter; a
# hand-made ?start=0&end=... is cut here, so a page never carries (or matches) a whole book.
SPAN_MAX = 5000


def _span_mark(doc: Document, span: tuple[int, int]) -> dict[str, Any]:
    start, end = span[0], min(span[1], span[0] + SPAN_MAX)
    return {
        "number": None,
        "document": str(doc.pk),
        "title": doc.title,
        "quote": (doc.text or "")[start:end],
        "start": start,
        "end": end,
        "href": viewer_url(doc.pk, start=start, end=end),
    }


def _citation_marks(user: Any, run: AgentRun, doc: Document) -> list[dict[str, Any]]:
    """The run's citations the user can still open, in order, each with where it opens: this
    viewer for a PDF, the text view for any other document."""
    raw = [c for c in run.citations if isinstance(c, dict)] if isinstance(run.citations, list) else []
    # One query for what the citations need of their documents, and which the user may still read.
    shown = {
        str(row["pk"]): row
        for row in selectors.documents_visible_to(user)
        .filter(pk__in=presenting.uuids(c.get("document") for c in raw))
        .values("pk", "title", "format", "file")
    }
    titles = {pk: row["title"] for pk, row in shown.items()}
    marks = []
    for c in presenting.citations(run, titles):
        start, end, doc_id = c["start"], c["end"], c["document"]
        if not c["title"] or doc_id not in shown or not isinstance(start, int) or not isinstance(end, int):
            continue
        pdf = doc_id == str(doc.pk) or _shows_pdf(shown[doc_id])
        marks.append(
            {
                "number": c["number"],
                "document": doc_id,
                "title": c["title"],
                "quote": c["quote"],
                "start": start,
                "end": end,
                # Where the run recorded it when it finished (runs from before: looked up below).
                "location": c.get("location"),
                "href": (
                    viewer_url(doc_id, run=run.pk, cite=c["number"])
                    if pdf
                    else text_url(doc_id, start=start, end=end)
                ),
            }
        )
    return marks


def _chosen(marks: list[dict[str, Any]], doc: Document, cite: str | None) -> int:
    """The index of citation `cite` (else the first one in this document); Http404 if none."""
    if cite is not None:
        for index, mark in enumerate(marks):
            if str(mark["number"]) == cite:
                return index
        raise Http404("No such citation.")
    for index, mark in enumerate(marks):
        if mark["document"] == str(doc.pk):
            return index
    raise Http404(NO_CITATION)


def _place(marks: list[dict[str, Any]], doc: Document) -> None:
    """Adds each mark's page (the run's record of it, else looked up in one query) and, for this
    document's scanned pages, the OCR word boxes that cover its quote."""
    unknown = [m for m in marks if not m.get("location")]
    found = locations.locate(
        [(m["document"], m["start"], m["end"]) for m in unknown], project_ids=[doc.project_id]
    )
    for mark, place in zip(unknown, found, strict=True):
        mark["location"] = place
    for mark in marks:
        place = mark.pop("location")
        page = place.get("page") if place and place.get("kind") == "page" else None
        mark["here"] = mark["document"] == str(doc.pk)
        mark["page"] = page
        mark["page_end"] = place.get("page_end") if page else None
        mark["label"] = locations.label(place)
        mark["boxes"] = locations.page_marks(doc, mark["quote"], page) if mark["here"] and page else []
        mark["text_href"] = text_url(mark["document"], start=mark["start"], end=mark["end"])
        mark["failed_href"] = text_url(mark["document"], start=mark["start"], end=mark["end"], failed=True)


@require_GET
@login_required
def view(request: HttpRequest, pk: UUID) -> HttpResponse:
    doc = selectors.document_for(request.user, pk)
    run = None
    if "run" in request.GET:
        run = run_for(request.user, request.GET["run"])
        if run.project_id != doc.project_id:
            raise Http404("No such run.")
        marks = _citation_marks(request.user, run, doc)
        current = _chosen(marks, doc, request.GET.get("cite"))
        if marks[current]["document"] != str(doc.pk):
            return redirect(marks[current]["href"])
    else:
        span = _span(request.GET, len(doc.text or ""))
        marks, current = ([_span_mark(doc, span)] if span else []), 0
    mark = marks[current] if marks else None
    pdfjs = _pdfjs()
    if not _shows_pdf(doc) or pdfjs is None:
        return redirect(
            text_url(doc.pk, start=mark["start"], end=mark["end"], failed=pdfjs is None)
            if mark
            else text_url(doc.pk, failed=pdfjs is None)
        )
    _place(marks, doc)
    data = {
        "file": reverse("documents:file", args=[doc.pk]),
        "failed": mark["failed_href"] if mark else text_url(doc.pk, failed=True),
        "marks": marks,
        "current": current,
        "pdfjs": pdfjs,
    }
    context = {
        "doc": doc,
        "project": doc.project,
        "run": run,
        "mark": mark,
        "marks": marks,
        "current": current,
        "previous": marks[current - 1] if mark and current > 0 else None,
        "next": marks[current + 1] if mark and current + 1 < len(marks) else None,
        "text_href": mark["text_href"] if mark else text_url(doc.pk),
        "data": data,
    }
    return render(request, "documents/viewer.html", context)


@require_GET
@login_required
def file(request: HttpRequest, pk: UUID) -> FileResponse:
    """The document's original file, for the viewer to open and people to download."""
    doc = selectors.document_for(request.user, pk)
    response = selectors.document_file_download(document=doc)
    # A member's file: kept by no shared cache, and fetched afresh after access changes.
    response["Cache-Control"] = "private, no-cache"
    return response
