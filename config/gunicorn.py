"""gunicorn settings: a few sync workers with threads; knobs from the environment."""

import os

bind = os.environ.get("DOCENT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Requests are CPU-bound (Python, the query encoder): one process per core does the work,
# one request at a time. A second thread only queues behind the GIL and widens the
# latency tail (bench/results/load.md). A slow client holds its worker's thread while it
# sends or reads, so production runs behind a buffering proxy (nginx, a load balancer),
# as gunicorn's own documentation asks; without one, raise DOCENT_WEB_THREADS.
threads = int(os.environ.get("DOCENT_WEB_THREADS", "1"))
timeout = int(os.environ.get("DOCENT_WEB_TIMEOUT", "60"))
# No gunicorn access log: Docent logs every request itself, as JSON with its
# request id, user id and duration (config/logging.py).
accesslog = None
errorlog = "-"
# Requests larger than the upload limit are refused by Django; keep headers small.
limit_request_field_size = 8190


def post_worker_init(worker: object) -> None:
    """Each worker, once it has loaded Docent: keep its long-lived objects out of the
    garbage collector's way from now on (config/heap.py)."""
    from config import heap

    heap.enable("web worker started")
