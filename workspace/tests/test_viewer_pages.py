"""The PDF viewer's page and the original file it opens: who may open them, where a document that
is not a PDF goes instead, and the marks the page gives its script."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from accounts.tests.factories import UserFactory
from agents.models import RunStatus, Thread
from agents.tests.factories import AgentRunFactory
from conftest import make_project
from documents.locations import text_url, viewer_url
from documents.models import Document, DocumentStatus, PageWords
from documents.tests.factories import ChunkFactory, DocumentFactory
from projects.models import Project

pytestmark = pytest.mark.django_db

PAGES = ["The harbour opens at dawn.", "Ferries leave at noon.", "The lighthouse keeper lights the lamp."]
TEXT = "\n\n".join(PAGES)
PDF_BYTES = b"%PDF-1.4 three pages of harbour notes"


def span_of(text: str, quote: str) -> tuple[int, int]:
    start = text.index(quote)
    return start, start + len(quote)


def pdf_document(project: Project, *, title: str = "Harbour guide", ocr: bool = False) -> Document:
    """A ready PDF whose chunk knows the page of each paragraph (page 3 read by OCR when `ocr`)."""
    doc = DocumentFactory(
        project=project,
        title=title,
        format="pdf",
        pasted_text="",
        text=TEXT,
        status=DocumentStatus.READY,
        chunk_count=1,
        original_filename="harbour.pdf",
    )
    doc.file.save("harbour.pdf", ContentFile(PDF_BYTES), save=True)
    ranges, position = [], 0
    for number, page in enumerate(PAGES, start=1):
        locator: dict[str, Any] = {"kind": "page", "page": number}
        if ocr and number == 3:
            locator["ocr"] = True
        ranges.append([position, position + len(page), locator])
        position += len(page) + 2
    ChunkFactory(document=doc, text=TEXT, locations=ranges)
    if ocr:
        words = [["The", 0.1, 0.2, 0.15, 0.23], ["lighthouse", 0.16, 0.2, 0.3, 0.23]]
        words += [["keeper", 0.31, 0.2, 0.4, 0.23], ["lights", 0.41, 0.2, 0.5, 0.23]]
        words += [["the", 0.51, 0.2, 0.55, 0.23], ["lamp.", 0.56, 0.2, 0.64, 0.23]]
        PageWords.objects.create(document=doc, page=3, words=words)
    return doc


def text_document(project: Project) -> Document:
    doc = DocumentFactory(
        project=project,
        title="Notes",
        format="txt",
        pasted_text="Tides turn twice a day.",
        text="Tides turn twice a day.",
        status=DocumentStatus.READY,
        chunk_count=1,
    )
    ChunkFactory(document=doc, text=doc.text)
    return doc


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_data(body: str) -> dict[str, Any]:
    match = re.search(r'<script id="viewer-data" type="application/json">(.*?)</script>', body, re.DOTALL)
    assert match, "the page carries no viewer data"
    return json.loads(match.group(1))


@pytest.fixture
def viewer(db: Any) -> Any:
    return UserFactory(email="viewer@example.com")


@pytest.fixture
def harbour(user: Any, viewer: Any) -> Project:
    return make_project(user, title="Harbour", viewer=viewer)


def cited_run(project: Project, *quoted: tuple[Document, str], **fields: Any) -> Any:
    citations = []
    for doc, quote in quoted:
        start, end = span_of(doc.text, quote)
        citations.append({"document": str(doc.pk), "chunk": 1, "start": start, "end": end, "quote": quote})
    return AgentRunFactory(
        project=project, status=RunStatus.SUCCEEDED, answer="Answer [1].", citations=citations, **fields
    )


def test_a_huge_span_is_cut_to_the_longest_passage_the_viewer_marks(harbour: Project, viewer: Any) -> None:
    from workspace.views.viewer import SPAN_MAX

    doc = pdf_document(harbour)
    doc.text = TEXT + " filler" * 2000
    doc.save(update_fields=["text"])
    response = client_for(viewer).get(f"/documents/{doc.pk}/view/?start=0&end=99999999")
    assert response.status_code == 200
    [mark] = page_data(response.content.decode())["marks"]
    assert (mark["start"], mark["end"]) == (0, SPAN_MAX) and len(mark["quote"]) == SPAN_MAX


# --- who may open it --------------------------------------------------------------------------


def test_a_viewer_of_the_project_opens_a_pdf_at_the_passage(harbour: Project, viewer: Any) -> None:
    doc = pdf_document(harbour)
    start, end = span_of(TEXT, PAGES[2])
    response = client_for(viewer).get(viewer_url(doc.pk, start=start, end=end))
    assert response.status_code == 200
    body = response.content.decode()
    assert '<script type="module" src="/static/js/viewer.js"></script>' in body
    data = page_data(body)
    assert data["file"] == f"/documents/{doc.pk}/file/"
    assert data["pdfjs"]["module"] == "/static/pdfjs/pdf.min.mjs"
    assert data["pdfjs"]["worker"] == "/static/pdfjs/pdf.worker.min.mjs"
    [mark] = data["marks"]
    assert mark["page"] == 3 and mark["label"] == "p. 3"
    assert mark["quote"] == PAGES[2] and (mark["start"], mark["end"]) == (start, end)
    assert mark["here"] is True and mark["boxes"] == []
    assert mark["failed_href"] == f"/documents/{doc.pk}/?start={start}&end={end}&viewer=failed#passage"
    assert data["failed"] == mark["failed_href"]


def test_an_outsider_gets_404_for_the_viewer_and_the_file(harbour: Project, other_user: Any) -> None:
    doc = pdf_document(harbour)
    outsider = client_for(other_user)
    assert outsider.get(viewer_url(doc.pk, start=0, end=5)).status_code == 404
    assert outsider.get(f"/documents/{doc.pk}/file/").status_code == 404


def test_someone_signed_out_is_sent_to_sign_in(harbour: Project) -> None:
    doc = pdf_document(harbour)
    for url in (viewer_url(doc.pk), f"/documents/{doc.pk}/file/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_file_route_streams_the_original_to_a_member(harbour: Project, viewer: Any) -> None:
    doc = pdf_document(harbour)
    response = client_for(viewer).get(f"/documents/{doc.pk}/file/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF_BYTES
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]


def test_the_file_route_is_404_without_a_stored_file(owner_client: Client, harbour: Project) -> None:
    doc = text_document(harbour)
    assert owner_client.get(f"/documents/{doc.pk}/file/").status_code == 404


# --- where other documents go -------------------------------------------------------------------


def test_a_document_that_is_not_a_pdf_opens_in_the_text_view(owner_client: Client, harbour: Project) -> None:
    doc = text_document(harbour)
    response = owner_client.get(viewer_url(doc.pk, start=0, end=5))
    assert response.status_code == 302
    assert response["Location"] == f"/documents/{doc.pk}/?start=0&end=5#passage"
    assert owner_client.get(viewer_url(doc.pk))["Location"] == f"/documents/{doc.pk}/"


def test_a_pdf_without_its_file_opens_in_the_text_view(owner_client: Client, harbour: Project) -> None:
    doc = pdf_document(harbour)
    Document.objects.filter(pk=doc.pk).update(file="")
    start, end = span_of(TEXT, PAGES[1])
    response = owner_client.get(viewer_url(doc.pk, start=start, end=end))
    assert response.status_code == 302
    assert response["Location"] == text_url(doc.pk, start=start, end=end)


def test_the_text_view_says_when_the_viewer_could_not_show_the_pdf(
    owner_client: Client, harbour: Project
) -> None:
    doc = pdf_document(harbour)
    start, end = span_of(TEXT, PAGES[1])
    body = owner_client.get(text_url(doc.pk, start=start, end=end, failed=True)).content.decode()
    assert "The PDF could not be shown here" in body
    assert f'<mark id="passage">{PAGES[1]}</mark>' in body
    assert "could not be shown here" not in owner_client.get(text_url(doc.pk)).content.decode()


# --- a run's citations ----------------------------------------------------------------------------


def test_a_runs_citations_are_the_marks_with_pages_boxes_and_where_each_opens(
    owner_client: Client, harbour: Project
) -> None:
    doc = pdf_document(harbour, ocr=True)
    other_pdf = pdf_document(harbour, title="Second guide")
    notes = text_document(harbour)
    run = cited_run(
        harbour,
        (doc, PAGES[0]),
        (notes, "Tides turn twice a day."),
        (doc, PAGES[2]),
        (other_pdf, PAGES[1]),
    )
    response = owner_client.get(viewer_url(doc.pk, run=run.pk, cite=3))
    assert response.status_code == 200
    data = page_data(response.content.decode())
    assert data["current"] == 2
    first, tides, third, fourth = data["marks"]
    assert [m["number"] for m in data["marks"]] == [1, 2, 3, 4]
    assert (first["page"], first["here"], first["boxes"]) == (1, True, [])
    assert first["href"] == f"/documents/{doc.pk}/view/?run={run.pk}&cite=1"
    # Page 3 was read by OCR: its word boxes cover the quote.
    assert third["page"] == 3 and third["label"] == "p. 3"
    assert third["boxes"] == [
        [0.1, 0.2, 0.15, 0.23],
        [0.16, 0.2, 0.3, 0.23],
        [0.31, 0.2, 0.4, 0.23],
        [0.41, 0.2, 0.5, 0.23],
        [0.51, 0.2, 0.55, 0.23],
        [0.56, 0.2, 0.64, 0.23],
    ]
    # A text document opens in the text view; another PDF in its own viewer.
    assert tides["here"] is False and tides["page"] is None
    assert tides["href"] == f"/documents/{notes.pk}/?start=0&end=23#passage"
    assert fourth["here"] is False and fourth["page"] == 2
    assert fourth["href"] == f"/documents/{other_pdf.pk}/view/?run={run.pk}&cite=4"
    body = response.content.decode()
    assert "2 of 4" not in body and "3 of 4" in body
    assert f'href="/documents/{notes.pk}/?start=0&amp;end=23#passage"' in body  # previous citation
    assert f'href="/documents/{other_pdf.pk}/view/?run={run.pk}&amp;cite=4"' in body  # next citation


def test_without_a_number_the_first_citation_in_the_document_is_shown(
    owner_client: Client, harbour: Project
) -> None:
    doc = pdf_document(harbour)
    notes = text_document(harbour)
    run = cited_run(harbour, (notes, "Tides turn twice a day."), (doc, PAGES[1]))
    data = page_data(owner_client.get(f"/documents/{doc.pk}/view/?run={run.pk}").content.decode())
    assert data["current"] == 1 and data["marks"][1]["page"] == 2


def test_a_citation_in_another_document_goes_there(owner_client: Client, harbour: Project) -> None:
    doc = pdf_document(harbour)
    notes = text_document(harbour)
    run = cited_run(harbour, (doc, PAGES[0]), (notes, "Tides turn twice a day."))
    response = owner_client.get(viewer_url(doc.pk, run=run.pk, cite=2))
    assert response.status_code == 302
    assert response["Location"] == f"/documents/{notes.pk}/?start=0&end=23#passage"
    assert owner_client.get(viewer_url(doc.pk, run=run.pk, cite=9)).status_code == 404


def test_a_citation_of_a_document_the_user_cannot_read_is_left_out(
    owner_client: Client, harbour: Project, user: Any
) -> None:
    doc = pdf_document(harbour)
    elsewhere = pdf_document(make_project(UserFactory(), title="Elsewhere"))
    run = cited_run(harbour, (elsewhere, PAGES[0]), (doc, PAGES[2]))
    data = page_data(owner_client.get(viewer_url(doc.pk, run=run.pk, cite=2)).content.decode())
    assert [m["number"] for m in data["marks"]] == [2]


def test_another_persons_private_thread_is_404(harbour: Project, user: Any, viewer: Any) -> None:
    doc = pdf_document(harbour)
    thread = Thread.objects.create(project=harbour, created_by=user, title="Mine", turn_count=1)
    run = cited_run(harbour, (doc, PAGES[2]), thread=thread)
    assert client_for(user).get(viewer_url(doc.pk, run=run.pk, cite=1)).status_code == 200
    assert client_for(viewer).get(viewer_url(doc.pk, run=run.pk, cite=1)).status_code == 404
    thread.shared = True
    thread.save(update_fields=["shared"])
    assert client_for(viewer).get(viewer_url(doc.pk, run=run.pk, cite=1)).status_code == 200


def test_a_run_of_another_project_is_404(owner_client: Client, harbour: Project, user: Any) -> None:
    doc = pdf_document(harbour)
    mine = make_project(user, title="Mine too")
    run = cited_run(mine, (pdf_document(mine), PAGES[2]))
    assert owner_client.get(viewer_url(doc.pk, run=run.pk, cite=1)).status_code == 404
    assert owner_client.get(f"/documents/{doc.pk}/view/?run=not-a-uuid&cite=1").status_code == 404


# --- links, policy, assets -----------------------------------------------------------------------


def test_viewer_url_links_a_span_or_a_citation() -> None:
    doc = "9b2d63c6-1f0e-4f4e-9d56-0a6c3b1c2d3e"
    assert viewer_url(doc) == f"/documents/{doc}/view/"
    assert viewer_url(doc, start=3, end=9) == f"/documents/{doc}/view/?start=3&end=9"
    assert viewer_url(doc, run="r1", cite=2) == f"/documents/{doc}/view/?run=r1&cite=2"
    assert viewer_url(doc, start=None, end=9) == f"/documents/{doc}/view/"


def test_the_page_allows_a_same_origin_worker_and_no_eval(owner_client: Client, harbour: Project) -> None:
    doc = pdf_document(harbour)
    policy = owner_client.get(viewer_url(doc.pk))["Content-Security-Policy"]
    assert "worker-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-eval" not in policy and "unsafe-inline" not in policy


def test_pdfjs_modules_are_served_as_javascript(client: Client) -> None:
    for name in ("pdf.min.mjs", "pdf.worker.min.mjs"):
        response = client.get(f"/static/pdfjs/{name}")
        assert response.status_code == 200, f"{name} is missing: run `make install`"
        assert response["Content-Type"].startswith("text/javascript")
