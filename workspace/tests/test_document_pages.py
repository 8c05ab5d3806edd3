"""Document pages and project search."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from documents import services
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Membership, Project, Role

pytestmark = pytest.mark.django_db

TEXT = "Alpha beta. The <script>alert(1)</script> sits here. Gamma delta."


@pytest.fixture
def doc(project: Project) -> Document:
    return DocumentFactory(
        project=project,
        title="<b>Bold</b> title",
        pasted_text=TEXT,
        text=TEXT,
        status=DocumentStatus.READY,
        chunk_count=1,
        size_bytes=len(TEXT),
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def doc_text(body: str) -> str:
    match = re.search(r'<div class="doc-text">(.*?)</div>', body, re.DOTALL)
    assert match, "no document text on the page"
    return match.group(1)


def test_document_page_escapes_html_in_title_and_text(owner_client: Client, doc: Document) -> None:
    body = owner_client.get(f"/documents/{doc.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<b>Bold</b>" not in body and "&lt;b&gt;Bold&lt;/b&gt; title" in body
    assert "<mark" not in body


def test_document_page_highlights_the_requested_span(owner_client: Client, doc: Document) -> None:
    start = TEXT.index("The <script>")
    end = TEXT.index(" Gamma")
    body = owner_client.get(f"/documents/{doc.pk}/", {"start": start, "end": end}).content.decode()
    shown = doc_text(body)
    assert shown == (
        html.escape(TEXT[:start])
        + '<mark id="passage">'
        + html.escape(TEXT[start:end])
        + "</mark>"
        + html.escape(TEXT[end:])
    )
    assert "Clear highlight" in body


@pytest.mark.parametrize(
    ("start", "end"),
    [("x", "5"), ("5", "5"), ("9", "3"), ("", ""), ("1e3", "2e3"), ("500", "900")],
)
def test_document_page_ignores_a_bad_span(owner_client: Client, doc: Document, start: str, end: str) -> None:
    response = owner_client.get(f"/documents/{doc.pk}/", {"start": start, "end": end})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<mark" not in body
    assert doc_text(body) == html.escape(TEXT)


def test_document_page_clamps_a_span_that_runs_past_the_text(owner_client: Client, doc: Document) -> None:
    body = owner_client.get(f"/documents/{doc.pk}/", {"start": "-4", "end": "11"}).content.decode()
    assert doc_text(body).startswith('<mark id="passage">Alpha beta.</mark>')
    body = owner_client.get(
        f"/documents/{doc.pk}/", {"start": TEXT.index("Gamma"), "end": "9999"}
    ).content.decode()
    assert doc_text(body).endswith('<mark id="passage">Gamma delta.</mark>')


def test_document_page_shows_metadata_and_actions(owner_client: Client, doc: Document) -> None:
    doc.metadata = {
        "tags": ["harbour"],
        "keywords": ["boats", "<i>tide</i>"],
        "entities": [{"text": "Lisbon", "type": "place"}, "Ana"],
    }
    doc.save(update_fields=["metadata"])
    body = owner_client.get(f"/documents/{doc.pk}/").content.decode()
    for expected in [
        "harbour",
        "boats",
        "&lt;i&gt;tide&lt;/i&gt;",
        "Lisbon",
        "place",
        "Ana",
        "TXT",
    ]:
        assert expected in body
    assert f'href="/api/v1/documents/{doc.pk}/download/"' in body
    assert f'action="/documents/{doc.pk}/reindex/"' in body
    assert f'action="/documents/{doc.pk}/delete/"' in body
    assert 'name="kind" value="summarize"' in body and 'name="kind" value="extract"' in body


def test_document_page_of_a_failed_document_shows_the_reason(owner_client: Client, project: Project) -> None:
    failed = DocumentFactory(project=project, status=DocumentStatus.FAILED, error="The PDF is encrypted.")
    body = owner_client.get(f"/documents/{failed.pk}/").content.decode()
    assert "The PDF is encrypted." in body
    assert 'value="summarize"' not in body
    assert "data-poll-url" not in body


def test_pending_document_page_polls_its_status(owner_client: Client, project: Project) -> None:
    pending = DocumentFactory(project=project)
    body = owner_client.get(f"/documents/{pending.pk}/").content.decode()
    assert f'data-poll-url="/documents/{pending.pk}/status.json" data-poll-reload' in body
    data = owner_client.get(f"/documents/{pending.pk}/status.json").json()
    assert data == {
        "items": [
            {
                "id": str(pending.pk),
                "status": "pending",
                "status_label": "Pending",
                "error": "",
                "chunk_count": 0,
                "finished": False,
            }
        ],
        "finished": False,
    }


def test_viewer_sees_no_reindex_delete_summary_or_tags_and_gets_403_on_them(
    project: Project, doc: Document
) -> None:
    viewer = UserFactory()
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    client = client_for(viewer)
    body = client.get(f"/documents/{doc.pk}/").content.decode()
    assert "/reindex/" not in body and "/delete/" not in body
    assert 'value="extract"' not in body and 'value="summarize"' not in body
    for kind in ("extract", "summarize"):
        run = {"project": str(project.pk), "kind": kind, "document": str(doc.pk)}
        assert client.post("/runs/new/", run).status_code == 403
    assert client.post(f"/documents/{doc.pk}/reindex/").status_code == 403
    assert client.post(f"/documents/{doc.pk}/delete/").status_code == 403
    assert Document.objects.filter(pk=doc.pk).exists()


def test_editor_reindexes_and_deletes_a_document(owner_client: Client, doc: Document) -> None:
    response = owner_client.post(f"/documents/{doc.pk}/reindex/")
    assert response["Location"] == f"/documents/{doc.pk}/"
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.PENDING
    response = owner_client.post(f"/documents/{doc.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == f"/projects/{doc.project_id}/"
    assert "was deleted." in response.content.decode()
    assert not Document.objects.filter(pk=doc.pk).exists()


def test_document_actions_are_post_only(owner_client: Client, doc: Document) -> None:
    assert owner_client.get(f"/documents/{doc.pk}/delete/").status_code == 405
    assert owner_client.get(f"/documents/{doc.pk}/reindex/").status_code == 405


# --- search --------------------------------------------------------------------


@pytest.fixture
def indexed(project: Project, user: Any, django_capture_on_commit_callbacks: Any) -> list[Document]:
    texts = {
        "Lighthouse log": "The lighthouse keeper lit the lamp at dusk. Fog rolled over the bay.",
        "Bakery notes": "Sourdough needs a long, cold fermentation. Rye flour adds a sour note.",
    }
    docs = []
    with django_capture_on_commit_callbacks(execute=True):
        for title, text in texts.items():
            docs.append(services.document_create(user=user, project=project, title=title, text=text))
    for d in docs:
        d.refresh_from_db()
        assert d.status == DocumentStatus.READY, d.error
    return docs


def test_search_page_lists_passages_with_links_to_them(
    owner_client: Client, project: Project, indexed: list[Document]
) -> None:
    lighthouse = indexed[0]
    response = owner_client.get(
        f"/projects/{project.pk}/search/", {"q": "who lit the lamp?", "mode": "hybrid"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    first = re.search(r'<li class="result">(.*?)</li>', body, re.DOTALL)
    assert first, body
    assert "Lighthouse log" in first.group(1)
    assert "lighthouse keeper lit the lamp" in re.sub(r"</?mark>", "", first.group(1))
    link = re.search(r'href="(/documents/[^"]+)"', first.group(1)).group(1)
    link = html.unescape(link)
    assert link.startswith(f"/documents/{lighthouse.pk}/?start=") and link.endswith("#passage")

    passage = owner_client.get(link.split("#")[0]).content.decode()
    assert '<mark id="passage">' in passage
    assert "lit the lamp" in passage.split('<mark id="passage">', 1)[1].split("</mark>", 1)[0]


@pytest.mark.parametrize("mode", ["dense", "lexical", "bogus"])
def test_search_works_in_every_mode_and_ignores_an_unknown_one(
    owner_client: Client, project: Project, indexed: list[Document], mode: str
) -> None:
    body = owner_client.get(
        f"/projects/{project.pk}/search/", {"q": "sourdough fermentation", "mode": mode}
    ).content.decode()
    assert "Bakery notes" in body
    selected = "hybrid" if mode == "bogus" else mode
    assert f'<option value="{selected}" selected>' in body


def test_empty_search_shows_only_the_form(owner_client: Client, project: Project) -> None:
    body = owner_client.get(f"/projects/{project.pk}/search/", {"q": "   "}).content.decode()
    assert 'role="search"' in body
    assert 'class="result"' not in body


def test_search_escapes_the_query(owner_client: Client, project: Project) -> None:
    DocumentFactory(project=project)
    body = owner_client.get(
        f"/projects/{project.pk}/search/", {"q": "<img src=x onerror=alert(1)>"}
    ).content.decode()
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "1 document is not ready yet" in body


def test_search_of_all_projects_names_the_project_and_shows_only_mine(
    owner_client: Client,
    project: Project,
    indexed: list[Document],
    other_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from conftest import make_project

    theirs = make_project(other_user, "Their kitchen")
    with django_capture_on_commit_callbacks(execute=True):
        services.document_create(
            user=other_user, project=theirs, title="Their bread", text="Sourdough fermentation secrets."
        )
    body = owner_client.get("/search/", {"q": "sourdough fermentation", "mode": "lexical"}).content.decode()
    first = re.search(r'<li class="result">(.*?)</li>', body, re.DOTALL)
    assert first, body
    assert "Bakery notes" in first.group(1)
    assert f'href="/projects/{project.pk}/"' in first.group(1) and html.escape(project.title) in first.group(
        1
    )
    assert "Their bread" not in body and "secrets" not in body
    assert 'href="/search/"' in body  # the navigation offers it on every page


def test_search_of_all_projects_needs_a_sign_in(client: Client) -> None:
    response = client.get("/search/", {"q": "anything"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_an_editor_renames_a_document_on_its_page(
    owner_client: Client, project: Project, doc: Document
) -> None:
    page = owner_client.get(f"/documents/{doc.pk}/").content.decode()
    assert f'action="/documents/{doc.pk}/rename/"' in page
    response = owner_client.post(f"/documents/{doc.pk}/rename/", {"title": "Harbour survey"}, follow=True)
    assert "Renamed to “Harbour survey”" in response.content.decode()
    doc.refresh_from_db()
    assert doc.title == "Harbour survey"
    refused = owner_client.post(f"/documents/{doc.pk}/rename/", {"title": "  "}, follow=True)
    assert "A title is required." in refused.content.decode()
    doc.refresh_from_db()
    assert doc.title == "Harbour survey"


def test_a_viewer_gets_no_rename_form(project: Project, doc: Document) -> None:
    viewer = UserFactory()
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    page = client_for(viewer).get(f"/documents/{doc.pk}/").content.decode()
    assert "/rename/" not in page
