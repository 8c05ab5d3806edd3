"""gunicorn settings: a few sync workers with threads; knobs from the environment."""

import os

bind = os.environ.get("DOCENT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Requests are CPU-bound (Python, the query encoder): one process per core does the work,
# and a second thread keeps a slow client or upload from stalling its worker. More threads
# only queue behind the GIL (bench/results/load.md compares 1, 2, 4 and 10).
threads = int(os.environ.get("DOCENT_WEB_THREADS", "2"))
timeout = int(os.environ.get("DOCENT_WEB_TIMEOUT", "60"))
# No gunicorn access log: Docent logs every request itself, as JSON with its
# request id, user id and duration (config/logging.py).
accesslog = None
errorlog = "-"
# Requests larger than the upload limit are refused by Django; keep headers small.
limit_request_field_size = 8190
