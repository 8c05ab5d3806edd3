"""Document pages, document state for live updates, and search (one project, or all of yours)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agents import presenting
from agents.models import RunKind, RunStatus
from agents.selectors import runs_visible_to
from core import ratelimit
from documents import locations, selectors, services
from documents import search as document_search
from documents.models import Chunk, Document, DocumentStatus
from projects import access
from projects.models import Role
from workspace import search_presenting
from workspace.rendering import markdown_html
from workspace.text_view import located_text

SEARCH_RESULTS = 20
QUERY_MAX = 500
POLL_IDS_MAX = 100
FINISHED = {DocumentStatus.READY, DocumentStatus.FAILED}


def _span(params: QueryDict, length: int) -> tuple[int, int] | None:
    """The ?start=&end= span if it is a real, non-empty part of the text; else None."""
    try:
        start, end = int(params.get("start", "")), int(params.get("end", ""))
    except ValueError:
        return None
    start, end = max(0, start), min(end, length)
    return (start, end) if start < end else None


def _entities(raw: Any) -> list[dict[str, str]]:
    """Entities as {text, type}: providers give dicts, older metadata plain strings."""
    entities = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("text"):
            entities.append({"text": str(item["text"]), "type": str(item.get("type", ""))})
        elif isinstance(item, str) and item:
            entities.append({"text": item, "type": ""})
    return entities


def _strings(raw: Any) -> list[str]:
    return [str(item) for item in raw if item] if isinstance(raw, list) else []


def _state(doc: Document | dict[str, Any]) -> dict[str, Any]:
    get = doc.get if isinstance(doc, dict) else lambda name: getattr(doc, name)
    status = get("status")
    return {
        "id": str(get("id")),
        "status": status,
        "status_label": DocumentStatus(status).label,
        "error": get("error"),
        "chunk_count": get("chunk_count"),
        "finished": status in FINISHED,
    }


@require_GET
@login_required
def detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    doc = selectors.document_for(request.user, pk)
    role = access.require(request.user, doc.project, Role.VIEWER)
    text = doc.text or ""
    span = _span(request.GET, len(text))
    metadata = doc.metadata if isinstance(doc.metadata, dict) else {}
    # Markdown is shown formatted, except around a highlighted passage: offsets are into the plain text.
    is_markdown = doc.format == "md"
    formatted = markdown_html(text) if is_markdown and text and not span else None
    summary = (
        runs_visible_to(request.user)
        .filter(document=doc, kind=RunKind.SUMMARIZE, status=RunStatus.SUCCEEDED)
        .order_by("-created_at")
        .first()
    )
    context = {
        "doc": doc,
        "is_markdown": is_markdown,
        "formatted": formatted,
        "summary": presenting.turn(request.user, summary) if summary is not None else None,
        "project": doc.project,
        "can_edit": access.has_role(role, Role.EDITOR),
        "finished": doc.status in FINISHED,
        # The file's places (Page 3, Slide 4, Sheet Budget) above their text, the passage marked.
        "located_text": located_text(text, locations.document_ranges(doc), span)
        if text and formatted is None
        else "",
        "passage_place": locations.label(locations.locate([(doc.pk, *span)])[0]) if span else "",
        "span": span,
        # The PDF viewer sends people here when PDF.js could not show the file.
        "viewer_failed": request.GET.get("viewer") == "failed",
        "tags": _strings(metadata.get("tags")),
        "keywords": _strings(metadata.get("keywords")),
        "entities": _entities(metadata.get("entities")),
        "runs": runs_visible_to(request.user).filter(document=doc).order_by("-created_at")[:10],
    }
    return render(request, "documents/document_detail.html", context)


@require_GET
@login_required
def status(request: HttpRequest, pk: UUID) -> JsonResponse:
    doc = selectors.document_for(request.user, pk)
    state = _state(doc)
    return JsonResponse({"items": [state], "finished": state["finished"]})


@require_POST
@login_required
def reindex(request: HttpRequest, pk: UUID) -> HttpResponse:
    doc = selectors.document_for(request.user, pk, need=Role.EDITOR)
    try:
        services.document_reindex(user=request.user, document=doc)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, "The document is queued to be indexed again.")
    return redirect("documents:detail", pk=doc.pk)


@require_POST
@login_required
def rename(request: HttpRequest, pk: UUID) -> HttpResponse:
    doc = selectors.document_for(request.user, pk, need=Role.EDITOR)
    try:
        services.document_rename(user=request.user, document=doc, title=request.POST.get("title", ""))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"Renamed to “{doc.title}”.")
    return redirect("documents:detail", pk=doc.pk)


@require_POST
@login_required
def delete(request: HttpRequest, pk: UUID) -> HttpResponse:
    doc = selectors.document_for(request.user, pk, need=Role.EDITOR)
    project_id, title = doc.project_id, doc.title
    try:
        services.document_delete(user=request.user, document=doc)
    except Document.DoesNotExist:
        raise Http404("The document was already deleted.") from None
    messages.success(request, f"“{title}” was deleted.")
    return redirect("projects:detail", pk=project_id)


# --- project-scoped (under the project page: workspace/urls.py) ---------------


@require_GET
@login_required
def project_documents_status(request: HttpRequest, pk: UUID) -> JsonResponse:
    """State of the documents the page is waiting on (?id=...&id=...)."""
    project = access.project_for(request.user, pk)
    ids = []
    for raw in request.GET.getlist("id")[:POLL_IDS_MAX]:
        try:
            ids.append(UUID(raw))
        except ValueError:
            continue
    rows = project.documents.filter(pk__in=ids).values("id", "status", "error", "chunk_count")
    items = [_state(row) for row in rows]
    return JsonResponse({"items": items, "finished": all(item["finished"] for item in items)})


@require_GET
@login_required
@never_cache  # polled while an import runs: every answer must be today's figures
def project_imports(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The project page's import panel alone, for the page to refresh while an import runs."""
    project = access.project_for(request.user, pk)
    imports = selectors.imports_recent(project)
    context = {
        "project": project,
        "imports": imports,
        "imports_running": any(not i.finished for i in imports),
    }
    return render(request, "includes/import_panel.html", context)


def _search_request(request: HttpRequest) -> tuple[str, str]:
    """The query (whitespace folded, bounded) and a known mode (hybrid by default)."""
    query = " ".join(request.GET.get("q", "").split())[:QUERY_MAX]
    mode = request.GET.get("mode", "hybrid")
    return query, mode if mode in document_search.MODES else "hybrid"


def _search_results(query: str, results: document_search.Results) -> dict[str, Any]:
    """The hits (weak ones already cut by the search), each with its best sentence, and how
    many weaker ones were left out."""
    terms = search_presenting.query_terms(query)
    rows = Chunk.objects.filter(pk__in=[hit.chunk_id for hit in results.hits]).values_list(
        "pk", "index", "document__chunk_count"
    )
    positions = {pk: (index, count) for pk, index, count in rows}
    return {
        "hits": search_presenting.present_hits(results.hits, terms=terms, positions=positions),
        "left_out": results.left_out,
    }


def _has_query(request: HttpRequest) -> bool:
    return bool(request.GET.get("q", "").strip())


@require_GET
@login_required
@ratelimit.page_counts_against(ratelimit.API, when=_has_query)
def search(request: HttpRequest, pk: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk)
    query, mode = _search_request(request)
    results = (
        document_search.search(project_ids=[project.pk], query=query, k=SEARCH_RESULTS, mode=mode)
        if query
        else document_search.Results()
    )
    # Failed documents never become searchable; say so apart from those still on their way.
    documents = project.documents
    processing = documents.filter(status__in=[DocumentStatus.PENDING, DocumentStatus.PROCESSING]).count()
    context = {
        "project": project,
        "query": query,
        "mode": mode,
        "modes": document_search.MODES,
        **_search_results(query, results),
        "processing": processing,
        "failed": documents.filter(status=DocumentStatus.FAILED).count(),
    }
    return render(request, "documents/search.html", context)


@require_GET
@login_required
@ratelimit.page_counts_against(ratelimit.API, when=_has_query)
def search_all(request: HttpRequest) -> HttpResponse:
    """Search every project the user can read; each hit names its project."""
    query, mode = _search_request(request)
    results = (
        document_search.search_for(user=request.user, query=query, k=SEARCH_RESULTS, mode=mode)
        if query
        else document_search.Results()
    )
    context = {
        "query": query,
        "mode": mode,
        "modes": document_search.MODES,
        **_search_results(query, results),
    }
    return render(request, "documents/search_all.html", context)
