"""Server-Sent Events for a run: status changes, answer text as it is written, done.

One stream per run, for pages (session) and API clients (JWT) alike:

    event: status   data: {"status": "generating", "label": "Generating"}
    event: delta    data: {"text": "The pump was designed "}
    event: reset    data: {}      (the provider failed midway; the fallback starts over)
    event: done     data: {"run": {...the run as the API shows it...}}

Every event from the run's log carries an `id:`; a client that reconnects with
`Last-Event-ID` gets only what came after it. `done` has the id `done`, and a
reconnect after it is answered 204 (which stops an EventSource).

A person has at most STREAMS_PER_USER streams open at once, over every web process
(leases in the shared cache); past it a stream is refused with 429.

Under ASGI (uvicorn workers) an open stream is a coroutine waiting on the event
carrier, not a thread. Under WSGI (the test server, a sync deployment) the same
stream is served synchronously, a thread per stream.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from agents import events
from agents.models import AgentRun
from agents.selectors import runs_visible_to

# A comment line this often keeps proxies and clients from timing the stream out.
KEEPALIVE_S = 15.0
# While no event arrives, the run's row is read this often (a worker that died, a log
# that was lost, a run deleted).
ROW_CHECK_S = 5.0
# A stream ends after this long; the client reconnects with Last-Event-ID.
MAX_STREAM_S = 600.0
RETRY_MS = 2000
DONE_ID = "done"


# An open stream holds one of its user's leases in the shared cache, renewed while it lives
# (each row check); a stream whose process died gives its lease back after this long.
LEASE_S = 60
TOO_MANY_STREAMS = (
    "Too many open event streams: the limit is {limit:,} at once per person. "
    "Close one (another tab or client) and try again."
)


class StreamLease:
    """One of a user's open event streams, counted across every web process."""

    def __init__(self, key: str, token: str) -> None:
        self.key, self.token = key, token

    @classmethod
    def take(cls, user_id: Any) -> StreamLease | None:
        """A free lease of the user's STREAMS_PER_USER, or None when all are held."""
        token = secrets.token_hex(8)
        for slot in range(settings.STREAMS_PER_USER):
            key = f"stream-lease:{user_id}:{slot}"
            if cache.add(key, token, timeout=LEASE_S):  # atomic: one stream per lease
                return cls(key, token)
        return None

    def renew(self) -> None:
        cache.touch(self.key, LEASE_S)

    def release(self) -> None:
        if cache.get(self.key) == self.token:
            cache.delete(self.key)


class _Leased:
    """A stream body that gives its lease back when the response is closed (Django calls
    `close`, streamed or not: a client that left, a stream that ended)."""

    def __init__(self, body: Any, lease: StreamLease) -> None:
        self.body, self.lease = body, lease

    def close(self) -> None:
        self.lease.release()
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


class _LeasedSync(_Leased):
    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)


class _LeasedAsync(_Leased):
    def __aiter__(self) -> AsyncIterator[bytes]:
        return aiter(self.body)


def response(request: HttpRequest, run: AgentRun) -> HttpResponse:
    """The event stream of `run`, which the caller has checked the user may read."""
    last_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or None
    if last_id == DONE_ID and run.finished:
        return HttpResponse(status=204)
    if last_id is not None and last_id != DONE_ID and not events.valid_id(last_id):
        return JsonResponse(
            {"detail": "Last-Event-ID is not the id of an event this stream sent."}, status=400
        )
    lease = StreamLease.take(request.user.pk)
    if lease is None:
        refused = JsonResponse(
            {"detail": TOO_MANY_STREAMS.format(limit=settings.STREAMS_PER_USER), "limit": "streams"},
            status=429,
        )
        refused["Retry-After"] = str(LEASE_S)
        return refused
    body: Any
    if isinstance(request, ASGIRequest):
        body = _LeasedAsync(_serve_async(run.pk, _plan(last_id), lease, request.user), lease)
    else:
        body = _LeasedSync(_serve_sync(run.pk, _plan(last_id), lease, request.user), lease)
    reply = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    reply["Cache-Control"] = "no-cache, no-transform"
    reply["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return reply


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


# The stream is planned once, as a generator of steps, and served by two drivers: one
# for ASGI (awaits the carrier, reads rows in a thread) and one for WSGI (blocks).
# A step is bytes to send, or a request whose answer is sent back into the plan:
# ("read", after, wait_s) -> list[Event]; ("row",) -> AgentRun | None; ("final",) -> bytes.
Step = Any


def _plan(last_id: str | None) -> Generator[Step, Any, None]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    started = time.monotonic()
    cursor = None if last_id == DONE_ID else last_id
    backlog = yield ("read", cursor, 0.0)
    if not backlog:
        run = yield ("row",)
        if run is None or run.finished:
            yield (yield ("final",))
            return
        # Nothing logged yet (queued), or the log expired: say where the run stands.
        yield frame("status", {"status": run.status, "label": run.get_status_display()})
    checked = time.monotonic()
    while True:
        batch = backlog or (yield ("read", cursor, min(KEEPALIVE_S, ROW_CHECK_S)))
        backlog = []
        for event in batch:
            if event.type == "done":
                yield (yield ("final",))
                return
            cursor = event.id
            yield frame(event.type, event.data, event.id)
        now = time.monotonic()
        if not batch:
            yield b": keep-alive\n\n"
        if now - checked >= ROW_CHECK_S:
            checked = now
            run = yield ("row",)
            if run is None or run.finished:
                # Give the worker's last events a moment to land, then end on the row.
                for event in (yield ("read", cursor, 0.2)):
                    if event.type != "done":
                        yield frame(event.type, event.data, event.id)
                yield (yield ("final",))
                return
        if now - started >= MAX_STREAM_S:
            return


async def _serve_async(
    run_id: Any, plan: Generator[Step, Any, None], lease: StreamLease, user: Any
) -> AsyncIterator[bytes]:
    answer: Any = None
    while True:
        try:
            step = plan.send(answer)
        except StopIteration:
            return
        answer = None
        if isinstance(step, bytes):
            yield step
        elif step[0] == "read":
            answer = await events.read(run_id, step[1], wait_s=step[2])
        elif step[0] == "row":
            answer = await sync_to_async(_closing(_row))(run_id, lease, user)
        else:
            answer = await sync_to_async(_closing(_done))(run_id, user)


def _serve_sync(
    run_id: Any, plan: Generator[Step, Any, None], lease: StreamLease, user: Any
) -> Iterator[bytes]:
    answer: Any = None
    loop = asyncio.new_event_loop()  # this stream's own, for the carrier's reads
    try:
        while True:
            try:
                step = plan.send(answer)
            except StopIteration:
                return
            answer = None
            if isinstance(step, bytes):
                yield step
            elif step[0] == "read":
                answer = loop.run_until_complete(events.read(run_id, step[1], wait_s=step[2]))
            elif step[0] == "row":
                answer = _row(run_id, lease, user)
            else:
                answer = _done(run_id, user)
    finally:
        loop.run_until_complete(events.aclose())
        loop.close()


def _closing(read: Any) -> Any:
    """`read`, then close this thread's connection: an open stream must not hold one
    between its reads (a hundred streams would be a hundred idle connections)."""

    def wrapped(*args: Any) -> Any:
        try:
            return read(*args)
        finally:
            connection.close()

    return wrapped


def _row(run_id: Any, lease: StreamLease, user: Any) -> AgentRun | None:
    """The run as its reader may still see it: None once it is deleted, or once its thread
    was made private or its reader left the project (the stream then ends, saying no more)."""
    lease.renew()  # the stream is alive: it keeps its lease
    return runs_visible_to(user).select_related(None).filter(pk=run_id).only("id", "status").first()


def _done(run_id: Any, user: Any) -> bytes:
    from agents.api import RunOut

    run = runs_visible_to(user).filter(pk=run_id).first()
    if run is None:
        detail = "The run was deleted, or it is no longer shared with you."
        return frame("done", {"run": None, "detail": detail}, DONE_ID)
    return frame("done", {"run": RunOut(run).data}, DONE_ID)
