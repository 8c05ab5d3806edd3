"""ASGI entry point: what gunicorn's uvicorn workers serve (config/gunicorn.py).

Three doors to one Django. A run's event stream (`/runs/<id>/events`,
`/api/v1/runs/<id>/events/`) goes to Django's ASGI handler, where an open stream
is a coroutine waiting for events and holds no thread. Everything else is an
ordinary short request, served by Django's WSGI handler on a fixed pool of
threads (a2wsgi): the threads, and so their database connections, are reused
from request to request, where Django's ASGI handler would start a thread (and
open a connection) for every one, at half the throughput (bench/results/streams.md).

The third door is `/mcp`, the Model Context Protocol server (agents/mcp.py): the `mcp`
SDK's Starlette app behind a check of the caller's API key. It needs the ASGI lifespan
(uvicorn sends it to every worker, config/gunicorn.py) to run its session manager, so the
lifespan goes to it.
"""

import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

STREAM_PATH = re.compile(r"^/(?:api/v1/)?runs/[^/]+/events/?$")
# Threads serving ordinary requests per worker process: the work is CPU-bound under
# the GIL, so a few are enough to overlap database waits.
THREADS = int(os.environ.get("DOCENT_WEB_THREADS", "2"))

MCP_PATHS = frozenset({"/mcp", "/mcp/"})

streams = get_asgi_application()
pages = WSGIMiddleware(get_wsgi_application(), workers=THREADS)

from agents import mcp  # noqa: E402  (Django is set up by now)

tools = mcp.asgi_app()


async def application(scope, receive, send):
    if scope["type"] == "lifespan" or (scope["type"] == "http" and scope.get("path", "") in MCP_PATHS):
        await tools(scope, receive, send)
    elif scope["type"] == "http" and STREAM_PATH.match(scope.get("path", "")):
        await streams(scope, receive, send)
    else:
        await pages(scope, receive, send)
