"""The ingest service: claims, idempotency, unchanged content, failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from documents import embedder, services
from documents.models import Chunk, Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Project

pytestmark = pytest.mark.django_db

TEXT = "Comets are icy bodies. Their tails point away from the sun. Halley's comet returns every 76 years."


@pytest.fixture
def doc(project: Project) -> Document:
    return DocumentFactory(project=project, pasted_text=TEXT)


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = embedder.encode

    def counting(texts: list[str], **kwargs: Any) -> Any:
        calls.append(len(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(embedder, "encode", counting)
    return calls


def test_a_redelivered_job_does_nothing_once_the_document_is_ready(
    doc: Document, encode_calls: list[int]
) -> None:
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    chunk_ids = list(Chunk.objects.filter(document=doc).values_list("pk", flat=True))
    assert services.document_ingest(document_id=doc.pk) == "skipped"
    assert list(Chunk.objects.filter(document=doc).values_list("pk", flat=True)) == chunk_ids
    assert len(encode_calls) == 1


def test_a_job_for_a_document_another_worker_holds_reports_busy(doc: Document) -> None:
    Document.objects.filter(pk=doc.pk).update(
        status=DocumentStatus.PROCESSING, status_changed_at=timezone.now()
    )
    assert services.document_ingest(document_id=doc.pk) == services.INGEST_BUSY
    assert not Chunk.objects.filter(document=doc).exists()


def test_a_stale_claim_is_taken_over_and_the_old_worker_cannot_write(doc: Document, settings: Any) -> None:
    settings.STUCK_AFTER_S = 60
    Document.objects.filter(pk=doc.pk).update(
        status=DocumentStatus.PROCESSING,
        attempts=1,
        status_changed_at=timezone.now() - timedelta(seconds=120),
    )
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    doc.refresh_from_db()
    assert doc.attempts == 2
    # The dead worker's late write (attempt 1) is fenced off.
    services._fail(doc.pk, 1, "late failure from the old worker")
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY


def test_reindex_of_unchanged_content_is_not_embedded_again_unless_forced(
    doc: Document, encode_calls: list[int]
) -> None:
    services.document_ingest(document_id=doc.pk)
    doc.refresh_from_db()
    services.document_requeue(document=doc)  # e.g. a sweeper re-run: same bytes
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    assert len(encode_calls) == 1
    services.document_requeue(document=doc, force=True)
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    assert len(encode_calls) == 2
    assert Chunk.objects.filter(document=doc).count() == Document.objects.get(pk=doc.pk).chunk_count


def test_an_embedding_crash_fails_the_document_with_a_reason(
    doc: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(texts: list[str], **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(embedder, "encode", broken)
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.FAILED
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.FAILED
    assert "MemoryError" in doc.error
    assert not Chunk.objects.filter(document=doc).exists()


def test_a_missing_stored_file_fails_with_a_reason(project: Project) -> None:
    doc = DocumentFactory(
        project=project, pasted_text="", file="documents/missing/file.pdf", original_filename="file.pdf"
    )
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.FAILED
    doc.refresh_from_db()
    assert "could not be read" in doc.error


def test_the_sweeper_requeues_only_old_pending_and_processing_work(
    project: Project, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from documents import tasks

    queued: list[Any] = []
    monkeypatch.setattr(tasks, "enqueue_ingest", queued.append)
    old = timezone.now() - timedelta(hours=1)
    stuck_pending = DocumentFactory(project=project)
    stuck_processing = DocumentFactory(project=project)
    fresh = DocumentFactory(project=project)
    done = DocumentFactory(project=project)
    Document.objects.filter(pk=stuck_pending.pk).update(status_changed_at=old)
    Document.objects.filter(pk=stuck_processing.pk).update(
        status=DocumentStatus.PROCESSING, status_changed_at=old
    )
    Document.objects.filter(pk=done.pk).update(status=DocumentStatus.READY, status_changed_at=old)
    assert services.documents_requeue_stuck(older_than_s=600) == 2
    assert set(queued) == {stuck_pending.pk, stuck_processing.pk}
    assert fresh.pk not in queued
