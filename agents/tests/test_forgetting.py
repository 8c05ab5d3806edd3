"""Deleting a document takes its text out of the runs that hold some: their citations keep
their place, marked as from a deleted document, without the quote; the answer loses the
quotes it repeated; a run about that document alone keeps no text of it; other documents'
citations stay as they were."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from agents.forgetting import REMOVED_ANSWER, REMOVED_QUOTE
from agents.models import AgentRun, RunKind, RunStatus
from documents.models import Document
from projects.models import Project

pytestmark = pytest.mark.django_db

BEES = (
    "Honeybees communicate the location of food with a waggle dance. "
    "The angle of the dance encodes the direction relative to the sun."
)
ANTS = "Ants lay pheromone trails between the nest and the food they found."


@pytest.fixture
def docs(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any, settings: Any
) -> tuple[Document, Document]:
    settings.LLM_PROVIDER = "offline"
    made = []
    for title, text in (("Bees", BEES), ("Ants", ANTS)):
        with django_capture_on_commit_callbacks(execute=True):
            response = auth_api.post(
                "/api/v1/documents/",
                {"project": str(project.pk), "title": title, "text": text},
                format="json",
            )
        made.append(Document.objects.get(pk=response.json()["id"]))
    return made[0], made[1]


def run_of(client: APIClient, project: Project, capture: Any, **body: Any) -> AgentRun:
    with capture(execute=True):
        response = client.post("/api/v1/runs/", {"project": str(project.pk), **body}, format="json")
    assert response.status_code == 201, response.content
    run = AgentRun.objects.get(pk=response.json()["id"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def test_a_deleted_documents_quotes_leave_the_runs_that_cite_it(
    auth_api: APIClient,
    client: Client,
    user: Any,
    project: Project,
    docs: tuple[Document, Document],
    django_capture_on_commit_callbacks: Any,
) -> None:
    bees, ants = docs
    bee_quote = BEES.split(". ")[0] + "."
    # A run whose answer repeats its quotes, as the offline provider's does.
    run = AgentRun.objects.create(
        project=project,
        created_by=user,
        kind=RunKind.ASK,
        question="How do bees and ants show where the food is?",
        status=RunStatus.SUCCEEDED,
        answer=f"{bee_quote} [1] {ANTS} [2]",
        output={"answered": True},
        citations=[
            {"document": str(bees.pk), "chunk": 1, "start": 0, "end": len(bee_quote), "quote": bee_quote},
            {"document": str(ants.pk), "chunk": 2, "start": 0, "end": len(ANTS), "quote": ANTS},
        ],
    )
    summary = run_of(
        auth_api, project, django_capture_on_commit_callbacks, kind="summarize", document=str(bees.pk)
    )
    assert summary.answer

    with django_capture_on_commit_callbacks(execute=True):
        assert auth_api.delete(f"/api/v1/documents/{bees.pk}/").status_code == 204

    run.refresh_from_db()
    for c in run.citations:
        if c["document"] == str(bees.pk):
            assert (c["quote"], c["deleted"]) == ("", True)
        else:
            assert c["quote"] and ants.text[c["start"] : c["end"]] == c["quote"]
            assert "deleted" not in c
    assert bee_quote not in json.dumps([run.answer, run.citations, run.output])
    assert run.answer == f"{REMOVED_QUOTE} [1] {ANTS} [2]"  # the other document's quote stays
    summary.refresh_from_db()
    assert summary.answer == REMOVED_ANSWER
    assert "Honeybees" not in json.dumps([summary.citations, summary.output])

    # The API and the page say where the quote went.
    api_run = auth_api.get(f"/api/v1/runs/{run.pk}/").json()
    assert any(c.get("deleted") for c in api_run["citations"])
    client.force_login(user)
    page = client.get(reverse("agents:detail", args=[run.pk])).content.decode()
    assert "From a deleted document: the quote was removed with it." in page
    assert "Honeybees communicate" not in page


def test_nearest_passages_of_a_declined_question_forget_the_document(
    auth_api: APIClient,
    project: Project,
    docs: tuple[Document, Document],
    django_capture_on_commit_callbacks: Any,
) -> None:
    bees, _ = docs
    run = AgentRun.objects.create(
        project=project,
        kind=RunKind.ASK,
        question="What do whales sing?",
        status=RunStatus.SUCCEEDED,
        answer="The documents do not say.",
        output={
            "answered": False,
            "nearest": [{"document": str(bees.pk), "chunk": 1, "title": "Bees", "text": BEES[:60]}],
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_api.delete(f"/api/v1/documents/{bees.pk}/").status_code == 204
    run.refresh_from_db()
    [item] = run.output["nearest"]
    assert (item["text"], item["title"], item["deleted"]) == ("", "", True)
    assert run.answer == "The documents do not say."
