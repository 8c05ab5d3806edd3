"""The Celery app: workers for ingest and agent jobs, beat for the sweepers."""

from __future__ import annotations

import os
import warnings
from typing import Any

from celery import Celery
from celery.exceptions import SecurityWarning
from celery.signals import (
    task_postrun,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from core.envfile import load_env_file

# A worker or beat started by hand reads the instance's `.env` like `make run` (the settings
# read it too; this is for the variables read below, before them).
load_env_file()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# After `.env`: PROMETHEUS_MULTIPROC_DIR may come from it, and prometheus_client reads it on import.
from core import metrics  # noqa: E402
from core.logging import connect_celery_signals  # noqa: E402

# `make run` started by root runs its worker as root and says so once itself (config/run.py).
# Celery's warning guards against pickle, with which a broker message runs code as root; the
# worker accepts JSON only (CELERY_ACCEPT_CONTENT), and Celery still refuses to start as root
# with pickle, since C_FORCE_ROOT is never set. A worker started another way keeps the warning.
if os.environ.get("DOCENT_WORKER_ROOT_OK") == "1":
    warnings.filterwarnings(
        "ignore", message="You're running the worker with superuser privileges", category=SecurityWarning
    )

app = Celery("docent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery_signals()


# Metrics (core/metrics.py): each worker process records its memory when it starts and after
# each task; one that exits leaves the live gauges (its counters stay in the sums).
@worker_process_init.connect(weak=False)
@worker_ready.connect(weak=False)
def _sample_worker_memory(**kwargs: Any) -> None:
    metrics.sample_memory("worker", force=True)


@task_postrun.connect(weak=False)
def _sample_memory_after_task(task: Any = None, **kwargs: Any) -> None:
    if task is not None and not getattr(task.request, "is_eager", False):
        metrics.sample_memory("worker")


@worker_process_shutdown.connect(weak=False)
@worker_shutdown.connect(weak=False)
def _metrics_process_gone(pid: int | None = None, **kwargs: Any) -> None:
    metrics.process_dead(pid or os.getpid())
