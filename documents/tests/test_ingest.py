"""The ingest pipeline: batch claims, fencing, resumed claims, unchanged content, failures, wake-ups."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone

from documents import embedder, ingest, services, tasks
from documents.models import Chunk, Document, DocumentStatus, IngestPriority
from documents.tests.factories import DocumentFactory
from projects.models import Project
from projects.selectors import first_owner

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


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wake-ups published to the broker (counted, not sent)."""
    sent: list[int] = []
    monkeypatch.setattr(tasks, "publish_wakeup", lambda: sent.append(1) or True)
    cache.delete(ingest.WAKE_KEY)
    return sent


def _docs(project: Project, n: int, **fields: Any) -> list[Document]:
    return [
        DocumentFactory(project=project, pasted_text=f"Note {i}. {TEXT} Filed under topic {i}.", **fields)
        for i in range(n)
    ]


def test_one_job_embeds_many_documents_in_shared_batches(
    project: Project, encode_calls: list[int], settings: Any
) -> None:
    settings.INGEST_BATCH_DOCS = 10
    docs = _docs(project, 25)
    report = ingest.run(token="job-a", wake_others=False)
    assert report.ready == 25 and report.failed == 0
    assert report.batches == 3
    # One encoder call per claimed batch, holding every chunk of its documents.
    assert len(encode_calls) == 3
    assert sum(encode_calls) == Chunk.objects.filter(project=project).count()
    for d in docs:
        d.refresh_from_db()
        assert d.status == DocumentStatus.READY
        assert d.claimed_by == ""
        assert d.chunk_count == Chunk.objects.filter(document=d).count() > 0


def test_a_claim_takes_interactive_work_first_then_the_oldest(project: Project, settings: Any) -> None:
    bulk = _docs(project, 3, priority=IngestPriority.BULK)
    upload = DocumentFactory(project=project)
    now = timezone.now()
    for age, d in zip((30, 20, 10), bulk, strict=True):
        Document.objects.filter(pk=d.pk).update(status_changed_at=now - timedelta(minutes=age))
    claims = ingest.claim(token="job-a", limit=3)
    claimed = {c.document_id for c in claims}
    assert upload.pk in claimed
    assert claimed == {upload.pk, bulk[0].pk, bulk[1].pk}  # the newest bulk document waits


def test_a_claim_stops_at_its_byte_budget_but_always_takes_one(project: Project) -> None:
    docs = _docs(project, 3)
    Document.objects.filter(pk__in=[d.pk for d in docs]).update(size_bytes=600)
    assert len(ingest.claim(token="job-a", limit=10, max_bytes=1000)) == 1
    Document.objects.filter(pk=docs[1].pk).update(size_bytes=5000)
    assert len(ingest.claim(token="job-b", limit=10, max_bytes=1000)) == 1


def test_two_claimers_never_share_a_document(project: Project) -> None:
    _docs(project, 6)
    first = {c.document_id for c in ingest.claim(token="job-a", limit=4)}
    second = {c.document_id for c in ingest.claim(token="job-b", limit=4)}
    assert len(first) == 4 and len(second) == 2
    assert not first & second
    assert ingest.claim(token="job-c", limit=4) == []


def test_a_job_run_again_resumes_its_own_claim_at_once(project: Project, doc: Document) -> None:
    """A retried or re-delivered job must not take its own claim for another worker's."""
    (first,) = ingest.claim(token="job-a")
    assert Document.objects.get(pk=doc.pk).status == DocumentStatus.PROCESSING
    # Another job finds nothing: the claim is fresh and not its own.
    assert ingest.run(token="job-b", wake_others=False).claimed == 0
    report = ingest.run(token="job-a", wake_others=False)
    assert report.ready == 1
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY
    assert doc.attempts == first.attempt + 1  # resuming bumps the attempt, fencing the earlier run
    # The earlier run of the same job, had it survived, cannot write any more.
    assert not ingest.fail(doc.pk, first.attempt, "late failure")
    assert Document.objects.get(pk=doc.pk).status == DocumentStatus.READY


def test_a_task_retried_after_a_database_error_finishes_without_waiting(
    project: Project, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.STUCK_AFTER_S = 3600
    docs = _docs(project, 3)
    real_store = ingest._store
    failures = [OperationalError("server closed the connection unexpectedly")]

    def flaky(items: list[Any]) -> dict[str, str]:
        if failures:
            raise failures.pop()
        return real_store(items)

    monkeypatch.setattr(ingest, "_store", flaky)
    # Eager: the retry runs at once, with the same task id, as a broker re-delivery would.
    result = tasks.ingest_documents.apply(task_id="task-1", throw=False)
    assert result.successful(), result.traceback
    assert not failures
    for d in docs:
        d.refresh_from_db()
        assert d.status == DocumentStatus.READY, d.error
        assert d.attempts == 2
        assert Chunk.objects.filter(document=d).count() == d.chunk_count


def test_a_stale_claim_is_taken_over_and_the_old_worker_cannot_write(doc: Document, settings: Any) -> None:
    settings.STUCK_AFTER_S = 60
    Document.objects.filter(pk=doc.pk).update(
        status=DocumentStatus.PROCESSING,
        attempts=1,
        claimed_by="dead-job",
        status_changed_at=timezone.now() - timedelta(seconds=120),
    )
    assert ingest.run(token="job-b", wake_others=False).ready == 1
    doc.refresh_from_db()
    assert doc.attempts == 2
    # The dead worker's late write (attempt 1) is fenced off.
    assert not ingest.fail(doc.pk, 1, "late failure from the old worker")
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY


def test_a_batch_superseded_midway_stores_only_what_it_still_holds(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep, lost = _docs(project, 2)
    claims = ingest.claim(token="job-a")
    real_embed = ingest._embed

    def taken_over(items: list[Any]) -> dict[str, str]:
        # Another worker judged this one dead and claimed `lost` meanwhile.
        Document.objects.filter(pk=lost.pk).update(attempts=99, claimed_by="job-b")
        return real_embed(items)

    monkeypatch.setattr(ingest, "_embed", taken_over)
    outcomes = ingest.process(claims)
    assert outcomes == {str(keep.pk): DocumentStatus.READY, str(lost.pk): "superseded"}
    assert Chunk.objects.filter(document=keep).exists()
    assert not Chunk.objects.filter(document=lost).exists()
    assert Document.objects.get(pk=lost.pk).status == DocumentStatus.PROCESSING


def test_a_document_deleted_after_its_claim_is_skipped(project: Project) -> None:
    keep, gone = _docs(project, 2)
    claims = ingest.claim(token="job-a")
    Document.objects.filter(pk=gone.pk).delete()
    outcomes = ingest.process(claims)
    assert outcomes[str(keep.pk)] == DocumentStatus.READY
    assert outcomes[str(gone.pk)] == "superseded"
    assert not Chunk.objects.filter(document_id=gone.pk).exists()


def test_one_document_that_breaks_the_encoder_fails_alone(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = _docs(project, 2)
    Document.objects.filter(pk=bad.pk).update(title="POISON")
    real = embedder.encode

    def fragile(texts: list[str], **kwargs: Any) -> Any:
        if any("POISON" in t for t in texts):
            raise MemoryError
        return real(texts, **kwargs)

    monkeypatch.setattr(embedder, "encode", fragile)
    report = ingest.run(token="job-a", wake_others=False)
    assert (report.ready, report.failed) == (1, 1)
    bad.refresh_from_db()
    assert bad.status == DocumentStatus.FAILED and "MemoryError" in bad.error
    assert Document.objects.get(pk=good.pk).status == DocumentStatus.READY


def test_an_unreadable_document_fails_and_the_rest_of_the_batch_is_stored(project: Project) -> None:
    good = DocumentFactory(project=project, pasted_text=TEXT)
    missing = DocumentFactory(
        project=project, pasted_text="", file="documents/missing/file.pdf", original_filename="file.pdf"
    )
    report = ingest.run(token="job-a", wake_others=False)
    assert (report.ready, report.failed) == (1, 1)
    missing.refresh_from_db()
    assert "could not be read" in missing.error
    assert Document.objects.get(pk=good.pk).status == DocumentStatus.READY


def test_a_redelivered_job_does_nothing_once_the_document_is_ready(
    doc: Document, encode_calls: list[int]
) -> None:
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    chunk_ids = list(Chunk.objects.filter(document=doc).values_list("pk", flat=True))
    assert services.document_ingest(document_id=doc.pk) == "skipped"
    assert ingest.run(token="again", wake_others=False).claimed == 0
    assert list(Chunk.objects.filter(document=doc).values_list("pk", flat=True)) == chunk_ids
    assert len(encode_calls) == 1


def test_ingesting_here_skips_a_document_another_worker_holds(doc: Document) -> None:
    ingest.claim(token="job-a")
    assert services.document_ingest(document_id=doc.pk) == "skipped"
    assert not Chunk.objects.filter(document=doc).exists()


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


def _created(project: Project, n: int) -> list[Document]:
    """Documents added as people add them: through the service, which queues each for ingest."""
    owner = first_owner(project)
    first = project.documents.count()  # each text its own: the same text twice is a duplicate
    return [
        services.document_create(user=owner, project=project, title=f"Note {i}", text=f"Note {i}. {TEXT}")
        for i in range(first, first + n)
    ]


def test_new_documents_publish_one_wake_up_while_one_is_queued(
    project: Project, published: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _created(project, 5)
    assert len(published) == 1
    ingest.run(token="job-a", wake_others=False)  # a job starts: the next document wakes again
    with django_capture_on_commit_callbacks(execute=True):
        _created(project, 2)
    assert len(published) == 2


def test_a_failed_publish_lets_the_next_document_try_again(
    project: Project, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    attempts: list[int] = []
    monkeypatch.setattr(tasks, "publish_wakeup", lambda: attempts.append(1) and False)
    cache.delete(ingest.WAKE_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        _created(project, 3)
    assert len(attempts) == 3


def test_a_job_that_claims_a_full_batch_wakes_another(
    project: Project, published: list[int], settings: Any
) -> None:
    settings.INGEST_BATCH_DOCS = 2
    _docs(project, 5)
    report = ingest.run(token="job-a")
    assert report.ready == 5
    assert len(published) == 1  # deduplicated: the first invitation is still queued


def test_a_job_out_of_time_wakes_the_next_and_stops(
    project: Project, published: list[int], settings: Any
) -> None:
    settings.INGEST_BATCH_DOCS = 2
    _docs(project, 5)
    report = ingest.run(token="job-a", budget_s=0, wake_others=True)
    assert report.ready == 2
    assert len(published) == 1
    assert Document.objects.filter(project=project, status=DocumentStatus.PENDING).count() == 3


def test_the_sweep_wakes_once_for_old_work_and_never_per_document(
    project: Project, published: list[int], settings: Any
) -> None:
    settings.SWEEP_INTERVAL_S = 60
    fresh = _docs(project, 3)
    assert ingest.sweep() is False  # only fresh work: its own wake-up is on the way
    old = timezone.now() - timedelta(hours=1)
    Document.objects.filter(pk__in=[d.pk for d in fresh]).update(status_changed_at=old)
    assert ingest.sweep() is True
    assert ingest.sweep() is True
    assert len(published) == 2  # one message per sweep, whatever the number of documents
    Document.objects.filter(project=project).update(status=DocumentStatus.READY)
    assert ingest.sweep() is False


def test_the_sweep_counts_a_dead_workers_claim_as_waiting(
    project: Project, published: list[int], settings: Any
) -> None:
    settings.STUCK_AFTER_S = 60
    (d,) = _docs(project, 1)
    Document.objects.filter(pk=d.pk).update(
        status=DocumentStatus.PROCESSING, status_changed_at=timezone.now() - timedelta(seconds=120)
    )
    assert ingest.sweep() is True
    Document.objects.filter(pk=d.pk).update(status_changed_at=timezone.now())
    assert ingest.sweep() is False
