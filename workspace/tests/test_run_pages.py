"""Agent run pages: starting runs from forms and showing their results."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunKind, RunStatus
from documents import services as document_services
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Membership, Project, Role

pytestmark = pytest.mark.django_db

TEXT = "The lighthouse keeper lit the lamp at dusk. Fog rolled over the bay until morning."


@pytest.fixture
def doc(project: Project) -> Document:
    return DocumentFactory(
        project=project,
        title="Lighthouse log",
        pasted_text=TEXT,
        text=TEXT,
        status=DocumentStatus.READY,
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def finished_run(project: Project, user: Any, **fields: Any) -> AgentRun:
    defaults: dict[str, Any] = {
        "kind": RunKind.ASK,
        "question": "Who lit the lamp?",
        "status": RunStatus.SUCCEEDED,
        "answer": "The keeper lit it [1].",
        "provider": "offline",
        "model": "extractive-v1",
        "latency_ms": 42,
        "output": {"answered": True},
    }
    defaults.update(fields)
    return AgentRun.objects.create(project=project, created_by=user, **defaults)


def test_run_page_lists_citations_linking_to_the_exact_passage(
    owner_client: Client, project: Project, user: Any, doc: Document
) -> None:
    start, end = 0, TEXT.index(" Fog")
    run = finished_run(
        project,
        user,
        citations=[
            {
                "document": str(doc.pk),
                "chunk": 1,
                "start": start,
                "end": end,
                "quote": TEXT[start:end],
            }
        ],
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    citations = re.search(r'<ol class="citations">(.*?)</ol>', body, re.DOTALL).group(1)
    href = html.unescape(re.search(r'href="([^"]+)"', citations).group(1))
    assert href == f"/documents/{doc.pk}/?start={start}&end={end}#passage"
    assert "Lighthouse log" in citations
    assert "The lighthouse keeper lit the lamp at dusk." in citations
    assert re.search(r"The keeper lit it <span class=\"cite\"><a class=\"cite-chip\" href=\"[^\"]+\"", body)
    for shown in ["offline", "extractive-v1", "42 ms"]:
        assert shown in body
    assert "data-poll-url" not in body

    passage = owner_client.get(href.split("#")[0]).content.decode()
    assert '<mark id="passage">The lighthouse keeper lit the lamp at dusk.</mark>' in passage


def test_a_citation_of_a_deleted_document_has_no_link(
    owner_client: Client, project: Project, user: Any
) -> None:
    gone = "00000000-0000-0000-0000-000000000001"
    run = finished_run(
        project,
        user,
        citations=[{"document": gone, "chunk": 1, "start": 0, "end": 3, "quote": "The"}],
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "A deleted document" in body
    assert f"/documents/{gone}/" not in body


def test_unfinished_run_page_polls_its_status(owner_client: Client, project: Project, user: Any) -> None:
    run = AgentRun.objects.create(project=project, created_by=user, kind=RunKind.ASK, question="Why?")
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'data-poll-url="/runs/{run.pk}/status.json" data-poll-reload' in body
    assert "Waiting for a worker" in body
    assert owner_client.get(f"/runs/{run.pk}/status.json").json() == {
        "items": [
            {
                "id": str(run.pk),
                "status": "queued",
                "status_label": "Queued",
                "error": "",
                "finished": False,
            }
        ],
        "finished": False,
    }


def test_failed_run_shows_the_error(owner_client: Client, project: Project, user: Any) -> None:
    run = finished_run(
        project,
        user,
        status=RunStatus.FAILED,
        answer="",
        error="Nothing to read <yet>.",
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "The run failed: Nothing to read &lt;yet&gt;." in body


def test_unanswerable_question_shows_the_nearest_passages(
    owner_client: Client, project: Project, user: Any, doc: Document
) -> None:
    run = finished_run(
        project,
        user,
        answer="I can't answer that from this project's documents.",
        output={
            "answered": False,
            "nearest": [
                {
                    "document": str(doc.pk),
                    "chunk": 999,
                    "title": doc.title,
                    "text": TEXT,
                }
            ],
        },
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "No answer in these documents" in body
    assert "Nearest passages" in body
    assert f'href="/documents/{doc.pk}/"' in body
    assert "Fog rolled over the bay" in body


def test_degraded_run_says_so_with_the_reason(owner_client: Client, project: Project, user: Any) -> None:
    run = finished_run(project, user, degraded=True, degraded_reason="gemini circuit open")
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Degraded" in body and "gemini circuit open" in body


def test_extract_run_lists_tags_keywords_and_entities(
    owner_client: Client, project: Project, user: Any, doc: Document
) -> None:
    run = finished_run(
        project,
        user,
        kind=RunKind.EXTRACT,
        question="",
        document=doc,
        output={
            "answered": True,
            "tags": ["maritime"],
            "keywords": ["lighthouse", "fog"],
            "entities": [{"text": "Keeper <Jo>", "type": "person"}],
        },
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    for expected in [
        "maritime",
        "lighthouse",
        "fog",
        "Keeper &lt;Jo&gt;",
        "person",
        "Lighthouse log",
    ]:
        assert expected in body


def test_outsider_gets_404_on_run_pages_and_cannot_start_runs(
    project: Project, user: Any, other_user: Any, doc: Document
) -> None:
    run = finished_run(project, user)
    outsider = client_for(other_user)
    assert outsider.get(f"/runs/{run.pk}/").status_code == 404
    assert outsider.get(f"/runs/{run.pk}/status.json").status_code == 404
    assert (
        outsider.post(
            "/runs/new/", {"project": str(project.pk), "kind": "ask", "question": "Hi?"}
        ).status_code
        == 404
    )
    theirs = Project.objects.create(title="Theirs")
    Membership.objects.create(project=theirs, user=other_user, role=Role.OWNER)
    # Their own project, but my document or my run: still 404.
    assert (
        outsider.post(
            "/runs/new/",
            {"project": str(theirs.pk), "kind": "summarize", "document": str(doc.pk)},
        ).status_code
        == 404
    )
    assert (
        outsider.post(
            "/runs/new/",
            {
                "project": str(theirs.pk),
                "kind": "ask",
                "question": "Hi?",
                "parent": str(run.pk),
            },
        ).status_code
        == 404
    )
    assert AgentRun.objects.count() == 1


def test_an_empty_question_goes_back_with_a_message(owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "ask",
            "question": "  ",
            "next": f"/projects/{project.pk}/",
        },
        follow=True,
    )
    assert response.redirect_chain == [(f"/projects/{project.pk}/", 302)]
    assert "A question is required to ask." in response.content.decode()
    assert not AgentRun.objects.exists()


def test_a_foreign_next_url_is_ignored(owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "ask",
            "question": "",
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == f"/projects/{project.pk}/"


def test_run_creation_is_post_only(owner_client: Client) -> None:
    assert owner_client.get("/runs/new/").status_code == 405


def test_viewer_may_ask(project: Project) -> None:
    viewer = UserFactory()
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    response = client_for(viewer).post(
        "/runs/new/", {"project": str(project.pk), "kind": "ask", "question": "Why?"}
    )
    run = AgentRun.objects.get()
    assert response["Location"] == f"/runs/threads/{run.thread_id}/#turn-{run.pk}"
    assert run.created_by == viewer


def test_summarize_button_on_a_document_starts_a_document_run(
    owner_client: Client, project: Project, doc: Document
) -> None:
    response = owner_client.post(
        "/runs/new/",
        {"project": str(project.pk), "kind": "summarize", "document": str(doc.pk)},
    )
    run = AgentRun.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.kind == RunKind.SUMMARIZE and run.document == doc


def test_summarizing_a_pending_document_says_it_is_not_ready(owner_client: Client, project: Project) -> None:
    pending = DocumentFactory(project=project)
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "extract",
            "document": str(pending.pk),
            "next": f"/documents/{pending.pk}/",
        },
        follow=True,
    )
    assert "The document is not ready yet." in response.content.decode()
    assert not AgentRun.objects.exists()


def test_follow_up_question_creates_a_run_with_this_parent(
    owner_client: Client, project: Project, user: Any
) -> None:
    parent = finished_run(project, user)
    body = owner_client.get(f"/runs/{parent.pk}/").content.decode()
    assert f'name="parent" value="{parent.pk}"' in body
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "ask",
            "question": "And then?",
            "parent": str(parent.pk),
        },
    )
    child = AgentRun.objects.exclude(pk=parent.pk).get()
    assert response["Location"] == f"/runs/threads/{child.thread_id}/#turn-{child.pk}"
    assert child.parent == parent
    assert "And then?" in owner_client.get(f"/runs/{parent.pk}/").content.decode()


def test_asking_from_the_project_page_answers_with_a_cited_passage(
    owner_client: Client,
    project: Project,
    user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_create(
            user=user,
            project=project,
            title="Lighthouse log",
            text=TEXT + " The bakery on the quay sells rye bread every Sunday.",
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/runs/new/",
            {
                "project": str(project.pk),
                "kind": "ask",
                "question": "Who lit the lamp at dusk?",
            },
        )
    run = AgentRun.objects.get()
    assert response["Location"] == f"/runs/threads/{run.thread_id}/#turn-{run.pk}"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "lighthouse keeper lit the lamp" in body.lower()
    assert re.search(
        r'class="citation-link" href="/documents/[0-9a-f-]+/\?start=\d+&amp;end=\d+#passage"',
        body,
    )
    thread_page = owner_client.get(f"/runs/threads/{run.thread_id}/").content.decode()
    assert "lighthouse keeper lit the lamp" in thread_page.lower()
    assert re.search(
        r'class="cite-chip" href="/documents/[0-9a-f-]+/\?start=\d+&amp;end=\d+#passage"', thread_page
    )
    project_page = owner_client.get(f"/projects/{project.pk}/").content.decode()
    assert f'href="/runs/threads/{run.thread_id}/"' in project_page
