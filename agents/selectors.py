"""Reads on agent runs, always scoped to what the user may see.

A thread is private to the person who started it unless they shared it with the project;
the project's owners see every thread. The runs of a thread (its turns) are seen by those
who see the thread; runs outside any thread (summaries, extractions) by every member.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet
from django.http import Http404

from agents.models import AgentRun, Thread
from projects.access import projects_visible_to
from projects.models import Project, Role

THREAD_NOT_FOUND = "No such conversation: it was deleted, or it is not shared with you."


def _owned_projects(user: Any) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user_id=user.pk, memberships__role=Role.OWNER)


def _thread_readable(user: Any, prefix: str = "") -> Q:
    """Threads (at `prefix`, e.g. "thread__") the user may read, within projects they are in."""
    if not getattr(user, "is_authenticated", False):
        return Q(pk__in=[])
    return (
        Q(**{f"{prefix}shared": True})
        | Q(**{f"{prefix}created_by_id": user.pk})
        | Q(**{f"{prefix}project__in": _owned_projects(user)})
    )


def runs_visible_to(user: Any) -> QuerySet[AgentRun]:
    return (
        AgentRun.objects.filter(project__in=projects_visible_to(user))
        .filter(Q(thread__isnull=True) | _thread_readable(user, "thread__"))
        .select_related("project", "document")
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
    return (
        Thread.objects.filter(project__in=projects_visible_to(user))
        .filter(_thread_readable(user))
        .select_related("created_by")
    )


def thread_for(user: Any, thread_id: Any) -> Thread:
    try:
        pk = thread_id if isinstance(thread_id, UUID) else UUID(str(thread_id))
    except (ValueError, TypeError):
        raise Http404(THREAD_NOT_FOUND) from None
    thread = threads_visible_to(user).select_related("project").filter(pk=pk).first()
    if thread is None:
        raise Http404(THREAD_NOT_FOUND)
    return thread
