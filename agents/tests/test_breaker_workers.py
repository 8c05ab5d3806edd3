"""The circuit breaker's state is shared by every worker process (through Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunStatus
from agents.tests.fake_gemini import FakeGemini, status
from conftest import api_for, make_project
from documents.models import Document, DocumentStatus
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_circuit_opened_by_one_worker_makes_another_fail_over_without_calling_gemini(
    tmp_path: Path, fake_gemini: FakeGemini
) -> None:
    fake_gemini.always(status(503))
    env = {
        "DOCENT_LLM_PROVIDER": "gemini",
        "GEMINI_API_KEY": "test-key",
        "DOCENT_GEMINI_BASE_URL": fake_gemini.url,
        "DOCENT_GEMINI_MODEL": "gemini-test",
        "DOCENT_LLM_MAX_RETRIES": "0",
        "DOCENT_LLM_TIMEOUT_S": "2",
        "DOCENT_BREAKER_FAILURES": "2",
        "DOCENT_BREAKER_COOLDOWN_S": "600",
        "DOCENT_BREAKER_FALLBACK": "true",
    }
    owner = UserFactory()
    project = make_project(owner)
    client = api_for(owner)

    def ask(question: str, log: Path) -> AgentRun:
        response = client.post(
            "/api/v1/runs/",
            {"project": str(project.pk), "kind": "ask", "question": question},
            format="json",
        )
        assert response.status_code == 201
        wait_for(lambda: AgentRun.objects.get(pk=response.json()["id"]).finished, timeout=180, log=log)
        return AgentRun.objects.get(pk=response.json()["id"])

    with celery_worker(tmp_path, name="a", extra_env=env):
        doc = client.post(
            "/api/v1/documents/",
            {
                "project": str(project.pk),
                "title": "Owls",
                "text": "Owls hunt at night. Their feathers muffle sound.",
            },
            format="json",
        ).json()
        wait_for(
            lambda: Document.objects.get(pk=doc["id"]).status == DocumentStatus.READY,
            timeout=180,
            log=tmp_path / "a.log",
        )
        for question in ("How do owls hunt?", "Why are owls quiet?"):
            run = ask(question, tmp_path / "a.log")
            assert run.degraded and "circuit open" not in run.degraded_reason
    calls = fake_gemini.request_count
    assert calls == 2

    with celery_worker(tmp_path, name="b", extra_env=env):
        run = ask("When do owls hunt?", tmp_path / "b.log")
    assert run.status == RunStatus.SUCCEEDED
    assert run.degraded is True
    assert "circuit open" in run.degraded_reason
    assert fake_gemini.request_count == calls, "worker b called Gemini although worker a opened the circuit"


@pytest.fixture(autouse=True)
def _gemini_client_in_this_process(settings: Any) -> None:
    settings.LLM_PROVIDER = "offline"  # the test process itself never calls a provider
