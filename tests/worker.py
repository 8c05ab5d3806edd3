"""Start a real `celery worker` process that shares the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tests.servers import stop

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A DATABASE_URL for the database this test process is using (the test database)."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    # A unix socket folder goes in the host part percent-encoded (dj-database-url's reading).
    host = quote(db.get("HOST") or "127.0.0.1", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{host}{port}/{db['NAME']}"


def _reset_connections(app: Any) -> None:
    """Drop pooled broker connections so new ones pick up changed transport options."""
    from kombu import pools

    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    pools.reset()  # kombu's process-wide pools, or a closed one would be handed out again


@contextmanager
def celery_worker(
    tmp_path: Path,
    *,
    queues: str = "ingest,agents,default",
    extra_env: dict[str, str] | None = None,
    beat: bool = False,
    name: str = "worker",
) -> Iterator[subprocess.Popen[Any]]:
    """Run a worker on the configured broker (the test run's Valkey)."""
    from config.celery import app

    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DOCENT_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DOCENT_DATA_DIR": str(tmp_path),
        "DOCENT_TASKS_EAGER": "false",
        **(extra_env or {}),
    }
    saved = (app.conf.task_always_eager, app.conf.broker_transport_options)
    app.conf.task_always_eager = False
    log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        queues,
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        f"{name}@%h",
    ]
    if beat:
        command += ["--beat", "--schedule", str(tmp_path / f"{name}-beat-schedule")]
    # Its own process group: with --beat the worker forks a beat process, which a worker
    # killed after a stuck stop would leave behind; the whole group goes at the end.
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        stop(proc)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        app.conf.task_always_eager, app.conf.broker_transport_options = saved
        _reset_connections(app)


@contextmanager
def broker_down() -> Iterator[None]:
    """Point this process's publisher at a port where no broker listens."""
    from config.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app.conf.task_always_eager = False
    _reset_connections(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        _reset_connections(app)


def wait_for(
    predicate: Any, *, timeout: float = 120.0, interval: float = 0.25, log: Path | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"condition not met within {timeout}s\n{detail}")
