"""gunicorn settings: a few uvicorn (ASGI) workers; knobs from the environment.

The app is config.asgi. Pages and API calls run as Django's sync views on each
worker's thread pool; an open event stream (agents/streams.py) is a coroutine on the
worker's event loop, so a hundred of them occupy no thread.
"""

import os
import sys
from pathlib import Path
from typing import Any

from uvicorn_worker import UvicornWorker

# gunicorn reads this file before it changes to --chdir: find Docent's packages from here.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from core.envfile import load_env_file  # noqa: E402

# Started by hand (`make serve`), gunicorn reads the instance's .env like every entry point.
load_env_file()


class DocentWorker(UvicornWorker):
    """uvicorn's worker without its `Server: uvicorn` header: nothing tells a stranger what
    serves Docent (the version of a known server is the first thing an attacker looks up),
    and with the ASGI lifespan always on."""

    # lifespan "on": the MCP server (agents/mcp.py) runs its session manager in the app's
    # lifespan, so a worker whose lifespan fails to start stops instead of serving without it.
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "server_header": False, "lifespan": "on"}


bind = os.environ.get("DOCENT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "config.gunicorn.DocentWorker"
# Seconds a worker has to finish its requests after TERM; open event streams are cut
# (clients reconnect with Last-Event-ID).
graceful_timeout = int(os.environ.get("DOCENT_WEB_GRACEFUL_S", "5"))
timeout = int(os.environ.get("DOCENT_WEB_TIMEOUT", "60"))
# No gunicorn access log: Docent logs every request itself, as JSON with its
# request id, user id and duration (core/logging.py).
accesslog = None
errorlog = "-"
# Requests larger than the upload limit are refused by Django; keep headers small.
limit_request_field_size = 8190


def post_worker_init(worker: object) -> None:
    """Each worker, once it has loaded Docent: keep its long-lived objects out of the
    garbage collector's way from now on (core/heap.py)."""
    from core import heap

    heap.enable("web worker started")


def child_exit(server: object, worker: Any) -> None:
    """In the master, when a worker has exited: its live gauges (its memory) leave /metrics;
    its counters stay in the sums (PROMETHEUS_MULTIPROC_DIR, core/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
