"""Long-lived objects kept out of the cyclic garbage collector's way, in web processes.

A web worker holds over a hundred thousand objects that live as long as it does
(Django, the project, the encoder's libraries: modules, classes, functions;
about half a million while the encoder ran on torch). CPython's collector walks every one of them on each full
collection, about a quarter of a second with the worker stopped, every few
thousand requests. Freezing them once they are loaded moves them into the
permanent generation, which no collection walks; reference counting still frees
any of them that is dropped.

Only a process that opts in freezes: gunicorn's workers do, once they have loaded
the application (`config/gunicorn.py`); elsewhere (tests, management commands,
Celery, a test server) nothing changes.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

_enabled = False


def enable(reason: str) -> None:
    """Opt this process in, and freeze what it has loaded so far."""
    global _enabled
    _enabled = True
    freeze_long_lived(reason)


def freeze_long_lived(reason: str) -> None:
    """In an opted-in process: collect what is garbage now, then freeze everything still alive."""
    if not _enabled:
        return
    started = time.monotonic()
    gc.collect()
    gc.freeze()
    log.info(
        "long-lived objects frozen",
        extra={
            "reason": reason,
            "objects": gc.get_freeze_count(),
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        },
    )
