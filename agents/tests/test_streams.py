"""A run's Server-Sent Events: order, resume, the end, who may listen, and a real
ASGI server that passes each event on while the run is still going."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from agents import events, streams
from agents.models import AgentRun, RunStatus
from agents.tests.factories import AgentRunFactory
from projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _file_events(settings: Any, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path


@pytest.fixture
def api_token(user: Any) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(user))


def parse(body: bytes) -> list[dict[str, Any]]:
    frames = []
    for block in body.decode().split("\n\n"):
        frame: dict[str, Any] = {}
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(": ")
            frame[field] = json.loads(value) if field == "data" else value
        if "event" in frame:
            frames.append(frame)
    return frames


def stream(client: Client | APIClient, run: AgentRun, path: str = "/runs/{}/events", **headers: Any) -> Any:
    response = client.get(path.format(run.pk), HTTP_ACCEPT="text/event-stream", **headers)
    return response


def test_a_finished_run_streams_its_final_state_and_ends(owner_client: Client, project: Project) -> None:
    run = AgentRunFactory(
        project=project, status=RunStatus.SUCCEEDED, answer="Ada did [1].", output={"answered": True}
    )
    response = stream(owner_client, run)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"].startswith("no-cache")
    frames = parse(b"".join(response.streaming_content))
    assert [f["event"] for f in frames] == ["done"]
    assert frames[0]["id"] == "done"
    assert frames[0]["data"]["run"]["answer"] == "Ada did [1]."
    assert frames[0]["data"]["run"]["answered"] is True


def test_the_log_is_replayed_in_order_then_done_carries_the_row(
    owner_client: Client, project: Project
) -> None:
    run = AgentRunFactory(project=project, status=RunStatus.GENERATING)
    events.publish(run.pk, "status", status="generating", label="Generating")
    events.publish(run.pk, "delta", text="Ada ")
    events.publish(run.pk, "delta", text="designed it.")
    AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, answer="Ada designed it.", output={"answered": True}
    )
    events.publish(run.pk, "done", status="succeeded")
    frames = parse(b"".join(stream(owner_client, run).streaming_content))
    assert [f["event"] for f in frames] == ["status", "delta", "delta", "done"]
    ids = [f["id"] for f in frames]
    assert ids[-1] == "done" and len(set(ids)) == 4
    assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == "Ada designed it."
    assert frames[-1]["data"]["run"]["status"] == "succeeded"


def test_last_event_id_resumes_after_it_and_after_done_there_is_nothing(
    owner_client: Client, project: Project
) -> None:
    run = AgentRunFactory(project=project, status=RunStatus.SUCCEEDED, output={"answered": True})
    for text in ["one ", "two ", "three"]:
        events.publish(run.pk, "delta", text=text)
    events.publish(run.pk, "done", status="succeeded")

    async def first_event() -> events.Event:
        try:
            return (await events.read(run.pk, None, wait_s=0))[0]
        finally:
            await events.aclose()

    first = asyncio.run(first_event())
    frames = parse(b"".join(stream(owner_client, run, HTTP_LAST_EVENT_ID=first.id).streaming_content))
    assert [f["data"].get("text") for f in frames if f["event"] == "delta"] == ["two ", "three"]
    assert stream(owner_client, run, HTTP_LAST_EVENT_ID="done").status_code == 204
    for bad in [":", "-1", "12-x", "x" * 50]:
        refused = stream(owner_client, run, HTTP_LAST_EVENT_ID=bad)
        assert refused.status_code == 400
        assert "Last-Event-ID" in refused.json()["detail"]


def test_a_live_run_streams_events_as_they_are_published(owner_client: Client, project: Project) -> None:
    run = AgentRunFactory(project=project, status=RunStatus.QUEUED)

    def worker() -> None:
        events.publish(run.pk, "status", status="generating", label="Generating")
        events.publish(run.pk, "delta", text="Hello")
        events.publish(run.pk, "reset")
        events.publish(run.pk, "delta", text="Hi")
        events.publish(run.pk, "done", status="failed")

    pieces = iter(stream(owner_client, run).streaming_content)
    # The retry line, then the row's status: the stream is open and has read the empty log.
    opening = next(pieces) + next(pieces)
    thread = threading.Thread(target=worker)
    thread.start()
    frames = parse(opening + b"".join(pieces))
    thread.join()
    # Nothing was logged when the stream opened: the row's status comes first, without an id.
    assert frames[0] == {"event": "status", "data": {"status": "queued", "label": "Queued"}}
    assert [f["event"] for f in frames[1:]] == ["status", "delta", "reset", "delta", "done"]


def test_a_run_deleted_while_streaming_ends_the_stream(
    owner_client: Client, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "ROW_CHECK_S", 0.2)
    run = AgentRunFactory(project=project, status=RunStatus.GENERATING)
    events.publish(run.pk, "delta", text="partial")
    response = stream(owner_client, run)
    pieces = iter(response.streaming_content)
    assert next(pieces).startswith(b"retry:")
    AgentRun.objects.filter(pk=run.pk).delete()
    frames = parse(b"".join(pieces))
    assert frames[0]["data"] == {"text": "partial"}
    assert frames[-1]["event"] == "done"
    assert frames[-1]["data"]["run"] is None


def test_only_members_may_listen(project: Project) -> None:
    run = AgentRunFactory(project=project, status=RunStatus.SUCCEEDED)
    stranger = Client()
    stranger.force_login(UserFactory())
    assert stream(stranger, run).status_code == 404
    anonymous = stream(Client(), run)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    api = APIClient()
    response = api.get(f"/api/v1/runs/{run.pk}/events/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_the_api_stream_takes_a_bearer_token(project: Project, api_token: str) -> None:
    run = AgentRunFactory(
        project=project, status=RunStatus.SUCCEEDED, answer="Yes.", output={"answered": False}
    )
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token}")
    response = bearer.get(f"/api/v1/runs/{run.pk}/events/", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    frames = parse(b"".join(response.streaming_content))
    assert frames[-1]["data"]["run"]["answered"] is False
    other = APIClient()
    other.force_authenticate(UserFactory())
    missing = other.get(f"/api/v1/runs/{run.pk}/events/", HTTP_ACCEPT="text/event-stream")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"
    assert missing.json() == {"detail": "Not found."}


@pytest.mark.django_db(transaction=True)
def test_a_real_asgi_server_passes_each_event_on_while_the_run_goes_on(
    project: Project, tmp_path: Path, api_token: str
) -> None:
    """uvicorn workers under gunicorn, a client reading the raw socket: every delta
    arrives before the next one is even published, and the stream holds no thread."""
    from tests.servers import event_stream, web_server
    from tests.worker import database_url

    run = AgentRunFactory(project=project, status=RunStatus.GENERATING)
    env = {"DATABASE_URL": database_url(), "DOCENT_DATA_DIR": str(tmp_path)}
    with (
        web_server(env, tmp_path / "web.log") as base,
        event_stream(base, run.pk, api_token) as (sock, received),
    ):
        delays = []
        for number in range(5):
            sent = time.monotonic()
            events.publish(run.pk, "delta", text=f"piece {number}")
            while f"piece {number}".encode() not in received:
                received += sock.recv(65536)
            delays.append(time.monotonic() - sent)
        AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, answer="done")
        events.publish(run.pk, "done", status="succeeded")
        while b"event: done" not in received:
            received += sock.recv(65536)
    assert max(delays) < 1.0, delays
    body = received.split(b"\r\n\r\n", 1)[1]
    assert b'"answer":"done"' in body


def close(response: Any) -> None:
    """What the server does when a stream ends, without closing the test's database connection."""
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def test_a_person_holds_at_most_the_allowed_streams_at_once(
    owner_client: Client, project: Project, user: Any, settings: Any, api_token: str
) -> None:
    """Open streams are counted per person over pages and API alike; closing one frees it."""
    settings.STREAMS_PER_USER = 2
    run = AgentRunFactory(project=project, status=RunStatus.GENERATING)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token}")
    first = stream(owner_client, run)
    second = stream(api, run, "/api/v1/runs/{}/events/")
    assert (first.status_code, second.status_code) == (200, 200)
    refused = stream(api, run, "/api/v1/runs/{}/events/")
    assert refused.status_code == 429
    assert refused.json()["limit"] == "streams"
    assert "the limit is 2 at once" in refused.json()["detail"]
    assert int(refused["Retry-After"]) > 0
    assert stream(owner_client, run).status_code == 429
    # Someone else is not affected.
    other = UserFactory()
    project.memberships.create(user=other, role="viewer")
    other_client = Client()
    other_client.force_login(other)
    other_stream = stream(other_client, run)
    assert other_stream.status_code == 200
    close(other_stream)
    # A stream that ends gives its place back.
    close(first)
    again = stream(owner_client, run)
    assert again.status_code == 200
    for response in (second, again):
        close(response)


def test_a_lease_of_a_stream_whose_process_died_expires(user: Any, settings: Any) -> None:
    settings.STREAMS_PER_USER = 1
    held = streams.StreamLease.take(user.pk)
    assert held is not None
    assert streams.StreamLease.take(user.pk) is None
    from django.core.cache import cache

    cache.delete(held.key)  # what the lease's expiry does when nobody renews it
    assert streams.StreamLease.take(user.pk) is not None


def test_a_stream_ends_without_the_answer_once_its_thread_is_made_private(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member watching a shared thread's turn loses it when the starter makes the thread
    private: the stream ends on its next check, and its `done` carries no answer."""
    from agents.models import Thread
    from conftest import make_project

    monkeypatch.setattr(streams, "ROW_CHECK_S", 0.2)
    starter, watcher = UserFactory(), UserFactory()
    project = make_project(user, editor=starter, viewer=watcher)
    thread = Thread.objects.create(project=project, created_by=starter, title="Pumps?", shared=True)
    run = AgentRunFactory(project=project, created_by=starter, thread=thread, status=RunStatus.GENERATING)
    events.publish(run.pk, "delta", text="The pump ")
    client = Client()
    client.force_login(watcher)
    response = stream(client, run)
    assert response.status_code == 200
    pieces = iter(response.streaming_content)
    assert next(pieces).startswith(b"retry:")

    Thread.objects.filter(pk=thread.pk).update(shared=False)
    AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, answer="The pump is private.")
    body = b"".join(pieces)

    frames = parse(body)
    assert frames[0]["data"] == {"text": "The pump "}
    assert frames[-1]["event"] == "done" and frames[-1]["data"]["run"] is None
    assert b"private." not in body
    assert stream(client, run).status_code == 404, "and it cannot be opened again"
