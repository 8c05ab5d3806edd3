"""Rating answers from the pages (plain forms under each answer), and the owners' page of
a project's rated answers."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from agents import feedback as run_feedback
from agents import presenting, selectors
from agents.models import AgentRun, Rating
from core import ratelimit
from projects import access
from projects.models import Role

RATED_PER_PAGE = 20
# What the rating form says back, by rating.
THANKS = {Rating.UP: "You rated this answer helpful.", Rating.DOWN: "You rated this answer not helpful."}


def _answer_url(run: AgentRun) -> str:
    """Where the answer shows: its turn in the conversation, or its run page."""
    if run.thread_id is not None:
        return reverse("agents:thread", args=[run.thread_id]) + f"#turn-{run.pk}"
    return reverse("agents:detail", args=[run.pk])


# Ratings are writes like the API's: a page form counts against the same `api` allowance.
@require_POST
@login_required
@ratelimit.page_counts_against(ratelimit.API)
def rate(request: HttpRequest, pk: UUID) -> HttpResponse:
    run = selectors.run_for(request.user, pk)
    rating = request.POST.get("rating", "")
    try:
        run_feedback.feedback_set(
            user=request.user, run=run, rating=rating, note=request.POST.get("note", "")
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, THANKS[Rating(rating)])
    return redirect(_answer_url(run))


@require_POST
@login_required
@ratelimit.page_counts_against(ratelimit.API)
def unrate(request: HttpRequest, pk: UUID) -> HttpResponse:
    run = selectors.run_for(request.user, pk)
    if run_feedback.feedback_clear(user=request.user, run=run):
        messages.success(request, "Your rating of this answer was removed.")
    else:
        messages.info(request, run_feedback.NO_RATING)
    return redirect(_answer_url(run))


@require_GET
@login_required
def project_feedback(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The project's rated answers, the most recently rated first (its owners only)."""
    project = access.project_for(request.user, pk, need=Role.OWNER)
    rating = request.GET.get("rating", "")
    if rating not in Rating.values:
        rating = ""
    runs = run_feedback.rated_runs(user=request.user, project=project, rating=rating)
    page = Paginator(runs, RATED_PER_PAGE).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    ratings = run_feedback.feedback_on(runs=shown, rating=rating)
    items: list[dict[str, Any]] = [
        {**turn, "ratings": ratings[turn["run"].pk], "url": _answer_url(turn["run"])}
        for turn in (presenting.turns(request.user, shown) if shown else [])
    ]
    context = {
        "project": project,
        "is_owner": True,
        "rating": rating,
        "filters": [("", "All"), (Rating.UP.value, "Helpful"), (Rating.DOWN.value, "Not helpful")],
        "tally": run_feedback.project_tally(user=request.user, project=project),
        "page": page,
        "items": items,
    }
    return render(request, "projects/feedback.html", context)
