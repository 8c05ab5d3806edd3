"""A real Celery worker process on the default broker takes an upload to `ready`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunStatus
from conftest import api_for, make_project
from documents.models import Chunk, Document, DocumentStatus
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_ingests_an_upload_and_answers_a_question(tmp_path: Path, settings: Any) -> None:
    settings.LLM_PROVIDER = "offline"
    owner = UserFactory(tier="pro")  # it polls the API: stay inside the hourly allowance
    project = make_project(owner)
    client = api_for(owner)
    text = (
        b"Glaciers carve U-shaped valleys as they slide downhill. "
        b"Moraines are ridges of debris left behind by retreating glaciers.\n"
    )
    with celery_worker(tmp_path, extra_env={"DOCENT_LLM_PROVIDER": "offline"}) as proc:
        upload = SimpleUploadedFile("glaciers.md", text, content_type="text/markdown")
        response = client.post(
            "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
        )
        assert response.status_code == 201
        doc_id = response.json()["id"]

        def ready() -> bool:
            assert proc.poll() is None, "the worker died"
            return client.get(f"/api/v1/documents/{doc_id}/").json()["status"] in {"ready", "failed"}

        wait_for(ready, timeout=180, interval=1.0, log=tmp_path / "worker.log")
        doc = Document.objects.get(pk=doc_id)
        assert doc.status == DocumentStatus.READY, doc.error
        assert Chunk.objects.filter(document=doc).count() == doc.chunk_count > 0

        run = client.post(
            "/api/v1/runs/",
            {"project": str(project.pk), "kind": "ask", "question": "What are moraines?"},
            format="json",
        ).json()
        wait_for(
            lambda: AgentRun.objects.get(pk=run["id"]).finished, timeout=120, log=tmp_path / "worker.log"
        )
        body = client.get(f"/api/v1/runs/{run['id']}/").json()
        assert body["status"] == RunStatus.SUCCEEDED, body["error"]
        assert body["citations"]
        assert "Moraines" in body["citations"][0]["quote"]
