"""Celery entry points for projects: thin, idempotent, ids only."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="projects.webhook_deliver", acks_late=True, reject_on_worker_lost=True)
def webhook_deliver(delivery_id: str) -> str:
    """Make the next attempt of one webhook delivery, if it is due (a claim makes it safe to run twice)."""
    from projects import webhooks

    return webhooks.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="projects.webhooks_deliver_due", acks_late=True)
def webhooks_deliver_due() -> int:
    """Periodic sweeper: publish webhook deliveries whose next attempt is due (retries, lost jobs)."""
    from projects import webhooks

    return webhooks.deliveries_enqueue_due()
