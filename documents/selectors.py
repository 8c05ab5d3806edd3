"""Reads on documents, always scoped to what the user may see."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.http import FileResponse, Http404
from django.utils import timezone

from documents.models import Chunk, Document, DocumentStatus, ImportBatch
from projects.access import projects_visible_to, require
from projects.models import Project, Role


def documents_visible_to(user: Any) -> QuerySet[Document]:
    return Document.objects.filter(project__in=projects_visible_to(user))


def document_for(user: Any, document_id: Any, *, need: str = Role.VIEWER) -> Document:
    """The document if the user may act on it at `need` level; 404 for outsiders."""
    try:
        pk = document_id if isinstance(document_id, UUID) else UUID(str(document_id))
    except (ValueError, TypeError):
        raise Http404("No such document.") from None
    doc = documents_visible_to(user).select_related("project").filter(pk=pk).first()
    if doc is None:
        raise Http404("No such document.")
    require(user, doc.project, need)
    return doc


def chunks_of(document: Document) -> QuerySet[Chunk]:
    return document.chunks.order_by("index").defer("embedding")


def chunk_spans(*, project_id: Any, chunk_ids: Any) -> dict[int, tuple[str, int, int]]:
    """(document id, start, end) of each of these chunks that is still in the project."""
    rows = Chunk.objects.filter(project_id=project_id, pk__in=list(chunk_ids)).values_list(
        "pk", "document_id", "start", "end"
    )
    return {pk: (str(doc), start, end) for pk, doc, start, end in rows}


# --- bulk imports and their progress ---------------------------------------------

# Failure reasons listed per import, of each kind (records, documents that failed ingest).
IMPORT_FAILURES_SHOWN = 5
# The project page shows imports still running, or finished within this long, at most this many.
IMPORTS_RECENT_WITHIN = timedelta(hours=24)
IMPORTS_RECENT_LIMIT = 3
_UNFINISHED = (DocumentStatus.PENDING, DocumentStatus.PROCESSING)
IMPORT_FAILURE_KINDS = [
    ("record", "A record that never became a document"),
    ("ingest", "A document whose ingest failed"),
]
_REASON_MAX = 300


@dataclass(frozen=True)
class ImportFailure:
    """Why one record or document of an import is not searchable."""

    kind: str  # one of IMPORT_FAILURE_KINDS
    source: str  # the record's file and line, or the document's title
    reason: str


@dataclass(frozen=True)
class ImportProgress:
    """One import's figures: what it created, how far ingest is, and what failed."""

    id: UUID
    source: str
    started_by: str  # the importer's email, "" once the account is gone
    started_at: datetime
    creating_finished_at: datetime | None  # when it stopped creating documents
    created: int
    skipped: int
    failed_records: int
    ready: int
    failed: int  # documents whose ingest failed
    pending: int
    processing: int
    last_ready_at: datetime | None
    rate: float  # documents ready per second since the import started
    finished: bool  # done creating, and nothing left to ingest
    failures: tuple[ImportFailure, ...]
    more_failures: int  # failures not listed in `failures`

    @property
    def unfinished(self) -> int:
        return self.pending + self.processing

    @property
    def done(self) -> int:
        """Documents ingest is finished with, ready or failed."""
        return self.ready + self.failed

    @property
    def all_failed(self) -> int:
        return self.failed + self.failed_records


def imports_of(project: Project) -> QuerySet[ImportBatch]:
    """A project's imports, newest first; the caller has checked the user may read the project."""
    return ImportBatch.objects.filter(project=project).select_related("started_by").order_by("-started_at")


def imports_recent(project: Project, *, now: datetime | None = None) -> list[ImportProgress]:
    """The project's imports still running or finished within the last day, newest first (a few)."""
    now = now or timezone.now()
    since = now - IMPORTS_RECENT_WITHIN
    # An import killed before it finished never sets finished_at: it drops out a day after it
    # started, unless documents of it still wait for ingest.
    waiting = Document.objects.filter(batch=OuterRef("pk"), status__in=_UNFINISHED)
    batches = imports_of(project).filter(
        Q(started_at__gte=since) | Q(finished_at__gte=since) | Exists(waiting)
    )
    return imports_progress(list(batches[:IMPORTS_RECENT_LIMIT]), now=now)


def _reason(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"


def imports_progress(batches: list[ImportBatch], *, now: datetime | None = None) -> list[ImportProgress]:
    """The progress of each import, in order: one query for all their counts, one for failures."""
    if not batches:
        return []
    now = now or timezone.now()
    ids = [b.pk for b in batches]
    counts: dict[UUID, dict[str, int]] = defaultdict(dict)
    last_ready: dict[UUID, datetime] = {}
    rows = (
        Document.objects.filter(batch_id__in=ids)
        .order_by()
        .values("batch_id", "status")
        .annotate(n=Count("pk"), last=Max("status_changed_at"))
    )
    for row in rows:
        counts[row["batch_id"]][row["status"]] = row["n"]
        if row["status"] == DocumentStatus.READY:
            last_ready[row["batch_id"]] = row["last"]

    ingest_failures: dict[UUID, list[ImportFailure]] = defaultdict(list)
    failing = [pk for pk in ids if counts[pk].get(DocumentStatus.FAILED)]
    if failing:
        # The first few failed documents of each import, in one query.
        ranked = (
            Document.objects.filter(batch_id__in=failing, status=DocumentStatus.FAILED)
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("batch_id")],
                    order_by=[F("status_changed_at").asc(), F("pk").asc()],
                )
            )
            .filter(rank__lte=IMPORT_FAILURES_SHOWN)
            .order_by("batch_id", "rank")
            .values_list("batch_id", "title", "error")
        )
        for batch_id, title, error in ranked:
            ingest_failures[batch_id].append(
                ImportFailure(kind="ingest", source=title, reason=_reason(error) or "failed")
            )

    return [_progress(b, counts[b.pk], last_ready.get(b.pk), ingest_failures[b.pk], now) for b in batches]


def _progress(
    batch: ImportBatch,
    counts: dict[str, int],
    last_ready_at: datetime | None,
    ingest_failures: list[ImportFailure],
    now: datetime,
) -> ImportProgress:
    ready, failed = counts.get(DocumentStatus.READY, 0), counts.get(DocumentStatus.FAILED, 0)
    pending, processing = counts.get(DocumentStatus.PENDING, 0), counts.get(DocumentStatus.PROCESSING, 0)
    finished = batch.finished_at is not None and pending + processing == 0
    # The batch's counter is saved every so often while it runs; its documents count at once.
    # Documents deleted since leave the counter as the larger.
    created = max(batch.created, sum(counts.values()))
    until = (last_ready_at or now) if finished else now
    seconds = (until - batch.started_at).total_seconds()
    rate = ready / seconds if ready and seconds > 0 else 0.0
    records = [
        ImportFailure(
            kind="record", source=str(f.get("source", "")), reason=_reason(str(f.get("reason", "")))
        )
        for f in (batch.failures if isinstance(batch.failures, list) else [])[:IMPORT_FAILURES_SHOWN]
        if isinstance(f, dict)
    ]
    failures = (*records, *ingest_failures)
    return ImportProgress(
        id=batch.pk,
        source=batch.source,
        started_by=getattr(batch.started_by, "email", "") or "",
        started_at=batch.started_at,
        creating_finished_at=batch.finished_at,
        created=created,
        skipped=batch.skipped,
        failed_records=batch.failed_records,
        ready=ready,
        failed=failed,
        pending=pending,
        processing=processing,
        last_ready_at=last_ready_at,
        rate=rate,
        finished=finished,
        failures=failures,
        more_failures=max(0, failed + batch.failed_records - len(failures)),
    )


def document_file_download(*, document: Document) -> FileResponse:
    """The document's stored file as an attachment under its original name; Http404 when it has none or it is gone."""
    if not document.file:
        raise Http404("The document has no stored file.")
    try:
        handle = document.file.open("rb")
    except OSError:
        raise Http404("The document's file is gone.") from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=document.original_filename or "document",
        content_type="application/octet-stream",
    )
    # An upload can be HTML or SVG: the browser is to save it, never render it as a page of ours.
    response["X-Content-Type-Options"] = "nosniff"
    return response


def documents_for_reindex(
    *, project_ids: list[Any] | None = None, failed_only: bool = False
) -> QuerySet[Document]:
    """Documents to extract and embed again, oldest first: all, or of `project_ids`, or only failed ones."""
    documents = Document.objects.order_by("created_at").only("pk", "status", "project_id")
    if project_ids:
        documents = documents.filter(project_id__in=project_ids)
    if failed_only:
        documents = documents.filter(status=DocumentStatus.FAILED)
    return documents
