"""Celery entry points for agent runs: thin, idempotent, ids only."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import OperationalError

log = logging.getLogger(__name__)


@shared_task(
    name="agents.run",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def run_agent(run_id: str) -> str:
    """Answer, summarise or extract for one run."""
    from agents import services

    return services.run_execute(run_id=run_id)


@shared_task(name="agents.requeue_stuck", acks_late=True)
def requeue_stuck_runs() -> int:
    """Periodic sweeper: re-enqueue runs whose job was lost (event logs expire by themselves)."""
    from agents import services

    return services.runs_requeue_stuck()


def enqueue_run(run_id: Any) -> None:
    """Publish a run job; a broker outage is logged, and the sweeper retries later."""
    try:
        run_agent.delay(str(run_id))
    except Exception:
        log.exception("could not enqueue run; the sweeper will retry", extra={"run_id": str(run_id)})
