"""Celery entry points for documents: thin, idempotent, ids only."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

log = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="documents.ingest",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def ingest_document(self: Task, document_id: str) -> str:
    """Extract, chunk and embed one document."""
    from documents import services

    result = services.document_ingest(document_id=document_id)
    if result == services.INGEST_BUSY:
        # A re-delivered job while another worker has the document: come back
        # once that worker's claim can be judged stale, so a dead one is replaced.
        raise self.retry(countdown=min(settings.STUCK_AFTER_S + 1, 300), max_retries=20)
    return result


@shared_task(name="documents.requeue_stuck", acks_late=True)
def requeue_stuck_documents() -> int:
    """Periodic sweeper: re-enqueue documents whose job was lost."""
    from documents import services

    return services.documents_requeue_stuck()


def enqueue_ingest(document_id: Any) -> None:
    """Publish an ingest job; a broker outage is logged, and the sweeper retries later."""
    try:
        ingest_document.delay(str(document_id))
    except Exception:
        log.exception(
            "could not enqueue ingest; the sweeper will retry", extra={"document_id": str(document_id)}
        )
