"""The audit log: who did what to which account or project, from where, and when.

A small model (accounts.models.AuditEvent) written through the services, not
django-auditlog. django-auditlog records model field diffs on save/delete; most
of what Docent must record is not a model change at all (a failed sign-in, an
invitation mailed, a sign-in) or is one whose diff would say too little or too
much (a password change would record a hash; a project deletion cascades into
thousands of chunk rows). Calling `record` in the service that performs the
action names the action, its actor and its project once, in the words of the
contract, and keeps one row per action.

The log is append-only: no code here updates or deletes a row, and a PostgreSQL
trigger (accounts/migrations/0005_audit_events.py) refuses an UPDATE and any
DELETE of a row younger than the retention. Only `audit_purge` (run hourly by
Celery beat) deletes, rows older than DOCENT_AUDIT_DAYS, and it says so to the
trigger through a transaction-local setting.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from core.logging import client_ip_var, request_ip

log = logging.getLogger("docent.audit")

# The transaction-local setting the trigger reads before it lets a DELETE through: the
# retention in days; the trigger then allows deleting rows older than that, and no others.
PURGE_SETTING = "docent.audit_purge_days"


def record(
    action: str,
    *,
    actor: Any = None,
    target: str = "",
    project_id: uuid.UUID | str | None = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit event; the IP comes from the request or the current request's context."""
    from accounts.models import AuditEvent

    if action not in AuditEvent.Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    ip = request_ip(request) if request is not None else client_ip_var.get()
    AuditEvent.objects.create(
        action=action,
        actor=user,
        actor_email=(getattr(user, "email", "") or "")[:254],
        target=str(target or "")[:500],
        project_id=project_id or None,
        ip=ip or None,
        detail=detail or {},
    )


def project_events(*, project_id: uuid.UUID | str, action: str = "") -> QuerySet[Any]:
    """A project's events, newest first, optionally of one action; callers check the owner role."""
    from accounts.models import AuditEvent

    events = AuditEvent.objects.filter(project_id=project_id).order_by("-id")
    return events.filter(action=action) if action else events


def retention_days() -> int:
    return int(getattr(settings, "AUDIT_DAYS", 365))


def audit_purge() -> int:
    """Delete the events older than DOCENT_AUDIT_DAYS; the only delete the log allows."""
    from accounts.models import AuditEvent

    days = retention_days()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Transaction-local (the `true`): the permission ends with this transaction. The
            # cutoff is the database's own now(), the one the trigger compares with.
            cursor.execute("SELECT set_config(%s, %s, true), now()", [PURGE_SETTING, str(days)])
            now = cursor.fetchone()[1]
        cutoff = now - timedelta(days=days)
        deleted, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
        with connection.cursor() as cursor:
            # Withdrawn at once, for a caller whose transaction goes on (this one nested in another).
            cursor.execute("SELECT set_config(%s, '', true)", [PURGE_SETTING])
    if deleted:
        log.info("audit events purged", extra={"deleted": deleted, "before": cutoff.isoformat()})
    return deleted
