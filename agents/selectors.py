"""Reads on agent runs, always scoped to what the user may see."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.http import Http404

from agents.models import AgentRun, Thread
from projects.access import projects_visible_to


def runs_visible_to(user: Any) -> QuerySet[AgentRun]:
    return AgentRun.objects.filter(project__in=projects_visible_to(user)).select_related(
        "project", "document"
    )


def run_for(user: Any, run_id: Any) -> AgentRun:
    try:
        pk = run_id if isinstance(run_id, UUID) else UUID(str(run_id))
    except (ValueError, TypeError):
        raise Http404("No such run.") from None
    run = runs_visible_to(user).filter(pk=pk).first()
    if run is None:
        raise Http404("No such run.")
    return run


def threads_visible_to(user: Any) -> QuerySet[Thread]:
    return Thread.objects.filter(project__in=projects_visible_to(user)).select_related("created_by")


def thread_for(user: Any, thread_id: Any) -> Thread:
    try:
        pk = thread_id if isinstance(thread_id, UUID) else UUID(str(thread_id))
    except (ValueError, TypeError):
        raise Http404("No such conversation.") from None
    thread = threads_visible_to(user).select_related("project").filter(pk=pk).first()
    if thread is None:
        raise Http404("No such conversation.")
    return thread
