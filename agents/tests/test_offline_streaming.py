"""The offline answer streams through a run's events sentence by sentence, with a short
pause between sentences, as a model's answer does (issue 23)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents import events, services
from agents.models import AgentRun, RunKind, RunStatus
from agents.providers import offline
from documents import services as document_services
from projects.models import Project

pytestmark = pytest.mark.django_db

NOTES = (
    "Maintenance notes for the Brightwater pump.\n\n"
    "The Brightwater pump was installed at the river station in 2019. "
    "It was designed by Ada Okafor at Hydrowerk. "
    "The intake filter must be cleaned every two weeks during the summer."
)


def _millis(event_id: str) -> int:
    return int(event_id.split("-")[0])


def test_an_offline_answer_arrives_as_one_delta_per_sentence_spread_over_time(
    user: Any, project: Project, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.LLM_PROVIDER = "offline"
    assert offline.STREAM_PAUSE_S >= 0.03
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_create(user=user, project=project, title="Pump notes", text=NOTES)
    run = services.run_create(user=user, project=project, kind=RunKind.ASK, question="Who designed the pump?")

    assert services.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED

    run = AgentRun.objects.get(pk=run.pk)
    assert run.answered and "Ada Okafor" in run.answer
    log = asyncio.run(events.read(run.pk, None, wait_s=0))
    deltas = [event for event in log if event.type == "delta"]
    assert len(deltas) >= 2
    assert "".join(event.data["text"] for event in deltas) == run.answer
    # Each sentence after the first was published a pause after the one before.
    gaps = [_millis(b.id) - _millis(a.id) for a, b in zip(deltas, deltas[1:], strict=False)]
    assert all(gap >= int(offline.STREAM_PAUSE_S * 1000) - 5 for gap in gaps), gaps


@pytest.mark.django_db(transaction=True)
def test_a_client_of_the_real_event_stream_receives_the_offline_answer_in_pieces(
    user: Any, project: Project, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `curl -N` sees it: a real web server (gunicorn + uvicorn) streams the run's events
    while the offline provider writes the answer; the sentences reach the client one by
    one, spread over time, not as one piece at the end."""
    from rest_framework_simplejwt.tokens import AccessToken

    from tests.servers import event_stream, web_server
    from tests.worker import database_url

    settings.LLM_PROVIDER = "offline"
    settings.DATA_DIR = tmp_path
    # Committed rows (the server is another process); this test runs the run itself, once
    # the stream is open, in the worker's place.
    monkeypatch.setattr("agents.tasks.enqueue_run", lambda pk: None)
    document_services.document_create(user=user, project=project, title="Pump notes", text=NOTES)
    run = services.run_create(user=user, project=project, kind=RunKind.ASK, question="Who designed the pump?")
    token = str(AccessToken.for_user(user))
    env = {"DATABASE_URL": database_url(), "DOCENT_DATA_DIR": str(tmp_path)}
    with web_server(env, tmp_path / "web.log") as base, event_stream(base, run.pk, token) as (sock, received):
        # The socket is read on a thread (no database there) while this one runs the run.
        arrivals: list[tuple[float, bytes]] = []

        def read_until_done() -> None:
            data = b""
            while b"event: done" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                arrivals.append((time.monotonic(), chunk))

        reader = threading.Thread(target=read_until_done)
        reader.start()
        assert services.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
        reader.join(timeout=30)
        assert not reader.is_alive()

    run = AgentRun.objects.get(pk=run.pk)
    assert run.answered and "Ada Okafor" in run.answer
    # When each delta frame reached the client, and its text.
    seen: list[tuple[float, str]] = []
    for moment, chunk in arrivals:
        for block in chunk.decode().split("\n\n"):
            if "event: delta" in block:
                data = next(line for line in block.split("\n") if line.startswith("data: "))
                seen.append((moment, json.loads(data.removeprefix("data: "))["text"]))
    assert len(seen) >= 2, arrivals
    assert "".join(text for _, text in seen) == run.answer
    # Not one piece at the end: the last sentence reached the client a pause or more
    # after the first did.
    assert seen[-1][0] - seen[0][0] >= 0.5 * offline.STREAM_PAUSE_S * (len(seen) - 1)


def test_a_declined_run_keeps_the_sentence_that_matched_not_the_chunks_opening(
    user: Any, project: Project, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """run_execute stores the provider's nearest sentences; only a provider that gives none gets
    each passage's opening."""
    settings.LLM_PROVIDER = "offline"
    with django_capture_on_commit_callbacks(execute=True):
        doc = document_services.document_create(user=user, project=project, title="Pump notes", text=NOTES)
    run = services.run_create(
        user=user, project=project, kind=RunKind.ASK, question="What does the intake filter of the pump cost?"
    )

    assert services.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED

    run = AgentRun.objects.get(pk=run.pk)
    assert run.answered is False
    nearest = run.output["nearest"]
    assert nearest and nearest[0]["document"] == str(doc.pk)
    matched = nearest[0]
    assert matched["text"] != NOTES[:300]
    assert NOTES[matched["start"] : matched["end"]] == matched["text"]
