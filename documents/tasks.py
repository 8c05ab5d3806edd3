"""Celery entry points for documents: thin, idempotent, ids only."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Task, shared_task
from django.db import OperationalError

log = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="documents.ingest",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=8,
)
def ingest_documents(self: Task, document_id: str | None = None) -> dict[str, int]:
    """Claim and ingest pending documents in batches (a wake-up: the database holds the queue).

    `document_id` is accepted for messages published before batching; the claim
    takes every pending document anyway. A retry (after a database error) and a
    re-delivery (after a killed worker) keep the task id, so the job resumes its
    own claims at once.
    """
    from documents import ingest

    # Run inline (eager), a job waking another would recurse: the one job drains the queue.
    report = ingest.run(token=self.request.id or uuid.uuid4().hex, wake_others=not self.request.is_eager)
    return {"claimed": report.claimed, "ready": report.ready, "failed": report.failed}


@shared_task(name="documents.requeue_stuck", acks_late=True)
def requeue_stuck_documents() -> bool:
    """Periodic sweeper: wake a worker when documents have waited (a lost message, a dead worker),
    drop the search partitions of deleted projects and compact the indexes that took writes."""
    from documents import ingest, services

    services.search_partitions_sweep()
    services.search_indexes_compact()
    return ingest.sweep()


def publish_wakeup() -> bool:
    """Publish an ingest wake-up; a broker outage is logged (the sweeper tries again later)."""
    try:
        ingest_documents.delay()
    except Exception:
        log.exception("could not publish an ingest wake-up; the sweeper will retry")
        return False
    return True


def enqueue_ingest(document_id: Any = None) -> None:
    """A document is waiting: make sure a worker will come for it."""
    from documents import ingest

    ingest.wake()
