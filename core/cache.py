"""The embedded default's shared cache: diskcache's Django backend, one per process, kept open.

Django hands each request context its own cache backend object (its cache handler is
context-local, not thread-local), and the web server runs every request in a fresh
context, so diskcache's backend would open and configure its SQLite shards for every
request: 45% of a worker's time on the project list under load (py-spy, 2026-12-04).
The shards (a FanoutCache) are safe to share: each thread, and each process after a
fork, gets its own SQLite connection. So every backend object built for the same
settings in a process shares one.

Django also closes every cache when a request finishes (`close_caches` on
request_finished), which for diskcache closes those connections so the next request
pays for opening them again. They are kept, as Django keeps database connections,
and close with the process.
"""

from __future__ import annotations

import threading
from typing import Any

from diskcache import DjangoCache, FanoutCache
from django.core.cache.backends.base import BaseCache

_SHARDS: dict[tuple[str, str], FanoutCache] = {}
_LOCK = threading.Lock()


class SharedDiskCache(DjangoCache):
    _cache: FanoutCache

    def __init__(self, directory: str, params: dict[str, Any]) -> None:
        key = (str(directory), repr(sorted(params.items())))
        with _LOCK:
            shards = _SHARDS.get(key)
            if shards is None:
                super().__init__(directory, params)
                _SHARDS[key] = self._cache
                return
        BaseCache.__init__(self, params)
        self._cache = shards

    def close(self, **kwargs: Any) -> None:
        """Keep the connections for the next request (see the module docstring)."""
