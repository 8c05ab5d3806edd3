"""The Celery app: workers for ingest and agent jobs, beat for the sweepers."""

from __future__ import annotations

import os

from celery import Celery

from core.logging import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("docent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery_signals()
