"""The project page (documents, imports, runs and conversations) and adding documents to it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from agents.selectors import runs_visible_to, threads_visible_to
from core.uploads import too_large_message
from documents import search as document_search
from documents import selectors as document_selectors
from documents import services as document_services
from documents.models import Document, DocumentStatus
from projects import access
from projects.forms import add_service_errors
from projects.models import Project, Role
from workspace.forms import AskForm, UploadForm

DOCUMENTS_PER_PAGE = 50
RECENT_RUNS = 10
UNFINISHED = {DocumentStatus.PENDING, DocumentStatus.PROCESSING}


def _detail_context(request: HttpRequest, project: Project, **overrides: Any) -> dict[str, Any]:
    role = access.require(request.user, project, Role.VIEWER)
    documents = project.documents.defer("text", "pasted_text").order_by("-created_at")
    page = Paginator(documents, DOCUMENTS_PER_PAGE).get_page(request.GET.get("page"))
    unfinished = [str(d.pk) for d in page.object_list if d.status in UNFINISHED]
    runs = runs_visible_to(request.user).filter(project=project).order_by("-created_at")[:RECENT_RUNS]
    threads = threads_visible_to(request.user).filter(project=project).order_by("-updated_at")[:RECENT_RUNS]
    context: dict[str, Any] = {
        "project": project,
        "role": role,
        "can_edit": access.has_role(role, Role.EDITOR),
        "is_owner": access.has_role(role, Role.OWNER),
        "page": page,
        "documents": page.object_list,
        "poll_documents": bool(unfinished),
        "runs": runs,
        "threads": threads,
        "upload_form": UploadForm(),
        "ask_form": AskForm(),
        "search_modes": document_search.MODES,
        "ask_blocked": _ask_blocked(project),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "too_large_message": too_large_message(),
    }
    context.update(overrides)
    if context["ask_blocked"]:
        context["ask_form"].fields["question"].disabled = True
    return context


def _ask_blocked(project: Project) -> str:
    """Why Ask and Summarize cannot run yet (empty when they can): they answer only from ready documents."""
    statuses = set(project.documents.values_list("status", flat=True).distinct())
    if not statuses:
        return "Add a document first."
    if DocumentStatus.READY in statuses:
        return ""
    if statuses & UNFINISHED:
        return "Documents are still being processed."
    return "None of the documents could be read; add another."


def _wants_json(request: HttpRequest) -> bool:
    """The drop zone's script asks for JSON; the plain form gets the page."""
    return request.headers.get("Accept", "").startswith("application/json")


def _document_answer(doc: Document) -> dict[str, Any]:
    return {
        "id": str(doc.pk),
        "title": doc.title,
        "url": reverse("documents:detail", args=[doc.pk]),
        "status_url": reverse("documents:status", args=[doc.pk]),
        "status": doc.status,
    }


@require_GET
@login_required
def project_detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk)
    imports = document_selectors.imports_recent(project)
    context = _detail_context(
        request, project, imports=imports, imports_running=any(not i.finished for i in imports)
    )
    return render(request, "projects/project_detail.html", context)


@require_POST
@login_required
def document_upload(request: HttpRequest, pk: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk, need=Role.EDITOR)
    form = UploadForm(request.POST, request.FILES)
    duplicate = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            doc = document_services.document_create(
                user=request.user,
                project=project,
                # The form sends every field; an empty one is not a source.
                upload=data["file"],
                text=data["text"] or None,
                url=data["url"] or None,
                title=data["title"],
                replace=data["replace"],
            )
        except document_services.DuplicateDocument as exc:
            if _wants_json(request):
                return JsonResponse(
                    {"errors": {exc.field: exc.messages}, "existing": _document_answer(exc.existing)},
                    status=409,
                )
            add_service_errors(form, exc, {"file": "file", "text": "text", "url": "url"})
            form.offer_replace(exc.existing.title)
            duplicate = exc.existing
        except ValidationError as exc:
            add_service_errors(form, exc, {"file": "file", "title": "title", "text": "text", "url": "url"})
        else:
            if _wants_json(request):
                return JsonResponse(_document_answer(doc), status=200 if doc.replaced else 201)
            if doc.replaced:
                messages.success(request, f"“{doc.title}” was replaced by this upload.")
            else:
                messages.success(request, f"“{doc.title}” was added and is being processed.")
            return redirect(reverse("projects:detail", args=[project.pk]) + "#documents")
    if _wants_json(request):
        return JsonResponse(
            {"errors": {field: list(errors) for field, errors in form.errors.items()}}, status=400
        )
    context = _detail_context(request, project, upload_form=form, upload_failed=True, duplicate=duplicate)
    return render(request, "projects/project_detail.html", context, status=400)
