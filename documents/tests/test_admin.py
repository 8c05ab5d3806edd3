"""The staff admin for documents and chunks: read-only pipeline data, re-index through the services."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from documents import search, services
from documents.models import Chunk, Document, DocumentStatus
from documents.search.engine import ensure_partitions
from documents.tests.factories import DocumentFactory

pytestmark = pytest.mark.django_db

# Recognisable bytes standing in for an embedding: they must never reach a page.
SECRET_VECTOR = b"EMBEDDING-BYTES-MUST-NOT-SHOW!!!" * 48  # 1,536 bytes = 384 float32


def _chunk(document: Document, index: int = 0, text: str = "Coral reefs bleach in warm water.") -> Chunk:
    ensure_partitions([document.project_id])
    return Chunk.objects.create(
        document=document,
        project=document.project,
        index=index,
        text=text,
        start=0,
        end=len(text),
        token_count=7,
        embedding=SECRET_VECTOR,
        dim=384,
    )


@pytest.fixture
def ready_document(user: Any, project: Any, django_capture_on_commit_callbacks: Any) -> Document:
    """A document really ingested (tasks run eagerly once the creating transaction commits)."""
    with django_capture_on_commit_callbacks(execute=True):
        doc = services.document_create(
            user=user,
            project=project,
            title="Coral reefs",
            text="Rising sea temperatures bleach coral reefs. Bleached corals can recover.",
            external_id="reef-1",
        )
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY
    return doc


def test_document_pages_render_for_a_superuser(admin_client: Any, project: Any) -> None:
    doc = DocumentFactory(project=project, title="Field notes", external_id="notes-7", text="x" * 5000)

    changelist = admin_client.get(
        reverse("admin:documents_document_changelist"),
        {
            "status__exact": "pending",
            "format__exact": "txt",
            "project__id__exact": str(project.pk),
            "q": "notes-7",
        },
    )
    change = admin_client.get(reverse("admin:documents_document_change", args=[doc.pk]))

    assert changelist.status_code == 200
    assert b"Field notes" in changelist.content
    assert change.status_code == 200
    assert b"5,000 characters in all" in change.content  # long text is shown truncated
    for computed in (
        b'name="content_hash"',
        b'name="chunk_count"',
        b'name="error"',
        b'name="status"',
    ):
        assert computed not in change.content  # read-only, not form inputs
    assert b'name="title"' in change.content


def test_documents_are_not_added_through_the_admin(admin_client: Any) -> None:
    assert admin_client.get(reverse("admin:documents_document_add")).status_code == 403


def test_document_changelist_queries_do_not_grow_with_documents(admin_client: Any, project: Any) -> None:
    url = reverse("admin:documents_document_changelist")
    DocumentFactory.create_batch(2, project=project)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    DocumentFactory.create_batch(10)  # in other projects too
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    # The project filter lists the new projects in one query; rows add none.
    assert len(many.captured_queries) == len(few.captured_queries)


def test_chunk_pages_render_without_the_embedding_bytes(admin_client: Any, project: Any) -> None:
    chunk = _chunk(DocumentFactory(project=project, title="Reef survey"))

    changelist = admin_client.get(
        reverse("admin:documents_chunk_changelist"),
        {"project__id__exact": str(project.pk), "q": "coral"},
    )
    change = admin_client.get(reverse("admin:documents_chunk_change", args=[chunk.pk]))

    assert changelist.status_code == 200
    assert change.status_code == 200
    assert b"Reef survey" in changelist.content
    assert b"Coral reefs bleach in warm water." in change.content
    for page in (changelist, change):
        assert b"384 floats" in page.content
        assert b"EMBEDDING-BYTES" not in page.content
        assert SECRET_VECTOR[:24].hex().encode() not in page.content
        assert base64.b64encode(SECRET_VECTOR)[:24] not in page.content


def test_chunks_are_read_only(admin_client: Any, project: Any) -> None:
    chunk = _chunk(DocumentFactory(project=project))

    add = admin_client.get(reverse("admin:documents_chunk_add"))
    change = admin_client.get(reverse("admin:documents_chunk_change", args=[chunk.pk]))
    post = admin_client.post(reverse("admin:documents_chunk_change", args=[chunk.pk]), {"text": "edited"})

    assert add.status_code == 403
    assert b'name="text"' not in change.content
    assert post.status_code == 403
    chunk.refresh_from_db()
    assert chunk.text == "Coral reefs bleach in warm water."


def test_chunk_changelist_queries_do_not_grow_with_chunks(admin_client: Any, project: Any) -> None:
    url = reverse("admin:documents_chunk_changelist")
    doc = DocumentFactory(project=project)
    _chunk(doc, 0)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for i in range(1, 11):
        _chunk(DocumentFactory(project=project), i)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_reindex_action_puts_documents_back_to_pending_and_ingests_them_again(
    admin_client: Any, ready_document: Document, django_capture_on_commit_callbacks: Any
) -> None:
    attempts = ready_document.attempts

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("admin:documents_document_changelist"),
            {
                "action": "reindex_documents",
                "_selected_action": [str(ready_document.pk)],
            },
        )
        ready_document.refresh_from_db()
        assert ready_document.status == DocumentStatus.PENDING
        assert ready_document.indexed_hash == ""  # forced: embed again even though unchanged

    assert response.status_code == 302
    assert len(callbacks) == 1  # the ingest job, enqueued on commit
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Queued 1 document for re-indexing."]

    callbacks[0]()  # the commit happens: the eager task ingests inline
    ready_document.refresh_from_db()
    assert ready_document.status == DocumentStatus.READY
    assert ready_document.attempts == attempts + 1
    assert ready_document.chunks.count() == ready_document.chunk_count > 0


def test_deleting_a_document_in_the_admin_drops_it_from_the_search_index(
    admin_client: Any, ready_document: Document
) -> None:
    project = ready_document.project
    word = ready_document.chunks.first().text.split()[0]
    assert search.search(project_ids=[project.pk], query=word, mode="lexical")

    response = admin_client.post(
        reverse("admin:documents_document_delete", args=[ready_document.pk]),
        {"post": "yes"},
    )

    assert response.status_code == 302
    assert not Document.objects.filter(pk=ready_document.pk).exists()
    assert not Chunk.objects.filter(document_id=ready_document.pk).exists()
    assert search.search(project_ids=[project.pk], query=word, mode="lexical").hits == []


def test_imports_are_listed_read_only_with_their_failures(admin_client: Any, user: Any, project: Any) -> None:
    from documents.models import ImportBatch

    batch = ImportBatch.objects.create(
        project=project,
        started_by=user,
        source="corpus.jsonl",
        created=3,
        failed_records=1,
        failures=[{"source": "corpus.jsonl:7", "reason": "not JSON"}],
    )
    listing = admin_client.get(reverse("admin:documents_importbatch_changelist"))
    assert listing.status_code == 200
    assert "corpus.jsonl" in listing.content.decode()
    page = admin_client.get(reverse("admin:documents_importbatch_change", args=[batch.pk]))
    assert page.status_code == 200
    assert "not JSON" in page.content.decode()
    assert admin_client.get(reverse("admin:documents_importbatch_add")).status_code == 403
    posted = admin_client.post(
        reverse("admin:documents_importbatch_change", args=[batch.pk]), {"created": 99}
    )
    assert posted.status_code == 403
    batch.refresh_from_db()
    assert batch.created == 3


def _stored(project: Any, content: bytes = b"%PDF-1.4 field notes", name: str = "notes.pdf") -> Document:
    from django.core.files.base import ContentFile

    return DocumentFactory(
        project=project, pasted_text="", original_filename=name, file=ContentFile(content, name=name)
    )


def test_staff_download_the_stored_file_as_an_attachment(admin_client: Any, project: Any) -> None:
    doc = _stored(project)

    response = admin_client.get(reverse("admin:documents_document_download", args=[doc.pk]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 field notes"
    assert response["Content-Disposition"] == 'attachment; filename="notes.pdf"'
    assert response["Content-Type"] == "application/octet-stream"  # never rendered inline
    assert response["X-Content-Type-Options"] == "nosniff"


def test_document_pages_link_the_file_to_the_admin_download_not_to_media(
    admin_client: Any, project: Any
) -> None:
    doc = _stored(project)
    url = reverse("admin:documents_document_download", args=[doc.pk])

    change = admin_client.get(reverse("admin:documents_document_change", args=[doc.pk]))
    changelist = admin_client.get(reverse("admin:documents_document_changelist"))

    for page in (change, changelist):
        assert f'href="{url}"'.encode() in page.content
        assert b'href="/media/' not in page.content


def test_download_is_refused_to_accounts_that_are_not_staff(client: Any, user: Any, project: Any) -> None:
    doc = _stored(project)
    url = reverse("admin:documents_document_download", args=[doc.pk])
    client.force_login(user)  # the project's owner, but not staff

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_download_is_refused_to_staff_without_the_view_permission(client: Any, project: Any) -> None:
    from accounts.tests.factories import UserFactory

    doc = _stored(project)
    client.force_login(UserFactory(is_staff=True))

    assert client.get(reverse("admin:documents_document_download", args=[doc.pk])).status_code == 403


def test_download_is_404_without_a_document_or_its_file(admin_client: Any, project: Any) -> None:
    import uuid

    pasted = DocumentFactory(project=project)
    gone = _stored(project)
    gone.file.storage.delete(gone.file.name)

    for pk in (uuid.uuid4(), "not-a-uuid", pasted.pk, gone.pk):
        response = admin_client.get(reverse("admin:documents_document_download", args=[pk]))
        assert response.status_code == 404, pk
