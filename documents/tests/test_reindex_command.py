"""`reindex_documents` re-embeds documents and reports progress."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from documents.models import Chunk, Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Project

pytestmark = pytest.mark.django_db


def test_reindex_sync_rebuilds_chunks_of_the_chosen_project(project: Project, user: Any) -> None:
    from conftest import make_project

    other = make_project(user, "Other")
    mine = DocumentFactory(project=project, pasted_text="Kelp forests shelter sea otters. Urchins eat kelp.")
    theirs = DocumentFactory(project=other)
    out = StringIO()
    call_command("reindex_documents", "--project", str(project.pk), "--sync", stdout=out, stderr=StringIO())
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == DocumentStatus.READY
    assert Chunk.objects.filter(document=mine).count() == mine.chunk_count > 0
    assert theirs.status == DocumentStatus.PENDING  # untouched
    assert "1 ready, 0 failed of 1" in out.getvalue()


def test_failed_only_picks_failed_documents(project: Project) -> None:
    ok = DocumentFactory(project=project, status=DocumentStatus.READY)
    bad = DocumentFactory(project=project, status=DocumentStatus.FAILED, error="old")
    call_command("reindex_documents", "--failed-only", "--sync", stdout=StringIO(), stderr=StringIO())
    assert Document.objects.get(pk=bad.pk).status == DocumentStatus.READY
    assert Document.objects.get(pk=ok.pk).status == DocumentStatus.READY
    assert Document.objects.get(pk=ok.pk).chunk_count == 0  # not re-indexed


def test_reindex_queues_each_document_for_a_worker_and_sync_publishes_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from documents import tasks

    queued: list[Any] = []
    monkeypatch.setattr(tasks, "enqueue_ingest", queued.append)
    docs = [DocumentFactory(project=project, status=DocumentStatus.READY) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reindex_documents", "--no-wait", stdout=StringIO(), stderr=StringIO())
    assert sorted(queued) == sorted(d.pk for d in docs)
    assert set(Document.objects.values_list("status", flat=True)) == {DocumentStatus.PENDING}

    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reindex_documents", "--sync", stdout=StringIO(), stderr=StringIO())
    assert queued == []
    assert set(Document.objects.values_list("status", flat=True)) == {DocumentStatus.READY}


def test_bad_project_id_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="UUID"):
        call_command("reindex_documents", "--project", "nope", stdout=StringIO())
