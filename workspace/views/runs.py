"""Agent run pages: start a run from a form, watch it finish; conversations (threads)
show every turn and stream the new answer in place."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agents import presenting, selectors, services, streams
from agents.api import RUN_TARGET_GONE
from documents import selectors as document_selectors
from projects import access
from workspace.forms import AskForm, RunCreateForm


def _wants_json(request: HttpRequest) -> bool:
    """The thread page's script posts with fetch and reads JSON; forms get redirects."""
    return request.headers.get("Accept", "").startswith("application/json")


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
    as_json = _wants_json(request)
    if not form.is_valid():
        # Only a tampered or stale form gets here; the question is the one thing people type.
        if "question" in form.errors:
            message = f"A question has at most {services.QUESTION_MAX} characters."
        else:
            message = "That request was incomplete; reload the page and try again."
        if as_json:
            return JsonResponse({"detail": message}, status=400)
        messages.error(request, message)
        return _back(request, reverse("projects:list"))
    data = form.cleaned_data
    project = access.project_for(request.user, data["project"])
    fallback = reverse("projects:detail", args=[project.pk])
    document = document_selectors.document_for(request.user, data["document"]) if data["document"] else None
    parent = selectors.run_for(request.user, data["parent"]) if data["parent"] else None
    thread = selectors.thread_for(request.user, data["thread"]) if data["thread"] else None
    try:
        run = services.run_create(
            user=request.user,
            project=project,
            kind=data["kind"],
            question=data["question"],
            document=document,
            parent=parent,
            thread=thread,
        )
    except (ValidationError, services.TokenBudgetExceeded, IntegrityError) as exc:
        if isinstance(exc, IntegrityError):  # its document, conversation or project was deleted meanwhile
            exc = ValidationError(RUN_TARGET_GONE)
        errors = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        if as_json:
            code = 429 if isinstance(exc, services.TokenBudgetExceeded) else 400
            return JsonResponse({"detail": " ".join(errors)}, status=code)
        for message in errors:
            messages.error(request, message)
        return _back(request, fallback)
    if run.thread_id is None:
        return redirect("agents:detail", pk=run.pk)
    thread_url = reverse("agents:thread", args=[run.thread_id])
    if as_json:
        return JsonResponse(
            {
                "id": str(run.pk),
                "thread": str(run.thread_id),
                "thread_url": thread_url,
                "turn_url": reverse("agents:turn", args=[run.pk]),
                "events_url": reverse("agents:events", args=[run.pk]),
            },
            status=201,
        )
    return redirect(f"{thread_url}#turn-{run.pk}")


@require_GET
@login_required
def detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    run = selectors.run_for(request.user, pk)
    entities = [
        e if isinstance(e, dict) else {"text": str(e), "type": ""}
        for e in presenting.output_list(run, "entities")
    ]
    context = {
        **presenting.turn(request.user, run),
        "project": run.project,
        "tags": presenting.output_list(run, "tags"),
        "keywords": presenting.output_list(run, "keywords"),
        "entities": entities,
        "followups": run.followups.order_by("created_at"),
        "ask_form": AskForm(),
    }
    return render(request, "agents/run_detail.html", context)


@require_GET
@login_required
@never_cache  # turns are added in place: going back must show them, not a stale copy
def thread(request: HttpRequest, pk: UUID) -> HttpResponse:
    conversation = selectors.thread_for(request.user, pk)
    runs = conversation.turns.select_related("project", "document", "created_by").order_by("created_at")
    context = {
        "thread": conversation,
        "project": conversation.project,
        "turns": presenting.turns(request.user, runs),
        "ask_form": AskForm(),
    }
    return render(request, "agents/thread.html", context)


@require_GET
@login_required
@never_cache
def turn(request: HttpRequest, pk: UUID) -> HttpResponse:
    """One turn of a conversation, as the thread page shows it (for the page's script)."""
    run = selectors.run_for(request.user, pk)
    return render(request, "agents/turn.html", presenting.turn(request.user, run))


@require_GET
@login_required
def events(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The run's Server-Sent Events, for the pages (the API has its own, with JWT)."""
    return streams.response(request, selectors.run_for(request.user, pk))


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
