"""Agent run pages: start a run from a form, then watch it finish."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from agents import selectors, services
from agents.models import AgentRun, RunKind, RunStatus
from documents import selectors as document_selectors
from projects import access
from projects.forms import AskForm


class RunCreateForm(forms.Form):
    """What the ask form, the follow-up form and the run buttons post."""

    project = forms.UUIDField()
    kind = forms.ChoiceField(choices=RunKind.choices)
    question = forms.CharField(required=False, max_length=services.QUESTION_MAX)
    document = forms.UUIDField(required=False)
    parent = forms.UUIDField(required=False)
    next = forms.CharField(required=False, max_length=2000)


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(target if target and safe else fallback)


@require_POST
@login_required
def create(request: HttpRequest) -> HttpResponse:
    form = RunCreateForm(request.POST)
    if not form.is_valid():
        # Only a tampered or stale form gets here; the question is the one thing people type.
        if "question" in form.errors:
            messages.error(request, f"A question has at most {services.QUESTION_MAX} characters.")
        else:
            messages.error(request, "That request was incomplete; reload the page and try again.")
        return _back(request, reverse("projects:list"))
    data = form.cleaned_data
    project = access.project_for(request.user, data["project"])
    fallback = reverse("projects:detail", args=[project.pk])
    document = document_selectors.document_for(request.user, data["document"]) if data["document"] else None
    parent = selectors.run_for(request.user, data["parent"]) if data["parent"] else None
    try:
        run = services.run_create(
            user=request.user,
            project=project,
            kind=data["kind"],
            question=data["question"],
            document=document,
            parent=parent,
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return _back(request, fallback)
    except services.TokenBudgetExceeded as exc:
        messages.error(request, str(exc))
        return _back(request, fallback)
    return redirect("agents:detail", pk=run.pk)


def _uuids(values: Any) -> list[UUID]:
    ids = []
    for value in values:
        try:
            ids.append(UUID(str(value)))
        except ValueError:
            continue
    return ids


def _visible_titles(user: Any, ids: Any) -> dict[str, str]:
    """Titles of the documents (of these ids) the user may still read."""
    rows = document_selectors.documents_visible_to(user).filter(pk__in=_uuids(ids)).values_list("pk", "title")
    return {str(pk): title for pk, title in rows}


def _citations(user: Any, run: AgentRun) -> list[dict[str, Any]]:
    """The run's citations, numbered, with the title of each document still there."""
    raw = [c for c in run.citations if isinstance(c, dict)] if isinstance(run.citations, list) else []
    titles = _visible_titles(user, {c.get("document") for c in raw})
    return [
        {
            "number": number,
            "document": str(c.get("document", "")),
            "title": titles.get(str(c.get("document", ""))),
            "start": c.get("start"),
            "end": c.get("end"),
            "quote": c.get("quote", ""),
        }
        for number, c in enumerate(raw, start=1)
    ]


def _nearest(user: Any, run: AgentRun) -> list[dict[str, Any]]:
    """The passages closest to an unanswered question, with their spans when still indexed."""
    raw = run.output.get("nearest") if isinstance(run.output, dict) else None
    items = [i for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []
    titles = _visible_titles(user, {i.get("document") for i in items})
    nearest = []
    for item in items:
        doc_id = str(item.get("document", ""))
        chunk = None
        if doc_id in titles and isinstance(item.get("chunk"), int):
            chunk = document_selectors.chunk_in_project(project_id=run.project_id, chunk_id=item["chunk"])
        nearest.append(
            {
                "document": doc_id,
                "exists": doc_id in titles,
                "title": titles.get(doc_id) or item.get("title", ""),
                "text": item.get("text", ""),
                "start": chunk.start if chunk and str(chunk.document_id) == doc_id else None,
                "end": chunk.end if chunk and str(chunk.document_id) == doc_id else None,
            }
        )
    return nearest


def _output_list(run: AgentRun, key: str) -> list[Any]:
    value = run.output.get(key) if isinstance(run.output, dict) else None
    return value if isinstance(value, list) else []


@require_GET
@login_required
def detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    run = selectors.run_for(request.user, pk)
    output = run.output if isinstance(run.output, dict) else {}
    entities = [
        e if isinstance(e, dict) else {"text": str(e), "type": ""} for e in _output_list(run, "entities")
    ]
    context = {
        "run": run,
        "project": run.project,
        "answered": output.get("answered", True),
        "citations": _citations(request.user, run) if run.status == RunStatus.SUCCEEDED else [],
        "nearest": _nearest(request.user, run) if run.status == RunStatus.SUCCEEDED else [],
        "tags": _output_list(run, "tags"),
        "keywords": _output_list(run, "keywords"),
        "entities": entities,
        "dropped": output.get("dropped_citations", 0),
        "followups": run.followups.order_by("created_at"),
        "ask_form": AskForm(),
    }
    return render(request, "agents/run_detail.html", context)


@require_GET
@login_required
def status(request: HttpRequest, pk: UUID) -> JsonResponse:
    run = selectors.run_for(request.user, pk)
    state = {
        "id": str(run.pk),
        "status": run.status,
        "status_label": run.get_status_display(),
        "error": run.error,
        "finished": run.finished,
    }
    return JsonResponse({"items": [state], "finished": run.finished})
