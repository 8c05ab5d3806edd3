"""Locations from upload to answer: a real 5-page PDF and a PowerPoint deck are ingested, and
every face (search hits, citations, nearest passages, the pages) says where each passage is;
documents ingested before locations were recorded get them when re-indexed."""

from __future__ import annotations

import html
from typing import Any

import pytest
from rest_framework.test import APIClient

from documents.models import Chunk, Document, DocumentStatus
from documents.services import documents_reindex
from documents.tests import samples
from documents.tests.test_extraction import build_pdf
from projects.models import Project

PAGES = [
    ["Chapter one covers the history of the lighthouse on the northern cape."],
    ["The keepers lived in a stone cottage beside the tower with their families."],
    ["The lamp burned whale oil until 1890, when kerosene replaced it for good."],
    ["Storms in the winter of 1912 broke every window of the lantern room."],
    ["Today the lighthouse is a museum, open on weekends from April to October."],
]


def upload(client: APIClient, project: Project, capture: Any, name: str, data: bytes) -> Document:
    with capture(execute=True):
        response = client.post(
            "/api/v1/documents/",
            {"project": str(project.pk), "file": samples_file(name, data)},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    doc = Document.objects.get(pk=response.json()["id"])
    assert doc.status == DocumentStatus.READY, doc.error
    return doc


def samples_file(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


@pytest.fixture
def manual(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any, settings: Any
) -> Document:
    settings.LLM_PROVIDER = "offline"
    settings.CHUNK_TOKENS = 30
    settings.CHUNK_OVERLAP_TOKENS = 0
    return upload(auth_api, project, django_capture_on_commit_callbacks, "lighthouse.pdf", build_pdf(PAGES))


def test_search_hits_and_chunks_name_the_pdf_page(
    auth_api: APIClient, project: Project, manual: Document
) -> None:
    hits = auth_api.get(
        f"/api/v1/projects/{project.pk}/search/", {"q": "whale oil kerosene lamp", "mode": "lexical"}
    ).json()["results"]
    top = hits[0]
    assert "whale oil" in top["text"]
    assert top["location"]["kind"] == "page" and top["location"]["page"] == 3
    assert top["location"]["label"] in ("p. 3", "pp. 2–3", "pp. 3–4")
    for chunk in auth_api.get(f"/api/v1/documents/{manual.pk}/chunks/").json()["results"]:
        pages = [n + 1 for n, lines in enumerate(PAGES) if lines[0][:30] in chunk["text"]]
        assert chunk["location"]["page"] == min(pages)
        assert chunk["location"].get("page_end", chunk["location"]["page"]) == max(pages)


def test_a_citation_and_the_pages_name_the_page_of_the_quote(
    auth_api: APIClient,
    owner_client: Any,
    project: Project,
    manual: Document,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        created = auth_api.post(
            "/api/v1/runs/",
            {"project": str(project.pk), "kind": "ask", "question": "What did the lamp burn until 1890?"},
            format="json",
        ).json()
    run = auth_api.get(f"/api/v1/runs/{created['id']}/").json()
    assert run["citations"], run
    quoting = [c for c in run["citations"] if "whale oil" in c["quote"]]
    assert quoting, run["citations"]
    assert quoting[0]["location"] == {"kind": "page", "page": 3, "label": "p. 3"}
    page = html.unescape(owner_client.get(f"/runs/threads/{run['thread']}/").content.decode())
    assert "p. 3" in page
    # The chip opens the viewer at the passage, with the run's citations a click away.
    assert (
        f"/documents/{manual.pk}/view/?start={quoting[0]['start']}&end={quoting[0]['end']}&run={run['id']}"
        in page
    )


def test_the_text_view_sets_each_slide_above_its_text(
    auth_api: APIClient, owner_client: Any, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    deck = upload(auth_api, project, django_capture_on_commit_callbacks, "deck.pptx", samples.pptx_deck())
    page = html.unescape(owner_client.get(f"/documents/{deck.pk}/").content.decode())
    assert 'data-field="place">Slide 1' in page
    assert 'data-field="place">Slide 2' in page


def test_reindexing_a_document_from_before_locations_fills_them_in(
    project: Project, manual: Document, auth_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    # As ingested by the code before locations: chunks without them.
    Chunk.objects.filter(document=manual).update(locations=[])
    hit = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": "kerosene", "mode": "lexical"}).json()
    assert hit["results"][0]["location"] is None
    with django_capture_on_commit_callbacks(execute=True):
        documents_reindex(documents=[manual], sync=True)
    hit = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": "kerosene", "mode": "lexical"}).json()
    assert hit["results"][0]["location"]["page"] == 3


def test_a_run_from_before_locations_gets_them_when_read(
    auth_api: APIClient, project: Project, manual: Document, django_capture_on_commit_callbacks: Any
) -> None:
    from agents.models import AgentRun

    with django_capture_on_commit_callbacks(execute=True):
        created = auth_api.post(
            "/api/v1/runs/",
            {"project": str(project.pk), "kind": "ask", "question": "What broke the lantern room windows?"},
            format="json",
        ).json()
    run = AgentRun.objects.get(pk=created["id"])
    assert run.citations and all("location" in c for c in run.citations)
    # As stored by the code before locations: no `location` in the citations.
    run.citations = [{k: v for k, v in c.items() if k != "location"} for c in run.citations]
    run.save(update_fields=["citations"])
    shown = auth_api.get(f"/api/v1/runs/{run.pk}/").json()["citations"]
    storm = [c for c in shown if "1912" in c["quote"]]
    assert storm and storm[0]["location"] == {"kind": "page", "page": 4, "label": "p. 4"}
