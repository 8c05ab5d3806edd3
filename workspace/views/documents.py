"""Document pages, document state for live updates, and search (one project, or all of yours)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agents.selectors import runs_visible_to
from documents import search as document_search
from documents import selectors, services
from documents.models import Document, DocumentStatus
from projects import access
from projects.models import Role

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
    if span:
        before, marked, after = (
            text[: span[0]],
            text[span[0] : span[1]],
            text[span[1] :],
        )
    else:
        before, marked, after = text, "", ""
    metadata = doc.metadata if isinstance(doc.metadata, dict) else {}
    context = {
        "doc": doc,
        "project": doc.project,
        "can_edit": access.has_role(role, Role.EDITOR),
        "finished": doc.status in FINISHED,
        "before": before,
        "marked": marked,
        "after": after,
        "span": span,
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
def delete(request: HttpRequest, pk: UUID) -> HttpResponse:
    doc = selectors.document_for(request.user, pk, need=Role.EDITOR)
    project_id, title = doc.project_id, doc.title
    services.document_delete(user=request.user, document=doc)
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


@require_GET
@login_required
def search(request: HttpRequest, pk: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk)
    query = " ".join(request.GET.get("q", "").split())[:QUERY_MAX]
    mode = request.GET.get("mode", "hybrid")
    if mode not in document_search.MODES:
        mode = "hybrid"
    hits = (
        document_search.search(project_ids=[project.pk], query=query, k=SEARCH_RESULTS, mode=mode)
        if query
        else []
    )
    context = {
        "project": project,
        "query": query,
        "mode": mode,
        "modes": document_search.MODES,
        "hits": hits,
        "not_ready": project.documents.exclude(status=DocumentStatus.READY).count(),
    }
    return render(request, "documents/search.html", context)


@require_GET
@login_required
def search_all(request: HttpRequest) -> HttpResponse:
    """Search every project the user can read; each hit names its project."""
    query = " ".join(request.GET.get("q", "").split())[:QUERY_MAX]
    mode = request.GET.get("mode", "hybrid")
    if mode not in document_search.MODES:
        mode = "hybrid"
    hits = (
        document_search.search_for(user=request.user, query=query, k=SEARCH_RESULTS, mode=mode)
        if query
        else []
    )
    context = {"query": query, "mode": mode, "modes": document_search.MODES, "hits": hits}
    return render(request, "documents/search_all.html", context)
