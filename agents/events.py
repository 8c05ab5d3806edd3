"""A run's live events, carried from the worker that produces them to the web processes
that stream them to people and clients (agents/streams.py).

Each run has an append-only log of events (`status`, `delta`, `reset`, `done`), each
with an id that increases; a reader asks for the events after the last id it saw, so a
reconnecting client (`Last-Event-ID`) resumes where it left off. Two carriers:

- Redis Streams when REDIS_URL is set (production): XADD in the worker, a blocking
  XREAD in the web process, so an open stream costs no polling.
- A file per run under DOCENT_DATA_DIR/events on the embedded default: the worker
  appends JSON lines, readers poll the file's size. Works across processes with no
  server. Ids are line numbers.

The log is a convenience for live viewers, not the record: the run's row is. A log
that has expired or was never written (a run finished before anyone watched) is
answered from the row by the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

# How long a run's log is kept after its last event (Redis) or after it finished (files).
LOG_TTL_S = 3600
# Events kept per run at most (Redis trims older ones; a reader that fell further behind
# gets the final state from the row instead).
MAX_EVENTS = 20_000
# How often a file reader looks for new lines.
POLL_S = 0.03
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
    """Whether `event_id` is of the shape this carrier gives its events."""
    return bool(_carrier().ID.fullmatch(event_id))


def forget(run_id: Any) -> None:
    """Drop a run's log (the run was deleted)."""
    try:
        _carrier().forget(str(run_id))
    except Exception:
        log.warning("could not drop a run's events", exc_info=True, extra={"run_id": str(run_id)})


def sweep(older_than_s: int = LOG_TTL_S) -> int:
    """Remove logs not written for `older_than_s` (files only; Redis keys expire)."""
    return _carrier().sweep(older_than_s)


def _carrier() -> _RedisCarrier | _FileCarrier:
    return _RedisCarrier(settings.REDIS_URL) if settings.REDIS_URL else _FileCarrier(_events_dir())


def _events_dir() -> Path:
    return Path(settings.DATA_DIR) / "events"


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

    def sweep(self, older_than_s: int) -> int:
        return 0


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


class _FileCarrier:
    ID = re.compile(r"\d{1,12}")

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, run_id: str) -> Path:
        # Run ids are UUIDs; anything else would be refused before this, but never let
        # a name reach outside the folder.
        safe = "".join(c for c in run_id if c.isalnum() or c == "-")
        return self.folder / f"{safe}.jsonl"

    def publish(self, run_id: str, type: str, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": type, "d": data}, separators=(",", ":")) + "\n"
        # One write() on an O_APPEND descriptor: lines from concurrent writers never interleave.
        fd = os.open(self.path(run_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    async def read(self, run_id: str, after: str | None, wait_s: float) -> list[Event]:
        try:
            skip = max(0, int(after)) if after else 0
        except ValueError:
            skip = 0
        path = self.path(run_id)
        deadline = time.monotonic() + wait_s
        seen = -1
        while True:
            size = _size(path)
            if size != seen:  # read only when the file has grown
                seen = size
                events = self._lines_after(path, skip)
                if events:
                    return events
            if time.monotonic() >= deadline:
                return []
            await asyncio.sleep(POLL_S)

    @staticmethod
    def _lines_after(path: Path, skip: int) -> list[Event]:
        try:
            with path.open("rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return []
        lines = raw.split(b"\n")
        complete = lines[:-1]  # the last piece is empty, or a line still being written
        events = []
        for number, line in enumerate(complete[skip:], start=skip + 1):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            event = _decode(str(number), item.get("t"), item.get("d"))
            if event is not None:
                events.append(event)
        return events

    def forget(self, run_id: str) -> None:
        self.path(run_id).unlink(missing_ok=True)

    def sweep(self, older_than_s: int) -> int:
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.folder.glob("*.jsonl"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


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
