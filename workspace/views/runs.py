"""Agent run pages: start a run from a form, watch it finish; conversations (threads)
show every turn and stream the new answer in place."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agents import presenting, selectors, services, streams
from agents.api import RUN_TARGET_GONE
from agents.models import Thread
from documents import selectors as document_selectors
from projects import access
from projects.models import Role
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
    try:
        project = access.project_for(request.user, data["project"])
        document = (
            document_selectors.document_for(request.user, data["document"]) if data["document"] else None
        )
        parent = selectors.run_for(request.user, data["parent"]) if data["parent"] else None
        thread = selectors.thread_for(request.user, data["thread"]) if data["thread"] else None
    except Http404 as exc:
        if not as_json:
            raise
        # The thread page's script: say so in its form (a conversation deleted in another tab).
        return JsonResponse({"detail": str(exc) or "Not found."}, status=404)
    fallback = reverse("projects:detail", args=[project.pk])
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
                # The header's "N questions" on the thread page (static/js/docent.js).
                "turn_count": run.thread.turn_count if run.thread else None,
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
    if run.parent_id and not selectors.runs_visible_to(request.user).filter(pk=run.parent_id).exists():
        # It follows a question in a conversation not shared with this person: no link, no text.
        run.parent = None
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
        # Follow-ups start conversations of their own, which may be private to their askers.
        "followups": selectors.runs_visible_to(request.user).filter(parent=run).order_by("created_at"),
        "ask_form": AskForm(),
    }
    return render(request, "agents/run_detail.html", context)


@require_GET
@login_required
@never_cache  # turns are added in place: going back must show them, not a stale copy
def thread(request: HttpRequest, pk: UUID) -> HttpResponse:
    conversation = selectors.thread_for(request.user, pk)
    runs = conversation.turns.select_related("project", "document", "created_by").order_by("created_at")
    role = access.require(request.user, conversation.project, Role.VIEWER)
    starter = conversation.created_by_id is not None and conversation.created_by_id == request.user.pk
    is_owner = access.has_role(role, Role.OWNER)
    context = {
        "thread": conversation,
        "project": conversation.project,
        "turns": presenting.turns(request.user, runs),
        "ask_form": AskForm(),
        "is_starter": starter,
        "can_edit_thread": starter or is_owner,
        "title_max": services.THREAD_TITLE_MAX,
    }
    return render(request, "agents/thread.html", context)


@require_POST
@login_required
def thread_rename(request: HttpRequest, pk: UUID) -> HttpResponse:
    conversation = selectors.thread_for(request.user, pk)
    try:
        services.thread_rename(user=request.user, thread=conversation, title=request.POST.get("title", ""))
    except Thread.DoesNotExist:
        raise Http404(services.THREAD_GONE) from None
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"Renamed to “{conversation.title}”.")
    return redirect("agents:thread", pk=conversation.pk)


@require_POST
@login_required
def thread_share(request: HttpRequest, pk: UUID) -> HttpResponse:
    conversation = selectors.thread_for(request.user, pk)
    choice = request.POST.get("shared", "")
    if choice not in {"true", "false"}:
        messages.error(request, "That request was incomplete; reload the page and try again.")
        return redirect("agents:thread", pk=conversation.pk)
    try:
        services.thread_share(user=request.user, thread=conversation, shared=choice == "true")
    except Thread.DoesNotExist:
        raise Http404(services.THREAD_GONE) from None
    if conversation.shared:
        messages.success(request, "Shared: every member of the project can now read this conversation.")
    else:
        messages.success(
            request, "Made private: only you and the project's owners can now read this conversation."
        )
    return redirect("agents:thread", pk=conversation.pk)


@require_POST
@login_required
def thread_delete(request: HttpRequest, pk: UUID) -> HttpResponse:
    conversation = selectors.thread_for(request.user, pk)
    try:
        services.thread_delete(user=request.user, thread=conversation)
    except Thread.DoesNotExist:
        raise Http404(services.THREAD_GONE) from None
    messages.success(request, f"The conversation “{conversation.title}” was deleted.")
    return redirect(reverse("projects:detail", args=[conversation.project_id]) + "#threads")


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
