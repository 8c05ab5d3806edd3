"""The Celery app: workers for ingest and agent jobs, beat for the sweepers."""

from __future__ import annotations

import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning

from core.envfile import load_env_file
from core.logging import connect_celery_signals

# A worker or beat started by hand reads the instance's `.env` like `make run` (the settings
# read it too; this is for the variables read below, before them).
load_env_file()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

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
