"""Document and search API: upload, paste, list, filter, re-index, download, chunks, search."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conftest import api_for, assert_same_as_drf, make_project
from documents import search
from documents.api import DOCUMENT_OUT_COLUMNS, HitOut
from documents.models import Chunk, Document, DocumentStatus
from projects.models import Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

ARTICLE = (
    "Photosynthesis converts light energy into chemical energy in plants. "
    "Chlorophyll absorbs mostly blue and red light. "
    "The Calvin cycle fixes carbon dioxide into sugars.\n\n"
    "Mitochondria produce ATP through cellular respiration. "
    "The electron transport chain pumps protons across the inner membrane."
)


def paste(client: APIClient, project: Project, capture: Any, **extra: Any) -> dict[str, Any]:
    payload = {"project": str(project.pk), "title": "Biology notes", "text": ARTICLE, **extra}
    with capture(execute=True):
        response = client.post("/api/v1/documents/", payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_pasted_text_is_ingested_into_chunks_with_offsets(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    created = paste(auth_api, project, django_capture_on_commit_callbacks)
    assert created["status"] == DocumentStatus.PENDING
    doc = Document.objects.get(pk=created["id"])
    assert doc.status == DocumentStatus.READY, doc.error
    assert doc.chunk_count == Chunk.objects.filter(document=doc).count() > 0
    for chunk in Chunk.objects.filter(document=doc):
        assert doc.text[chunk.start : chunk.end] == chunk.text
    detail = auth_api.get(f"/api/v1/documents/{doc.pk}/").json()
    assert detail["status"] == "ready"


def test_multipart_upload_is_judged_by_content_not_name(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    html = b"<!doctype html><html><head><script>var x=1;</script></head><body><h1>Tides</h1><p>The moon pulls the oceans.</p></body></html>"
    upload = SimpleUploadedFile("notes.txt", html, content_type="text/plain")
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_api.post(
            "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
        )
    assert response.status_code == 201, response.content
    doc = Document.objects.get(pk=response.json()["id"])
    assert doc.title == "Tides"  # read as HTML, its first h1: no title was given
    assert doc.status == DocumentStatus.READY
    assert doc.format == "html"
    assert "moon pulls" in doc.text
    assert "var x" not in doc.text


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "T"}, "file"),
        ({"text": "something"}, "title"),
        ({"title": "T", "text": "   "}, "text"),
        ({"title": "x" * 301, "text": "t"}, "title"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(
    auth_api: APIClient, project: Project, payload: dict[str, str], field: str
) -> None:
    response = auth_api.post("/api/v1/documents/", {"project": str(project.pk), **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Document.objects.count() == 0


def test_empty_file_is_refused(auth_api: APIClient, project: Project) -> None:
    upload = SimpleUploadedFile("empty.txt", b"", content_type="text/plain")
    response = auth_api.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert "file" in response.json()


def test_file_over_the_limit_is_refused(auth_api: APIClient, project: Project, settings: Any) -> None:
    settings.DOCENT_MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    upload = SimpleUploadedFile("big.txt", b"a" * (1024 * 1024 + 1), content_type="text/plain")
    response = auth_api.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert "1 MB" in str(response.json()["file"])


def test_binary_garbage_is_refused_at_upload(auth_api: APIClient, project: Project) -> None:
    upload = SimpleUploadedFile("photo.pdf", bytes(range(256)) * 40, content_type="application/pdf")
    response = auth_api.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert "file" in response.json()


def test_corrupt_pdf_ends_failed_with_a_reason(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    upload = SimpleUploadedFile(
        "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", content_type="application/pdf"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_api.post(
            "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
        )
    assert response.status_code == 201
    doc = Document.objects.get(pk=response.json()["id"])
    assert doc.status == DocumentStatus.FAILED
    assert doc.error
    assert auth_api.get(f"/api/v1/documents/{doc.pk}/").json()["error"] == doc.error


def test_viewer_cannot_upload_reindex_or_delete(
    project: Project, auth_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    doc = paste(auth_api, project, django_capture_on_commit_callbacks)
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    client = api_for(viewer)
    assert (
        client.post(
            "/api/v1/documents/", {"project": str(project.pk), "title": "a", "text": "b"}, format="json"
        ).status_code
        == 403
    )
    assert client.post(f"/api/v1/documents/{doc['id']}/reindex/").status_code == 403
    assert client.delete(f"/api/v1/documents/{doc['id']}/").status_code == 403
    assert client.get(f"/api/v1/documents/{doc['id']}/").status_code == 200


def test_list_filters_by_project_and_status_and_searches_titles(
    auth_api: APIClient, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = make_project(user, "First")
    second = make_project(user, "Second")
    paste(auth_api, first, django_capture_on_commit_callbacks, title="Alpha report")
    paste(auth_api, first, django_capture_on_commit_callbacks, title="Beta memo", text=ARTICLE + " (memo)")
    paste(auth_api, second, django_capture_on_commit_callbacks, title="Gamma")
    listing = auth_api.get(f"/api/v1/documents/?project={first.pk}").json()
    assert listing["count"] == 2
    assert {d["title"] for d in listing["results"]} == {"Alpha report", "Beta memo"}
    assert auth_api.get(f"/api/v1/documents/?project={first.pk}&search=alpha").json()["count"] == 1
    assert auth_api.get(f"/api/v1/documents/?project={first.pk}&status=failed").json()["count"] == 0
    ordered = auth_api.get(f"/api/v1/documents/?project={first.pk}&ordering=title").json()["results"]
    assert [d["title"] for d in ordered] == ["Alpha report", "Beta memo"]
    assert auth_api.get("/api/v1/documents/?status=bogus").status_code == 400
    # A project of mine with nothing in it lists empty; a malformed or unknown id is a 404.
    empty = make_project(user, "Empty")
    assert auth_api.get(f"/api/v1/documents/?project={empty.pk}").json() == {
        "count": 0, "next": None, "previous": None, "results": []
    }  # fmt: skip
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = auth_api.get(f"/api/v1/documents/?project={bad}")
        assert response.status_code == 404


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_the_direct_document_representation_equals_drfs_field_by_field_one(
    project: Project, settings: Any, zone: str
) -> None:
    from django.utils import timezone

    from documents.api import DocumentOut

    settings.TIME_ZONE = zone
    timezone.deactivate()
    docs = [
        Document.objects.create(project=project, title="Plain", format="txt"),
        Document.objects.create(
            project=project,
            title="Ünïcode — “quoted” \u2028 title",
            external_id="ext-1",
            source="https://example.org/a?b=c",
            original_filename="report (final).pdf",
            content_type="application/pdf",
            format="pdf",
            size_bytes=2**40,
            status=DocumentStatus.FAILED,
            error="This PDF is encrypted.",
            chunk_count=7,
            content_hash="ab" * 32,
            metadata={"tags": ["a", "b c"], "nested": {"n": [1, 2.5, None, True]}},
        ),
        Document.objects.create(project=project, title="No tags key", metadata={"author": "X"}),
    ]
    rows = {
        r["id"]: r for r in Document.objects.filter(pk__in=[d.pk for d in docs]).values(*DOCUMENT_OUT_COLUMNS)
    }
    for doc in Document.objects.filter(pk__in=[d.pk for d in docs]):
        # The list endpoint serialises `.values()` rows, the others model instances.
        assert_same_as_drf(DocumentOut(), doc, DocumentOut(doc).data)
        assert_same_as_drf(DocumentOut(), doc, DocumentOut(rows[doc.pk]).data)


def test_reindex_reembeds_and_keeps_one_set_of_chunks(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    doc = paste(auth_api, project, django_capture_on_commit_callbacks)
    before = set(Chunk.objects.filter(document_id=doc["id"]).values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_api.post(f"/api/v1/documents/{doc['id']}/reindex/")
    assert response.status_code == 202
    after = set(Chunk.objects.filter(document_id=doc["id"]).values_list("pk", flat=True))
    assert len(after) == len(before)
    assert after.isdisjoint(before)  # re-embedded from scratch
    assert Document.objects.get(pk=doc["id"]).status == DocumentStatus.READY


def test_download_returns_the_original_bytes_as_an_attachment(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    content = b"# Heading\n\nSome *markdown* text about volcanoes."
    upload = SimpleUploadedFile("../../etc/notes.md", content, content_type="text/markdown")
    with django_capture_on_commit_callbacks(execute=True):
        created = auth_api.post(
            "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
        ).json()
    response = auth_api.get(f"/api/v1/documents/{created['id']}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Disposition"].startswith("attachment")
    assert "notes.md" in response["Content-Disposition"]
    assert ".." not in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_chunks_endpoint_lists_offsets_without_vectors(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    doc = paste(auth_api, project, django_capture_on_commit_callbacks)
    body = auth_api.get(f"/api/v1/documents/{doc['id']}/chunks/").json()
    assert body["count"] >= 1
    first = body["results"][0]
    assert set(first) == {"id", "document", "index", "text", "start", "end", "token_count", "location"}
    assert first["location"] is None  # pasted text has no pages or sections
    text = Document.objects.get(pk=doc["id"]).text
    assert text[first["start"] : first["end"]] == first["text"]


def test_delete_removes_chunks_and_the_search_index_forgets_them(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    doc = paste(auth_api, project, django_capture_on_commit_callbacks)
    url = f"/api/v1/projects/{project.pk}/search/?q=chlorophyll&mode=lexical"
    assert auth_api.get(url).json()["results"]
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_api.delete(f"/api/v1/documents/{doc['id']}/").status_code == 204
    assert not Chunk.objects.filter(document_id=doc["id"]).exists()
    assert auth_api.get(url).json()["results"] == []


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_search_ranks_the_relevant_passage_first(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any, mode: str
) -> None:
    paste(auth_api, project, django_capture_on_commit_callbacks, title="Plants", external_id="bio-1")
    paste(
        auth_api,
        project,
        django_capture_on_commit_callbacks,
        title="Rome",
        text="The Roman Empire built roads and aqueducts across Europe. Latin was its language.",
    )
    response = auth_api.get(
        f"/api/v1/projects/{project.pk}/search/",
        {"q": "How do plants turn light into energy?", "k": 5, "mode": mode},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results
    top = results[0]
    assert top["title"] == "Plants"
    assert top["external_id"] == "bio-1"
    assert set(top) == {
        "document",
        "title",
        "external_id",
        "project",
        "project_title",
        "chunk",
        "text",
        "start",
        "end",
        "score",
        "location",
    }
    assert top["location"] is None  # pasted text: no pages or sections
    assert top["project"] == str(project.pk) and top["project_title"] == project.title
    text = Document.objects.get(pk=top["document"]).text
    assert text[top["start"] : top["end"]] == top["text"]
    for hit in search.search(project_ids=[project.pk], query="light energy", k=5, mode=mode):
        assert_same_as_drf(HitOut(), hit, HitOut(hit).data)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({}, "q"),
        ({"q": "x", "k": 0}, "k"),
        ({"q": "x", "k": 101}, "k"),
        ({"q": "x", "k": "ten"}, "k"),
        ({"q": "x", "mode": "fuzzy"}, "mode"),
        ({"q": "x" * 1001}, "q"),
    ],
)
def test_search_rejects_bad_parameters(
    auth_api: APIClient, project: Project, params: dict[str, Any], field: str
) -> None:
    for url in (f"/api/v1/projects/{project.pk}/search/", "/api/v1/search/"):
        response = auth_api.get(url, params)
        assert response.status_code == 400
        assert field in response.json()


def test_search_of_all_projects_refuses_a_project_that_is_not_an_id(auth_api: APIClient) -> None:
    response = auth_api.get("/api/v1/search/", {"q": "x", "project": "not-a-uuid"})
    assert response.status_code == 400
    assert "project" in response.json()


def test_search_of_all_projects_names_each_hits_project_and_reads_only_mine(
    user: Any, other_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mine = make_project(user, "Botany")
    shared = make_project(other_user, "Shared botany", viewer=user)
    secret = make_project(other_user, "Their botany")
    owner_api, other_api = api_for(user), api_for(other_user)
    paste(owner_api, mine, django_capture_on_commit_callbacks, title="Mine")
    paste(other_api, shared, django_capture_on_commit_callbacks, title="Shared")
    paste(other_api, secret, django_capture_on_commit_callbacks, title="Secret")

    response = owner_api.get("/api/v1/search/", {"q": "chlorophyll", "mode": "lexical"})
    assert response.status_code == 200
    hits = response.json()["results"]
    assert {(h["project"], h["project_title"], h["title"]) for h in hits} == {
        (str(mine.pk), "Botany", "Mine"),
        (str(shared.pk), "Shared botany", "Shared"),
    }
    # Narrowed to named projects; one the caller cannot read adds nothing (and says nothing).
    narrowed = owner_api.get(
        "/api/v1/search/", {"q": "chlorophyll", "project": [str(shared.pk), str(secret.pk)]}
    )
    assert {h["title"] for h in narrowed.json()["results"]} == {"Shared"}
    assert (
        owner_api.get("/api/v1/search/", {"q": "chlorophyll", "project": str(secret.pk)}).json()["results"]
        == []
    )


def test_search_of_an_empty_project_returns_no_results(auth_api: APIClient, project: Project) -> None:
    response = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": "anything"})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_duplicate_external_id_is_refused(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    paste(auth_api, project, django_capture_on_commit_callbacks, external_id="doc-7")
    response = auth_api.post(
        "/api/v1/documents/",
        {"project": str(project.pk), "title": "t", "text": "u", "external_id": "doc-7"},
        format="json",
    )
    assert response.status_code == 409  # a clash with what exists, not malformed input
    assert "external_id" in response.json()


def test_api_filestream_of_a_large_upload_is_not_read_past_the_limit(settings: Any) -> None:
    from django.core.exceptions import ValidationError

    from documents.services import read_upload

    settings.MAX_UPLOAD_BYTES = 10
    stream = io.BytesIO(b"a" * 10_000)
    with pytest.raises(ValidationError):
        read_upload(stream)
    assert stream.tell() == 11


def test_a_document_already_queued_for_reindexing_is_not_queued_again(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    from documents.services import ALREADY_QUEUED
    from documents.tests.factories import DocumentFactory

    doc = DocumentFactory(project=project, status=DocumentStatus.READY)
    with django_capture_on_commit_callbacks(execute=False) as published:
        first = auth_api.post(f"/api/v1/documents/{doc.pk}/reindex/")
        again = auth_api.post(f"/api/v1/documents/{doc.pk}/reindex/")
    assert first.status_code == 202 and first.json()["status"] == "pending"
    assert again.status_code == 409
    assert again.json() == {"detail": ALREADY_QUEUED}
    assert len(published) == 1, "one wake-up for the worker, not two"
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.PROCESSING)
    assert auth_api.post(f"/api/v1/documents/{doc.pk}/reindex/").status_code == 409


HOSTILE_QUERIES = [
    '"unclosed',
    "title:photosynthesis",
    "light AND (energy OR",
    "[a TO z] {b} <c>",
    "energy~2 light^3",
    "+chlorophyll -leaf *",
    "\\\\ ' ; -- DROP TABLE documents_chunk",
    "Москва 日本語のテキスト 🌿",
    "light " * 150,
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_any_query_is_words_never_syntax_on_the_api_and_the_pages(
    auth_api: APIClient,
    owner_client: Any,
    project: Project,
    django_capture_on_commit_callbacks: Any,
    query: str,
) -> None:
    paste(auth_api, project, django_capture_on_commit_callbacks)
    for mode in ("hybrid", "lexical", "dense"):
        response = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": query, "mode": mode})
        assert response.status_code == 200, (mode, response.content[:300])
        assert isinstance(response.json()["results"], list)
        page = owner_client.get(f"/projects/{project.pk}/search/", {"q": query, "mode": mode})
        assert page.status_code == 200
    everywhere = auth_api.get("/api/v1/search/", {"q": query})
    assert everywhere.status_code == 200


def test_a_query_too_long_or_holding_a_nul_is_a_400_and_the_page_still_answers(
    auth_api: APIClient, owner_client: Any, project: Project
) -> None:
    for query in ("x" * 10_000, "light\x00energy"):
        response = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": query})
        assert response.status_code == 400, response.content[:300]
        assert "q" in response.json()
        assert owner_client.get(f"/projects/{project.pk}/search/", {"q": query}).status_code == 200


def test_an_editor_renames_a_document_and_search_finds_the_new_title(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    doc = paste(auth_api, project, django_capture_on_commit_callbacks)
    url = f"/api/v1/documents/{doc['id']}/"
    response = auth_api.patch(url, {"title": "  Photosynthesis   primer "}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "Photosynthesis primer"
    hits = search.search(project_ids=[project.pk], query="primer", mode="lexical", cut=False).hits
    assert hits and all(hit.document_title == "Photosynthesis primer" for hit in hits)
    assert auth_api.put(url, {"title": "x"}, format="json").status_code == 405


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 301}, "title"),
        ({}, "title"),
        ({"title": "Fine", "status": "ready"}, "status"),
        ({"title": ["a"]}, "title"),
    ],
)
def test_a_rename_takes_one_readable_title_and_nothing_else(
    auth_api: APIClient, project: Project, body: dict[str, Any], field: str
) -> None:
    from documents.tests.factories import DocumentFactory

    doc = DocumentFactory(project=project, title="Kept")
    response = auth_api.patch(f"/api/v1/documents/{doc.pk}/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    doc.refresh_from_db()
    assert doc.title == "Kept"
