"""The embedded default's shared cache: diskcache's Django backend, kept open.

Django closes every cache when a request finishes (`close_caches` on
request_finished). For diskcache that closes its SQLite connections, so the next
request pays for opening and configuring them again (several milliseconds per
request, most of a small request's time). Its connections are per thread and
safe to keep, as Django keeps database connections; they close with the process.
"""

from __future__ import annotations

from typing import Any

from diskcache import DjangoCache


class SharedDiskCache(DjangoCache):
    def close(self, **kwargs: Any) -> None:
        """Keep the connections for the next request (see the module docstring)."""
