"""Nothing is lost when parts fail: dead workers, an unreachable broker, database or cache."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunStatus
from conftest import api_for, make_project
from documents import chunking
from documents.models import Chunk, Document, DocumentStatus
from tests import stack
from tests.servers import call, web_server
from tests.worker import broker_down, celery_worker, database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FAST_SWEEP = {"DOCENT_SWEEP_INTERVAL_S": "1", "DOCENT_STUCK_AFTER_S": "3", "DOCENT_LLM_PROVIDER": "offline"}


def log_events(path: Path, message: str, document_id: str) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == message and entry.get("document_id") == document_id:
            events.append(entry)
    return events


def logged(path: Path, message: str) -> bool:
    return path.exists() and bool(_events(path, message))


def ingest_jobs_in_flight() -> int:
    """Ingest jobs the Redis broker holds: queued, or handed out and not yet acknowledged.

    Tasks are acknowledged late, so a running job counts, and so does a killed worker's
    until the broker hands it out again. The jobs carry no priority: one list per queue.
    """
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)  # the broker's server and database
    try:
        with client.pipeline() as pipe:  # MULTI: both keys as of one instant
            queued, unacked = pipe.lrange("ingest", 0, -1).hvals("unacked").execute()
    finally:
        client.close()
    messages = [json.loads(raw) for raw in queued] + [json.loads(raw)[0] for raw in unacked]
    return sum(message["headers"].get("task") == "documents.ingest" for message in messages)


def steadily(predicate: Any, polls: int = 3) -> Any:
    """A predicate for wait_for that holds once `predicate` held on `polls` polls in a row:
    a job moves between the broker's keys in steps that one look could fall between."""
    streak = 0

    def check() -> bool:
        nonlocal streak
        streak = streak + 1 if predicate() else 0
        return streak >= polls

    return check


def test_upload_and_run_survive_an_unreachable_broker(tmp_path: Path, settings: Any) -> None:
    settings.LLM_PROVIDER = "offline"
    owner = UserFactory()
    project = make_project(owner)
    client = api_for(owner)
    with broker_down():
        started = time.monotonic()
        response = client.post(
            "/api/v1/documents/",
            {
                "project": str(project.pk),
                "title": "Tides",
                "text": "The moon's gravity raises ocean tides twice a day.",
            },
            format="json",
        )
        assert response.status_code == 201
        assert time.monotonic() - started < 15, "a dead broker must not hang the request"
    doc_id = response.json()["id"]
    assert Document.objects.get(pk=doc_id).status == DocumentStatus.PENDING

    # The broker is back: the periodic sweeper re-enqueues what was left pending.
    with celery_worker(tmp_path, beat=True, extra_env=FAST_SWEEP) as proc:
        wait_for(
            lambda: Document.objects.get(pk=doc_id).status == DocumentStatus.READY,
            timeout=180,
            log=tmp_path / "worker.log",
        )
        assert proc.poll() is None
        with broker_down():
            run = client.post(
                "/api/v1/runs/",
                {"project": str(project.pk), "kind": "ask", "question": "What causes tides?"},
                format="json",
            )
        assert run.status_code == 201
        wait_for(
            lambda: AgentRun.objects.get(pk=run.json()["id"]).finished,
            timeout=120,
            log=tmp_path / "worker.log",
        )
    assert AgentRun.objects.get(pk=run.json()["id"]).status == RunStatus.SUCCEEDED


def test_readyz_and_api_answer_503_when_the_database_is_down(tmp_path: Path) -> None:
    user = UserFactory()
    token = str(RefreshToken.for_user(user).access_token)
    env = {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/unreachable",
        "DOCENT_DATA_DIR": str(tmp_path),
    }
    with web_server(env, tmp_path / "web.log") as base:
        status, body, _ = call("GET", f"{base}/readyz")
        assert status == 503
        assert body["down"] == ["database"]
        assert call("GET", f"{base}/healthz")[0] == 200
        status, body, headers = call("GET", f"{base}/api/v1/projects/", token=token)
        assert status == 503
        assert "unavailable" in body["detail"]
        assert headers.get("Content-Type", "").startswith("application/json")
        status, body, _ = call(
            "POST", f"{base}/api/v1/auth/token", body={"email": user.email, "password": "x"}
        )
        assert status == 503
        assert "Traceback" not in str(body)


def test_readyz_names_the_cache_and_broker_when_valkey_is_down(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DOCENT_DATA_DIR": str(tmp_path),
    }
    with web_server(env, tmp_path / "web.log") as base:
        status, body, _ = call("GET", f"{base}/readyz")
        assert status == 503
        assert body["down"] == ["cache", "broker"]
        assert call("GET", f"{base}/healthz")[0] == 200


WORDS = [
    "glacier", "river", "delta", "basin", "sediment", "erosion", "plateau", "canyon", "moraine",
    "fjord", "estuary", "lagoon", "dune", "aquifer", "tributary", "watershed", "floodplain", "meander",
]  # fmt: skip


def survey(n: int, seed: int = 0) -> str:
    return " ".join(
        f"The {WORDS[(i + seed) % 18]} near site {i} shows {WORDS[(i * 7) % 18]} and "
        f"{WORDS[(i * 11 + seed) % 18]} patterns in survey {i * 3}."
        for i in range(n)
    )


def upload_batch(client: Any, project: Any, sizes: list[int], first: int = 0) -> list[str]:
    """Upload one text file per size (sentences), numbered from `first`; returns the document ids."""
    ids = []
    for k, n in enumerate(sizes, start=first):
        # Numbered, so no two files are the same bytes (a project refuses a duplicate).
        text = f"Survey file {k}. {survey(n, seed=k)}"
        upload = SimpleUploadedFile(f"survey-{k}.txt", text.encode(), content_type="text/plain")
        response = client.post(
            "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
        )
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def assert_ingested_exactly_once(ids: list[str], logs: list[Path]) -> None:
    """Every document ready, its chunks exactly what chunking gives, stored by one job once."""
    for doc_id in ids:
        doc = Document.objects.get(pk=doc_id)
        assert doc.status == DocumentStatus.READY, doc.error
        expected = chunking.chunk_text(
            doc.text, max_tokens=settings.CHUNK_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS
        )
        chunks = list(Chunk.objects.filter(document_id=doc_id).order_by("index"))
        assert len(chunks) == doc.chunk_count == len(expected)
        assert [c.index for c in chunks] == list(range(len(expected)))
        assert sum(len(log_events(log, "document ready", doc_id)) for log in logs) == 1, doc_id


def test_a_worker_killed_mid_batch_is_replaced_and_every_document_ends_ready_once(tmp_path: Path) -> None:
    owner = UserFactory(tier="pro")
    project = make_project(owner)
    client = api_for(owner)
    # A stale claim would take an hour: the new worker gets the killed one's message back
    # (visibility timeout 5 s) and resumes that job's own claims.
    env = {**FAST_SWEEP, "DOCENT_STUCK_AFTER_S": "3600", "DOCENT_BROKER_VISIBILITY_TIMEOUT_S": "5"}
    with celery_worker(tmp_path, extra_env=env, name="first") as first:
        # The big one first, so the batch is still embedding when the kill comes.
        ids = upload_batch(client, project, [6000] + [40] * 20)
        # Killed inside the embedding of a few hundred chunks: the model is loaded and at work.
        wait_for(
            lambda: (
                Document.objects.filter(pk__in=ids, status=DocumentStatus.PROCESSING).count() > 1
                and logged(tmp_path / "first.log", "loading embedding model")
            ),
            timeout=120,
            interval=0.05,
            log=tmp_path / "first.log",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    held = list(
        Document.objects.filter(pk__in=ids, status=DocumentStatus.PROCESSING).values_list("pk", flat=True)
    )
    assert len(held) > 1, "the kill came too late"
    assert not Chunk.objects.filter(document_id__in=held).exists()

    started = time.monotonic()
    with celery_worker(tmp_path, extra_env=env, beat=True, name="second"):
        wait_for(
            lambda: not Document.objects.filter(pk__in=ids).exclude(status=DocumentStatus.READY).exists(),
            timeout=600,
            log=tmp_path / "second.log",
        )
        # Any duplicate delivery (a job outlasting the visibility timeout) has run and found nothing.
        wait_for(steadily(lambda: ingest_jobs_in_flight() == 0), timeout=120, log=tmp_path / "second.log")
    assert time.monotonic() - started < 600
    assert_ingested_exactly_once(ids, [tmp_path / "first.log", tmp_path / "second.log"])
    # Resumed by the same job (its task id), not taken over as stale.
    resumed = {e["task_id"] for e in _events(tmp_path / "second.log", "task started")}
    killed = {e["task_id"] for e in _events(tmp_path / "first.log", "task started")}
    assert resumed & killed
    assert all(Document.objects.get(pk=pk).attempts == 2 for pk in held)


def _events(path: Path, message: str) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == message:
            found.append(entry)
    return found


def _mid_ingest(ids: list[str], log: Path) -> None:
    """Wait until documents are claimed and the model is at work on them."""
    wait_for(
        lambda: (
            Document.objects.filter(pk__in=ids, status=DocumentStatus.PROCESSING).exists()
            and logged(log, "loading embedding model")
        ),
        timeout=120,
        interval=0.05,
        log=log,
    )


def test_postgresql_restarted_mid_ingest_resumes_without_waiting_for_a_stale_claim(tmp_path: Path) -> None:
    """The database goes away under a job and comes back: its retry (same task id) resumes
    its own claims, and every document ends ready, stored once."""
    from django.db import connection

    owner = UserFactory(tier="pro")
    project = make_project(owner)
    client = api_for(owner)
    env = {**FAST_SWEEP, "DOCENT_STUCK_AFTER_S": "3600"}
    with celery_worker(tmp_path, extra_env=env, name="worker"):
        ids = upload_batch(client, project, [3000] + [40] * 10)
        _mid_ingest(ids, tmp_path / "worker.log")
        connection.close()
        stack.current().restart_postgres()  # a real restart: every connection is cut
        wait_for(
            lambda: not Document.objects.filter(pk__in=ids).exclude(status=DocumentStatus.READY).exists(),
            timeout=300,
            log=tmp_path / "worker.log",
        )
    assert_ingested_exactly_once(ids, [tmp_path / "worker.log"])


def test_valkey_restarted_mid_ingest_loses_no_document(tmp_path: Path) -> None:
    """The broker and cache go away under a job and come back (with what its append-only file
    kept): the worker reconnects and every document ends ready, stored once."""
    owner = UserFactory(tier="pro")
    project = make_project(owner)
    client = api_for(owner)
    env = {**FAST_SWEEP, "DOCENT_STUCK_AFTER_S": "3600", "DOCENT_BROKER_VISIBILITY_TIMEOUT_S": "5"}
    with celery_worker(tmp_path, extra_env=env, beat=True, name="worker"):
        ids = upload_batch(client, project, [3000] + [40] * 10)
        _mid_ingest(ids, tmp_path / "worker.log")
        stack.current().restart_valkey()
        more = upload_batch(client, project, [40] * 5, first=11)  # published to the restarted broker
        wait_for(
            lambda: (
                not Document.objects.filter(pk__in=ids + more).exclude(status=DocumentStatus.READY).exists()
            ),
            timeout=300,
            log=tmp_path / "worker.log",
        )
    assert_ingested_exactly_once(ids + more, [tmp_path / "worker.log"])


def test_two_workers_and_two_web_processes_ingest_200_documents_exactly(tmp_path: Path) -> None:
    # Pro: 200 documents within the hour is over the free tier's upload and API limits.
    owner = UserFactory(tier="pro")
    project = make_project(owner)
    token = str(RefreshToken.for_user(owner).access_token)
    texts = {
        f"Note {i}": " ".join(
            f"Observation {i}.{j}: sample {j} of batch {i} measured {i * j % 97} units of nitrate."
            for j in range(5 + i % 40)
        )
        for i in range(200)
    }
    env = {"DATABASE_URL": database_url(), "DOCENT_DATA_DIR": str(tmp_path), "DOCENT_LLM_PROVIDER": "offline"}
    with (
        web_server(env, tmp_path / "web1.log") as web1,
        web_server(env, tmp_path / "web2.log") as web2,
        celery_worker(tmp_path, name="w1", extra_env=env),
        celery_worker(tmp_path, name="w2", extra_env=env),
    ):
        for i, (title, text) in enumerate(texts.items()):
            base = web1 if i % 2 else web2
            status, body, _ = call(
                "POST",
                f"{base}/api/v1/documents/",
                token=token,
                body={"project": str(project.pk), "title": title, "text": text},
            )
            assert status == 201, body
        wait_for(
            lambda: (
                not Document.objects.filter(project=project).exclude(status=DocumentStatus.READY).exists()
            ),
            timeout=900,
            interval=1,
            log=tmp_path / "w1.log",
        )
    docs = list(Document.objects.filter(project=project))
    assert len(docs) == 200
    for doc in docs:
        expected = chunking.chunk_text(
            texts[doc.title], max_tokens=settings.CHUNK_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS
        )
        assert Chunk.objects.filter(document=doc).count() == doc.chunk_count == len(expected), doc.title
    workers_used = {
        name for name in ("w1", "w2") if "document ready" in (tmp_path / f"{name}.log").read_text()
    }
    assert workers_used == {"w1", "w2"}
