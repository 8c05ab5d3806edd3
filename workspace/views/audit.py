"""The owners' page of a project's audit log: who did what in the project, newest first."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import audit
from accounts.models import AuditEvent
from projects import access
from projects.models import Role

EVENTS_PER_PAGE = 50
# The actions that happen inside a project (sign-ins, keys and staff edits belong to accounts).
PROJECT_ACTIONS = [
    (value, label)
    for value, label in AuditEvent.Action.choices
    if value.split(".", 1)[0] in {"invitation", "member", "document", "webhook", "project"}
]


@require_GET
@login_required
def project_audit(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The project's audit events (its owners only; 403 for other members, 404 for outsiders)."""
    project = access.project_for(request.user, pk, need=Role.OWNER)
    action = request.GET.get("action", "")
    if action not in AuditEvent.Action.values:
        action = ""
    events = audit.project_events(project_id=project.pk, action=action)
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "is_owner": True,
        "action": action,
        "actions": PROJECT_ACTIONS,
        "page": page,
        "retention_days": audit.retention_days(),
    }
    return render(request, "projects/audit.html", context)
