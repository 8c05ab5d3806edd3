"""Agent run API: create, poll, list, and the grounded answers they produce (offline provider)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import AgentRun, RunStatus
from conftest import api_for
from documents.models import Document
from projects.models import Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

VOLCANO = (
    "Volcanoes form where magma rises through the crust. "
    "Basaltic lava is runny and builds broad shield volcanoes. "
    "Andesitic magma is sticky and tends to erupt explosively. "
    "Mount Fuji is a stratovolcano in Japan that last erupted in 1707."
)
BREAD = (
    "Bread dough rises because yeast ferments sugars into carbon dioxide. "
    "Kneading develops gluten, which traps the gas. "
    "Sourdough relies on wild yeast and lactic acid bacteria."
)


@pytest.fixture
def documents(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any, settings: Any
) -> list[Document]:
    settings.LLM_PROVIDER = "offline"
    created = []
    for title, text in [("Volcanoes", VOLCANO), ("Baking", BREAD)]:
        with django_capture_on_commit_callbacks(execute=True):
            response = auth_api.post(
                "/api/v1/documents/",
                {"project": str(project.pk), "title": title, "text": text},
                format="json",
            )
        created.append(Document.objects.get(pk=response.json()["id"]))
    return created


def create_run(client: APIClient, capture: Any, **payload: Any) -> dict[str, Any]:
    with capture(execute=True):
        response = client.post("/api/v1/runs/", payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == RunStatus.QUEUED
    return client.get(f"/api/v1/runs/{response.json()['id']}/").json()


def test_ask_answers_with_citations_that_quote_the_exact_span(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="Why does bread dough rise?",
    )
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    assert run["provider"] == "offline"
    assert run["latency_ms"] is not None
    assert run["citations"]
    assert "yeast" in run["answer"].lower()
    for citation in run["citations"]:
        doc = Document.objects.get(pk=citation["document"])
        assert doc.text[citation["start"] : citation["end"]] == citation["quote"]
    assert {c["document"] for c in run["citations"]} == {str(documents[1].pk)}


def test_ask_says_so_when_the_documents_do_not_cover_the_question(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="What is the exchange rate of the Swiss franc to the yen?",
    )
    assert run["status"] == RunStatus.SUCCEEDED
    assert run["citations"] == []
    assert run["output"]["answered"] is False
    assert "can't answer" in run["answer"].lower() or "cannot answer" in run["answer"].lower()


def test_follow_up_run_continues_the_conversation(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    first = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="Which volcano is in Japan?",
    )
    second = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="When did it last erupt?",
        parent=first["id"],
    )
    assert second["parent"] == first["id"]
    assert second["status"] == RunStatus.SUCCEEDED
    assert "1707" in second["answer"]


def test_summarize_a_document_cites_its_sentences(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="summarize",
        document=str(documents[0].pk),
    )
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    assert run["answer"]
    assert run["citations"]
    assert all(c["document"] == str(documents[0].pk) for c in run["citations"])


def test_summarize_a_whole_project(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(auth_api, django_capture_on_commit_callbacks, project=str(project.pk), kind="summarize")
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    assert run["answer"]


def test_extract_stores_tags_on_the_document_and_filters_by_them(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="extract",
        document=str(documents[0].pk),
    )
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    output = run["output"]
    assert output["tags"] and output["keywords"]
    assert isinstance(output["entities"], list)
    detail = auth_api.get(f"/api/v1/documents/{documents[0].pk}/").json()
    assert detail["tags"] == output["tags"]
    tag = output["tags"][0]
    filtered = auth_api.get(f"/api/v1/documents/?project={project.pk}&tag={tag}").json()
    assert [d["id"] for d in filtered["results"]] == [str(documents[0].pk)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "poem"}, "kind"),
        ({"kind": "ask"}, "question"),
        ({"kind": "ask", "question": "   "}, "question"),
        ({"kind": "ask", "question": "x" * 4001}, "question"),
        ({"kind": "extract"}, "document"),
        ({"question": "why"}, "kind"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(
    auth_api: APIClient, project: Project, payload: dict[str, Any], field: str
) -> None:
    response = auth_api.post("/api/v1/runs/", {"project": str(project.pk), **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert AgentRun.objects.count() == 0


def test_document_from_another_project_is_refused(
    auth_api: APIClient, user: Any, project: Project, documents: list[Document]
) -> None:
    from conftest import make_project

    other = make_project(user, "Other")
    response = auth_api.post(
        "/api/v1/runs/",
        {"project": str(other.pk), "kind": "summarize", "document": str(documents[0].pk)},
        format="json",
    )
    assert response.status_code == 400
    assert "document" in response.json()


def test_viewer_may_ask_and_list_runs_by_project(
    project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    client = api_for(viewer)
    run = create_run(
        client,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="What is sourdough?",
    )
    listing = client.get(f"/api/v1/runs/?project={project.pk}").json()
    assert [r["id"] for r in listing["results"]] == [run["id"]]
