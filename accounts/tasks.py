"""Celery entry points for accounts: thin, idempotent."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="accounts.audit_purge", acks_late=True)
def purge_audit_events() -> int:
    """Periodic: delete the audit events older than DOCENT_AUDIT_DAYS (run twice, deletes once)."""
    from accounts import audit

    return audit.audit_purge()
