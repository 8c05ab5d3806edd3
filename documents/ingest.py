"""Ingest: the database is the queue of record; a broker message only wakes a worker.

A job claims up to `INGEST_BATCH_DOCS` claimable documents (pending, or processing
with a claim gone stale) with one conditional update, interactive uploads before
bulk imports and oldest first; extracts them; embeds all their chunks together in
full encoder batches; and writes each document fenced by its attempt number, so a
re-delivered job, a retried one or a worker that was presumed dead can never store
chunks twice. It goes on claiming until nothing is left or its time budget is
spent, then wakes another job if work remains.

Each claim carries the job's id (`claimed_by`): the same job run again, after a
database error or a broker re-delivery of a killed worker's message, recognises
its own claims and resumes them at once instead of waiting out the stale timeout.

Wake-ups are deduplicated through the cache: while one is queued and not yet
started, creating more documents publishes nothing more, so a 5,000-document
import leaves a handful of messages on the broker, not 5,000.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from core import metrics
from documents import chunking, embedder, locations, search, services
from documents.extraction import readers, sandbox
from documents.models import Chunk, Document, DocumentStatus, PageWords
from documents.search import index_text
from projects import webhooks

log = logging.getLogger(__name__)

# Set while a wake-up is queued and no job has started on it yet.
WAKE_KEY = "documents:ingest:wake-queued"


@dataclass(frozen=True)
class Claim:
    document_id: Any
    attempt: int


@dataclass
class JobReport:
    """What one ingest job did, by final status of the documents it claimed."""

    claimed: int = 0
    ready: int = 0
    failed: int = 0
    superseded: int = 0
    batches: int = 0
    statuses: dict[str, str] = field(default_factory=dict)  # document id -> outcome

    def add(self, outcomes: dict[str, str]) -> None:
        self.batches += 1
        self.claimed += len(outcomes)
        for pk, outcome in outcomes.items():
            self.statuses[pk] = outcome
            if outcome == DocumentStatus.READY:
                self.ready += 1
            elif outcome == DocumentStatus.FAILED:
                self.failed += 1
            else:
                self.superseded += 1


def _claimable(now: Any) -> Q:
    stale = now - timedelta(seconds=settings.STUCK_AFTER_S)
    return Q(status=DocumentStatus.PENDING) | Q(status=DocumentStatus.PROCESSING, status_changed_at__lt=stale)


def claimable_exists(*, older_than_s: float = 0) -> bool:
    """Whether any document waits to be claimed (pending at least `older_than_s`, or stale)."""
    now = timezone.now()
    waiting = Document.objects.filter(_claimable(now))
    if older_than_s:
        waiting = waiting.filter(status_changed_at__lt=now - timedelta(seconds=older_than_s))
    return waiting.exists()


def claim(*, token: str, limit: int | None = None, max_bytes: int | None = None) -> list[Claim]:
    """Take up to `limit` documents (and about `max_bytes` of input) for the job `token`.

    The job's own earlier claims come first (it was retried or re-delivered), then
    claimable documents by priority, oldest first. PostgreSQL skips rows another
    claimer has locked. The update re-checks that
    each row is still claimable, so two claimers never both get a document, and it
    bumps the attempt, which fences off any earlier holder.
    """
    limit = limit or settings.INGEST_BATCH_DOCS
    max_bytes = max_bytes or settings.INGEST_BATCH_BYTES
    now = timezone.now()
    own = Q(status=DocumentStatus.PROCESSING, claimed_by=token)
    with transaction.atomic():
        rows = list(
            Document.objects.filter(own).order_by("status_changed_at").values_list("pk", "size_bytes")[:limit]
        )
        if len(rows) < limit:
            rows += list(
                Document.objects.filter(_claimable(now))
                .exclude(own)
                .order_by("priority", "status_changed_at")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", "size_bytes")[: limit - len(rows)]
            )
        ids: list[Any] = []
        total = 0
        for pk, size in rows:
            if ids and total + size > max_bytes:
                break
            ids.append(pk)
            total += size
        if not ids:
            return []
        return _take(ids, _claimable(now) | own, token=token, now=now)


def _take(ids: list[Any], still: Q, *, token: str, now: Any) -> list[Claim]:
    """Claim those of `ids` that still match `still` for `token` (inside the caller's transaction)."""
    Document.objects.filter(still, pk__in=ids).update(
        status=DocumentStatus.PROCESSING,
        attempts=F("attempts") + 1,
        claimed_by=token,
        status_changed_at=now,
        error="",
    )
    claimed = list(
        Document.objects.filter(pk__in=ids, status=DocumentStatus.PROCESSING, claimed_by=token).values_list(
            "pk", "attempts", "project_id"
        )
    )
    _touch({project_id for _, _, project_id in claimed})
    return [Claim(pk, attempt) for pk, attempt, _ in claimed]


def _touch(project_ids: set[Any]) -> None:
    # Sorted, so two claimers lock the same projects in the same order.
    for project_id in sorted(project_ids, key=str):
        services.documents_changed(project_id=project_id)


@dataclass(eq=False)
class _Prepared:
    doc: Document
    attempt: int
    text: str
    fmt: str
    content_hash: str
    spans: list[chunking.ChunkSpan] | None  # None: content unchanged, keep the chunks
    vectors: Any = None
    title: str | None = None  # the file's own title, replacing one defaulted from the file name
    # Where each stretch of the text is in the file, and the words OCR read on scanned pages.
    locations: tuple[tuple[int, int, dict[str, Any]], ...] = ()
    ocr_words: dict[int, list[list[Any]]] = field(default_factory=dict)

    @property
    def index_title(self) -> str:
        return self.title or self.doc.title


def _document_bytes(doc: Document) -> bytes:
    if doc.file:
        with doc.file.open("rb") as fh:
            return fh.read()
    return doc.pasted_text.encode("utf-8")


def _prepare(doc: Document, attempt: int) -> _Prepared:
    """Read, extract and chunk one document; raises ExtractionError with a reason for a person."""
    try:
        data = _document_bytes(doc)
    except OSError:
        raise readers.ExtractionError("The stored file could not be read; upload it again.") from None
    content_hash = hashlib.sha256(data).hexdigest()
    title: str | None = None
    located: tuple[tuple[int, int, dict[str, Any]], ...] = ()
    ocr_words: dict[int, list[list[Any]]] = {}
    if doc.pasted_text:
        text, fmt = readers.normalise(doc.pasted_text), "txt"
        if not text:
            raise readers.ExtractionError("The text is empty.")
    else:
        # In a child process with bounded memory and time: hostile files fail, the worker lives.
        extracted = sandbox.extract_text_bounded(data, filename=doc.original_filename)
        text, fmt = extracted.text, extracted.format
        title = _file_title(doc, extracted.title)
        located, ocr_words = extracted.locations, extracted.ocr_words
    # A new title is embedded with every chunk, so it is re-embedded even when the bytes are the same.
    if content_hash == doc.indexed_hash and doc.chunk_count > 0 and title is None and doc.chunks.exists():
        return _Prepared(doc, attempt, text, fmt, content_hash, None)
    spans = chunking.chunk_text(
        text, max_tokens=settings.CHUNK_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS
    )
    if not spans:
        raise readers.ExtractionError("The document contains no text to index.")
    return _Prepared(
        doc, attempt, text, fmt, content_hash, spans, title=title, locations=located, ocr_words=ocr_words
    )


def _file_title(doc: Document, found: str | None) -> str | None:
    """The title the file gives, when it should replace the document's; None to keep it.

    Only a title defaulted from the file name is replaced (an upload or import without
    one): a title a person typed, or edited since, is theirs, and re-indexing keeps it.
    """
    if not found or not doc.original_filename:
        return None
    # An upload's default title is its stored file name; an import's, the name before it was made safe.
    if services.safe_filename(doc.title) != doc.original_filename:
        return None
    title = " ".join(found.split())
    if len(title) > services.TITLE_MAX:
        title = title[: services.TITLE_MAX - 1].rstrip() + "…"
    return title if title and title != doc.title else None


def _crash_reason(exc: BaseException) -> str:
    return f"Processing failed unexpectedly ({type(exc).__name__}); try re-indexing."


def _embed(items: list[_Prepared]) -> dict[str, str]:
    """Embed every item's chunks in shared batches; returns failure reasons by document id.

    If the shared call fails, each document is embedded alone, so one bad document
    fails by itself and the rest of the batch is still stored.
    """
    todo = [item for item in items if item.spans is not None]
    if not todo:
        return {}
    texts = [index_text(item.index_title, s.text) for item in todo for s in item.spans or []]
    try:
        vectors = embedder.encode(texts)
    except Exception:
        log.exception("batch embedding failed; embedding one document at a time")
    else:
        start = 0
        for item in todo:
            n = len(item.spans or [])
            item.vectors = vectors[start : start + n]
            start += n
        return {}
    failures: dict[str, str] = {}
    for item in todo:
        try:
            item.vectors = embedder.encode([index_text(item.index_title, s.text) for s in item.spans or []])
        except Exception as exc:
            log.exception("document embedding crashed", extra={"document_id": str(item.doc.pk)})
            failures[str(item.doc.pk)] = _crash_reason(exc)
    return failures


def _title(document_id: Any) -> str:
    return Document.objects.filter(pk=document_id).values_list("title", flat=True).first() or ""


def _hook(document_id: Any, title: str, status: str, reason: str = "") -> dict[str, Any]:
    """A document event's webhook data: ids, title, status and reason, never its text."""
    document = {"id": str(document_id), "title": title, "status": status}
    return {"document": {**document, "reason": reason[:500]} if reason else document}


def fail(document_id: Any, attempt: int, reason: str) -> bool:
    """Mark a claimed document failed with a reason, unless a newer claim took it over."""
    with transaction.atomic():
        failed = Document.objects.filter(
            pk=document_id, attempts=attempt, status=DocumentStatus.PROCESSING
        ).update(
            status=DocumentStatus.FAILED, error=reason[:2000], claimed_by="", status_changed_at=timezone.now()
        )
        if failed:
            project_id = Document.objects.filter(pk=document_id).values_list("project_id", flat=True).first()
            services.documents_changed(project_id=project_id)
            webhooks.emit(
                project_id=project_id,
                event="document.failed",
                data=lambda: _hook(document_id, _title(document_id), "failed", reason),
            )
    log.warning(
        "document failed", extra={"document_id": str(document_id), "status": "failed", "reason": reason}
    )
    if failed:
        metrics.ingest_failed(reason)
    return bool(failed)


def _final_title(item: _Prepared, title_now: str) -> str:
    """The file's own title, if the document's title is still the one read at the claim (an
    edit made meanwhile wins)."""
    return item.title if item.title is not None and title_now == item.doc.title else title_now


def _store(items: list[_Prepared]) -> dict[str, str]:
    """Write the batch in one transaction, each document only if its claim is still the latest."""
    outcomes: dict[str, str] = {}
    if not items:
        return outcomes
    now = timezone.now()
    to_write = [item for item in items if item.spans is not None]
    if to_write:
        # Outside the transaction below: the projects' partitions (each attached in its own short
        # transaction) and the index of the vectors' dimension, made once and kept.
        search.engine.ensure_partitions({item.doc.project_id for item in to_write})
        search.ensure_dimension(int(to_write[0].vectors.shape[1]))
    with transaction.atomic():
        current = {
            pk: (attempts, title)
            for pk, attempts, title in Document.objects.select_for_update()
            .filter(pk__in=[item.doc.pk for item in items], status=DocumentStatus.PROCESSING)
            .values_list("pk", "attempts", "title")
        }
        held = [item for item in items if current.get(item.doc.pk, (None,))[0] == item.attempt]
        for item in items:
            if current.get(item.doc.pk, (None,))[0] != item.attempt:
                outcomes[str(item.doc.pk)] = "superseded"
                log.info("document ingest superseded", extra={"document_id": str(item.doc.pk)})
        # The title each document ends with: the file's own, unless someone edited it meanwhile
        # (the row is locked now, so no edit can slip in before this commits).
        titles = {item.doc.pk: _final_title(item, current[item.doc.pk][1]) for item in held}
        changed = [item for item in held if item.spans is not None]
        if changed:
            # The search indexes follow these rows in this transaction; naming the projects
            # keeps the delete inside their partitions.
            Chunk.objects.filter(
                project_id__in={item.doc.project_id for item in changed},
                document_id__in=[item.doc.pk for item in changed],
            ).delete()
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        document_id=item.doc.pk,
                        project_id=item.doc.project_id,
                        title=titles[item.doc.pk],
                        index=s.index,
                        text=s.text,
                        start=s.start,
                        end=s.end,
                        token_count=s.token_count,
                        embedding=v,
                        dim=int(v.shape[0]),
                        locations=locations.chunk_ranges(item.locations, s.start, s.end),
                    )
                    for item in changed
                    for s, v in zip(item.spans or [], item.vectors, strict=True)
                ],
                batch_size=500,
            )
            PageWords.objects.filter(document_id__in=[item.doc.pk for item in changed]).delete()
            PageWords.objects.bulk_create(
                [
                    PageWords(document_id=item.doc.pk, page=page, words=words)
                    for item in changed
                    for page, words in sorted(item.ocr_words.items())
                ],
                batch_size=100,
            )
        for item in held:
            fields: dict[str, Any] = {
                "text": item.text,
                "format": item.fmt,
                "content_hash": item.content_hash,
                "indexed_hash": item.content_hash,
                "status": DocumentStatus.READY,
                "error": "",
                "claimed_by": "",
                "status_changed_at": now,
                "updated_at": now,
            }
            if item.spans is not None:
                fields["chunk_count"] = len(item.spans)
            Document.objects.filter(pk=item.doc.pk).update(**fields)
            if titles[item.doc.pk] != current[item.doc.pk][1]:
                Document.objects.filter(pk=item.doc.pk).update(title=titles[item.doc.pk])
            outcomes[str(item.doc.pk)] = DocumentStatus.READY
            webhooks.emit(
                project_id=item.doc.project_id,
                event="document.ready",
                data=_hook(item.doc.pk, titles[item.doc.pk], "ready"),
            )
        _touch({item.doc.project_id for item in held})
    search.engine.mark_written({item.doc.project_id for item in changed})
    metrics.ingest_ready(len(held))
    for item in held:
        log.info(
            "document ready",
            extra={
                "document_id": str(item.doc.pk),
                "status": "ready",
                "chunks": len(item.spans) if item.spans is not None else item.doc.chunk_count,
                "reembedded": item.spans is not None,
            },
        )
    return outcomes


def process(claims: list[Claim]) -> dict[str, str]:
    """Extract, chunk, embed and store the claimed documents; outcome by document id."""
    attempts = {str(c.document_id): c.attempt for c in claims}
    outcomes: dict[str, str] = {}
    prepared: list[_Prepared] = []
    # Not the previously extracted text: it is replaced, and may be large.
    for doc in Document.objects.filter(pk__in=[c.document_id for c in claims]).defer("text").order_by():
        attempt = attempts.pop(str(doc.pk))
        try:
            prepared.append(_prepare(doc, attempt))
        except readers.ExtractionError as exc:
            outcomes[str(doc.pk)] = _failed(doc.pk, attempt, str(exc))
        except Exception as exc:
            log.exception("document ingest crashed", extra={"document_id": str(doc.pk)})
            outcomes[str(doc.pk)] = _failed(doc.pk, attempt, _crash_reason(exc))
    for pk in attempts:  # deleted since the claim
        outcomes[pk] = "superseded"
    failures = _embed(prepared)
    for item in prepared:
        if str(item.doc.pk) in failures:
            outcomes[str(item.doc.pk)] = _failed(item.doc.pk, item.attempt, failures[str(item.doc.pk)])
    outcomes.update(_store([item for item in prepared if str(item.doc.pk) not in failures]))
    return outcomes


def _failed(document_id: Any, attempt: int, reason: str) -> str:
    return DocumentStatus.FAILED if fail(document_id, attempt, reason) else "superseded"


def run(*, token: str | None = None, budget_s: float | None = None, wake_others: bool = True) -> JobReport:
    """One ingest job: claim and process batches until none is left or the budget is spent.

    A job that claims a full batch wakes another (the queue may hold more than one
    worker can do); a job that stops at its budget with work left wakes the next.
    """
    token = token or uuid.uuid4().hex
    budget = settings.INGEST_JOB_S if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    report = JobReport()
    # First, so a document committed from here on publishes a new wake-up (the claim
    # below may not see it), and one committed before it is seen by the claim.
    cache.delete(WAKE_KEY)
    while True:
        started = time.monotonic()
        claims = claim(token=token)
        if not claims:
            break
        if wake_others and len(claims) >= settings.INGEST_BATCH_DOCS:
            wake()
        report.add(process(claims))
        log.info(
            "ingest batch done",
            extra={"count": len(claims), "duration_ms": int((time.monotonic() - started) * 1000)},
        )
        if time.monotonic() >= deadline:
            if wake_others and claimable_exists():
                wake()
            break
    return report


def ingest_one(*, document_id: Any) -> str:
    """Ingest one document here and now (import --sync, re-index --sync, tests); its final status.

    Returns "skipped" when the document was not claimable (ready, failed, or held
    by a live claim elsewhere).
    """
    with transaction.atomic():
        now = timezone.now()
        claims = _take([document_id], _claimable(now), token=uuid.uuid4().hex, now=now)
    if not claims:
        return "skipped"
    outcome = process(claims)[str(document_id)]
    return outcome if outcome != "superseded" else "skipped"


def queue_depth() -> dict[tuple[str, ...], float]:
    """Documents pending and processing, by status: the queue /metrics shows (read when scraped)."""
    waiting = (DocumentStatus.PENDING, DocumentStatus.PROCESSING)
    rows = Document.objects.filter(status__in=waiting).values_list("status").annotate(n=Count("pk"))
    counts = {str(status): n for status, n in rows.order_by()}
    return {(str(status),): float(counts.get(str(status), 0)) for status in waiting}


def wake() -> bool:
    """Publish one ingest wake-up unless one is already queued; True when published."""
    from documents import tasks

    if not cache.add(WAKE_KEY, 1, timeout=settings.INGEST_WAKE_TTL_S):
        return False
    if not tasks.publish_wakeup():
        cache.delete(WAKE_KEY)  # the broker is down: let the next caller (or the sweeper) try
        return False
    return True


def sweep() -> bool:
    """The periodic sweep: wake a worker when work has waited a sweep interval (a lost message, a dead worker).

    It never sends a message per document: the claim takes the oldest work first.
    """
    if not claimable_exists(older_than_s=settings.SWEEP_INTERVAL_S):
        return False
    # A wake-up that has been queued this long was lost (or every worker is busy, and one
    # more message costs nothing): publish regardless of the dedup key.
    cache.delete(WAKE_KEY)
    woke = wake()
    log.info("ingest sweep found waiting documents", extra={"woke": woke})
    return woke
