"""A run's live events, carried from the worker that produces them to the web processes
that stream them to people and clients (agents/streams.py).

Each run has an append-only log of events (`status`, `delta`, `reset`, `done`), each
with an id that increases; a reader asks for the events after the last id it saw, so a
reconnecting client (`Last-Event-ID`) resumes where it left off. The carrier is a
Redis Stream per run in REDIS_URL's server (the private Valkey on the embedded
default): XADD in the worker, a blocking XREAD in the web process, so an open stream
costs no polling; a log expires an hour after its last event.

The log is a convenience for live viewers, not the record: the run's row is. A log
that has expired or was never written (a run finished before anyone watched) is
answered from the row by the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

# How long a run's log is kept after its last event.
LOG_TTL_S = 3600
# Events kept per run at most (Redis trims older ones; a reader that fell further behind
# gets the final state from the row instead).
MAX_EVENTS = 20_000
# Types a stream may carry.
TYPES = frozenset({"status", "delta", "reset", "done"})


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]


def publish(run_id: Any, type: str, **data: Any) -> None:
    """Append an event to the run's log; a carrier failure is logged, never raised."""
    assert type in TYPES, type
    try:
        _carrier().publish(str(run_id), type, data)
    except Exception:
        log.warning("could not publish a run event", exc_info=True, extra={"run_id": str(run_id)})


async def read(run_id: Any, after: str | None, *, wait_s: float) -> list[Event]:
    """Events after id `after` (all when None), waiting up to `wait_s` for the first one."""
    return await _carrier().read(str(run_id), after, wait_s)


async def aclose() -> None:
    """Close this event loop's Redis client (a loop that ends before its process does)."""
    for client in _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()


def valid_id(event_id: str) -> bool:
    """Whether `event_id` is of the shape the carrier gives its events."""
    return bool(_RedisCarrier.ID.fullmatch(event_id))


def forget(run_id: Any) -> None:
    """Drop a run's log (the run was deleted)."""
    try:
        _carrier().forget(str(run_id))
    except Exception:
        log.warning("could not drop a run's events", exc_info=True, extra={"run_id": str(run_id)})


def _carrier() -> _RedisCarrier:
    return _RedisCarrier(settings.REDIS_URL)


class _RedisCarrier:
    ID = re.compile(r"\d{1,20}-\d{1,20}")

    def __init__(self, url: str) -> None:
        self.url = url

    @staticmethod
    def key(run_id: str) -> str:
        return f"docent:run-events:{run_id}"

    def publish(self, run_id: str, type: str, data: dict[str, Any]) -> None:
        client = _sync_client(self.url)
        key = self.key(run_id)
        pipe = client.pipeline(transaction=False)
        pipe.xadd(key, {"t": type, "d": json.dumps(data)}, maxlen=MAX_EVENTS, approximate=True)
        pipe.expire(key, LOG_TTL_S)
        pipe.execute()

    async def read(self, run_id: str, after: str | None, wait_s: float) -> list[Event]:
        client = _async_client(self.url)
        block = max(1, int(wait_s * 1000))
        reply = await client.xread({self.key(run_id): after or "0-0"}, count=500, block=block)
        events: list[Event] = []
        for _key, entries in reply or []:
            for entry_id, fields in entries:
                events.append(_decode(_text(entry_id), _text(fields.get(b"t")), fields.get(b"d")))
        return [e for e in events if e is not None]

    def forget(self, run_id: str) -> None:
        _sync_client(self.url).delete(self.key(run_id))


_SYNC_CLIENTS: dict[str, Any] = {}
# One async client (and its connection pool) per event loop: a web worker has one loop,
# so its streams share a pool; a blocking XREAD holds a pooled connection while it waits.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def _async_client(url: str) -> Any:
    import redis.asyncio as aredis

    per_loop = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(url)
    if client is None:
        client = aredis.Redis.from_url(url, socket_connect_timeout=2)
        per_loop[url] = client
    return client


def _sync_client(url: str) -> Any:
    client = _SYNC_CLIENTS.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        _SYNC_CLIENTS[url] = client
    return client


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _decode(event_id: str, type: Any, data: Any) -> Event | None:
    if isinstance(type, bytes):
        type = type.decode()
    if type not in TYPES:
        return None
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    return Event(event_id, type, data if isinstance(data, dict) else {})
