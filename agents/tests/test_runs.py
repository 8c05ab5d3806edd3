"""Agent runs end to end in the service: Gemini through the fake server, the breaker,
fallback, token budgets and the citation check."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from agents import services
from agents.models import AgentRun, RunStatus
from agents.providers.base import Citation
from agents.tests.fake_gemini import FakeGemini, hang, reply_json, reply_text, status
from documents.models import Chunk, Document
from projects.models import Project

pytestmark = pytest.mark.django_db

TEXT = (
    "Honeybees communicate the location of food with a waggle dance. "
    "The angle of the dance encodes the direction relative to the sun. "
    "Its duration encodes the distance to the flowers."
)


@pytest.fixture
def doc(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any, settings: Any
) -> Document:
    settings.LLM_PROVIDER = "offline"
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_api.post(
            "/api/v1/documents/", {"project": str(project.pk), "title": "Bees", "text": TEXT}, format="json"
        )
    return Document.objects.get(pk=response.json()["id"])


def ask(
    client: APIClient,
    project: Project,
    capture: Any,
    question: str = "How do bees share where food is?",
    **extra: Any,
) -> AgentRun:
    with capture(execute=True):
        response = client.post(
            "/api/v1/runs/",
            {"project": str(project.pk), "kind": "ask", "question": question, **extra},
            format="json",
        )
    assert response.status_code == 201, response.content
    return AgentRun.objects.get(pk=response.json()["id"])


GOOD = {
    "answer": "They dance [1].",
    "answered": True,
    "citations": [{"passage": 1, "quote": "Honeybees communicate the location of food with a waggle dance."}],
}


def test_gemini_answer_is_stored_with_verified_citations_and_token_usage(
    auth_api: APIClient,
    project: Project,
    doc: Document,
    gemini_settings: Any,
    fake_gemini: FakeGemini,
    django_capture_on_commit_callbacks: Any,
) -> None:
    fake_gemini.push(reply_json(GOOD, input_tokens=120, output_tokens=30))
    run = ask(auth_api, project, django_capture_on_commit_callbacks)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.provider, run.model, run.degraded) == ("gemini", "gemini-test", False)
    assert run.input_tokens == 120
    assert run.output_tokens >= 30
    [citation] = run.citations
    assert doc.text[citation["start"] : citation["end"]] == citation["quote"]


def test_a_citation_gemini_invented_is_dropped_and_counted(
    auth_api: APIClient,
    project: Project,
    doc: Document,
    gemini_settings: Any,
    fake_gemini: FakeGemini,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invented = {**GOOD, "citations": [*GOOD["citations"], {"passage": 1, "quote": "Bees vote by humming."}]}
    fake_gemini.push(reply_json(invented))
    run = ask(auth_api, project, django_capture_on_commit_callbacks)
    assert run.status == RunStatus.SUCCEEDED
    assert len(run.citations) == 1
    assert run.output["dropped_citations"] == 1


@pytest.mark.parametrize(
    ("behaviour", "reason_part"),
    [
        (status(500), "unavailable"),
        (status(429), "unavailable"),
        (hang(3), "unavailable"),
        (reply_text("this is not json"), "failed"),
    ],
)
def test_provider_failures_fall_back_to_offline_and_say_so(
    auth_api: APIClient,
    project: Project,
    doc: Document,
    gemini_settings: Any,
    fake_gemini: FakeGemini,
    django_capture_on_commit_callbacks: Any,
    behaviour: Any,
    reason_part: str,
) -> None:
    fake_gemini.always(behaviour)
    run = ask(auth_api, project, django_capture_on_commit_callbacks)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.provider == "offline"
    assert run.degraded is True
    assert reason_part in run.degraded_reason
    assert run.citations
    assert auth_api.get(f"/api/v1/runs/{run.pk}/").json()["degraded_reason"] == run.degraded_reason


@pytest.mark.parametrize("behaviour", [status(500), hang(3), reply_text("{broken")])
def test_without_fallback_a_failing_provider_fails_the_run_with_a_reason(
    auth_api: APIClient,
    project: Project,
    doc: Document,
    gemini_settings: Any,
    fake_gemini: FakeGemini,
    django_capture_on_commit_callbacks: Any,
    behaviour: Any,
) -> None:
    gemini_settings.BREAKER_FALLBACK = False
    fake_gemini.always(behaviour)
    run = ask(auth_api, project, django_capture_on_commit_callbacks)
    assert run.status == RunStatus.FAILED
    assert run.error
    assert run.finished_at is not None


def test_open_circuit_fails_fast_without_calling_gemini(
    auth_api: APIClient,
    project: Project,
    doc: Document,
    gemini_settings: Any,
    fake_gemini: FakeGemini,
    django_capture_on_commit_callbacks: Any,
) -> None:
    fake_gemini.always(status(503))
    for _ in range(2):  # BREAKER_FAILURE_THRESHOLD
        ask(auth_api, project, django_capture_on_commit_callbacks)
    calls = fake_gemini.request_count
    run = ask(auth_api, project, django_capture_on_commit_callbacks)
    assert fake_gemini.request_count == calls
    assert run.degraded is True
    assert "circuit open" in run.degraded_reason


def test_spent_token_budget_is_a_429_unless_offline_is_allowed(
    auth_api: APIClient,
    user: Any,
    project: Project,
    doc: Document,
    gemini_settings: Any,
    fake_gemini: FakeGemini,
    django_capture_on_commit_callbacks: Any,
) -> None:
    gemini_settings.TOKEN_BUDGETS = {"free": 100, "pro": 10_000}
    fake_gemini.always(reply_json(GOOD, input_tokens=90, output_tokens=20))
    first = ask(auth_api, project, django_capture_on_commit_callbacks)
    assert first.provider == "gemini"
    assert services.tokens_used_this_month(user=user, provider="gemini") >= 110

    response = auth_api.post(
        "/api/v1/runs/", {"project": str(project.pk), "kind": "ask", "question": "Again?"}, format="json"
    )
    assert response.status_code == 429
    assert response.json()["limit"] == "llm_tokens_per_month"
    assert int(response["Retry-After"]) > 0
    assert AgentRun.objects.count() == 1

    calls = fake_gemini.request_count
    offline = ask(auth_api, project, django_capture_on_commit_callbacks, allow_offline=True)
    assert offline.status == RunStatus.SUCCEEDED
    assert offline.provider == "offline"
    assert fake_gemini.request_count == calls

    user.tier = "pro"
    user.save(update_fields=["tier"])
    assert ask(auth_api, project, django_capture_on_commit_callbacks).provider == "gemini"


def test_citation_check_drops_wrong_spans_quotes_and_chunks(doc: Document) -> None:
    chunk = Chunk.objects.filter(document=doc).first()
    assert chunk is not None
    sentence = "The angle of the dance encodes the direction relative to the sun."
    start = doc.text.index(sentence)
    right = Citation(
        document_id=str(doc.pk), chunk_id=chunk.pk, start=start, end=start + len(sentence), quote=sentence
    )
    wrong = [
        Citation(
            document_id=str(doc.pk),
            chunk_id=chunk.pk,
            start=start + 1,
            end=start + len(sentence),
            quote=sentence,
        ),
        Citation(
            document_id=str(doc.pk),
            chunk_id=chunk.pk,
            start=start,
            end=start + len(sentence),
            quote="The angle is wrong.",
        ),
        Citation(
            document_id=str(doc.pk),
            chunk_id=chunk.pk + 999,
            start=start,
            end=start + len(sentence),
            quote=sentence,
        ),
        Citation(
            document_id=str(doc.pk), chunk_id=chunk.pk, start=len(doc.text), end=len(doc.text) + 5, quote="x"
        ),
        Citation(
            document_id="00000000-0000-0000-0000-000000000000",
            chunk_id=chunk.pk,
            start=start,
            end=start + len(sentence),
            quote=sentence,
        ),
    ]
    kept, dropped = services.verify_citations([right, *wrong])
    assert dropped == len(wrong)
    assert kept == [
        {
            "document": str(doc.pk),
            "chunk": chunk.pk,
            "start": start,
            "end": start + len(sentence),
            "quote": sentence,
            "location": None,  # pasted text has no pages or sections
        }
    ]


def test_run_statuses_move_through_retrieving_and_generating(
    auth_api: APIClient,
    project: Project,
    doc: Document,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    seen: list[str] = []
    original = services._call

    def spy(run: AgentRun, passages: Any, history: Any) -> Any:
        seen.append(AgentRun.objects.get(pk=run.pk).status)
        return original(run, passages, history)

    monkeypatch.setattr(services, "_call", spy)
    run = ask(auth_api, project, django_capture_on_commit_callbacks)
    assert seen == [RunStatus.GENERATING]
    assert run.status == RunStatus.SUCCEEDED


@pytest.fixture(autouse=True)
def _closed_breaker() -> None:
    cache.clear()
