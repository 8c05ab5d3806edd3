"""Writes and workflows on documents: create, ingest, re-index, delete."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from documents import chunking, embedder, extraction, importing, sandbox, search
from documents.models import Chunk, Document, DocumentStatus
from documents.search import index_text
from projects.access import require
from projects.models import Project, Role
from projects.services import project_touch_documents

log = logging.getLogger(__name__)

TITLE_MAX = 300
# What document_ingest returns when another worker is processing the document.
INGEST_BUSY = "busy"


def _clean_title(title: str, field: str = "title") -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ValidationError({field: "A title is required."})
    if len(title) > TITLE_MAX:
        raise ValidationError({field: f"A title has at most {TITLE_MAX} characters."})
    return title


def safe_filename(name: str) -> str:
    """A file name with no path parts or odd characters, never empty."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    cleaned = get_valid_filename(base)[:150] if base.strip(". ") else ""
    return cleaned or "upload"


def read_upload(upload: IO[bytes] | Any) -> bytes:
    """The upload's bytes, refusing empty or oversize files without reading past the limit."""
    limit = settings.MAX_UPLOAD_BYTES
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise ValidationError(
            {"file": f"The file is larger than the {settings.DOCENT_MAX_UPLOAD_MB} MB limit."}
        )
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(
            {"file": f"The file is larger than the {settings.DOCENT_MAX_UPLOAD_MB} MB limit."}
        )
    if not data:
        raise ValidationError({"file": "The file is empty."})
    return data


def document_create_from_file(
    *,
    user: Any,
    project: Project,
    upload: Any,
    title: str = "",
    external_id: str = "",
    source: str = "",
) -> Document:
    """Store an uploaded file as a new pending document (ingest runs after commit)."""
    require(user, project, Role.EDITOR)
    data = read_upload(upload)
    filename = safe_filename(getattr(upload, "name", "") or "upload")
    try:
        fmt = extraction.sniff_format(data, filename)
    except extraction.ExtractionError as exc:
        raise ValidationError({"file": str(exc)}) from None
    return _create(
        user=user,
        project=project,
        title=title or filename,
        external_id=external_id,
        source=source or filename,
        data=data,
        filename=filename,
        fmt=fmt,
        content_type=getattr(upload, "content_type", "") or "",
    )


def document_create_from_text(
    *,
    user: Any,
    project: Project,
    title: str,
    text: str,
    external_id: str = "",
    source: str = "",
) -> Document:
    """Store pasted text as a new pending document."""
    require(user, project, Role.EDITOR)
    if not (text or "").strip():
        raise ValidationError({"text": "The text is empty."})
    data = text.encode("utf-8")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ValidationError(
            {"text": f"The text is larger than the {settings.DOCENT_MAX_UPLOAD_MB} MB limit."}
        )
    return _create(
        user=user,
        project=project,
        title=title,
        external_id=external_id,
        source=source,
        data=data,
        filename="",
        fmt="txt",
        content_type="text/plain",
        pasted=text,
    )


def _create(
    *,
    user: Any,
    project: Project,
    title: str,
    external_id: str,
    source: str,
    data: bytes,
    filename: str,
    fmt: str,
    content_type: str,
    pasted: str = "",
) -> Document:
    external_id = (external_id or "").strip()
    if len(external_id) > 300:
        raise ValidationError({"external_id": "An external id has at most 300 characters."})
    if external_id and Document.objects.filter(project=project, external_id=external_id).exists():
        raise _duplicate_external_id()
    doc = Document(
        project=project,
        title=_clean_title(title),
        external_id=external_id,
        source=source[:500],
        original_filename=filename,
        pasted_text=pasted,
        content_type=content_type[:100],
        format=fmt,
        size_bytes=len(data),
        content_hash=hashlib.sha256(data).hexdigest(),
        uploaded_by=user if getattr(user, "is_authenticated", False) else None,
    )
    try:
        with transaction.atomic():
            # First, as it locks the project's row: creations in one project take turns, so
            # the check below sees a twin committed a moment ago, and a project deleted
            # meanwhile is noticed here instead of failing the insert.
            if not project_touch_documents(project_id=project.pk):
                raise ValidationError({"project": PROJECT_GONE})
            if external_id and Document.objects.filter(project=project, external_id=external_id).exists():
                raise _duplicate_external_id()
            if filename:
                doc.file.save(filename, ContentFile(data), save=False)
            doc.save()
    except BaseException as exc:
        # Nothing was stored: neither is the file (it was written before the row).
        if doc.file.name:
            doc.file.storage.delete(doc.file.name)
        if isinstance(exc, IntegrityError) and external_id:
            raise _duplicate_external_id() from None  # lost the race to the unique constraint
        raise
    log.info(
        "document created",
        extra={"document_id": str(doc.pk), "project_id": str(project.pk), "status": doc.status},
    )
    return doc


PROJECT_GONE = "The project was deleted."


def _duplicate_external_id() -> ValidationError:
    # code="conflict": the API answers 409 (config.api_errors), the page shows the message.
    return ValidationError(
        {
            "external_id": ValidationError(
                "The project already has a document with this external id.", code="conflict"
            )
        }
    )


def document_reindex(*, user: Any, document: Document) -> Document:
    """Queue a document to be extracted and embedded again from scratch."""
    require(user, document.project, Role.EDITOR)
    return document_requeue(document=document, force=True)


def document_requeue(*, document: Document, force: bool = False) -> Document:
    """Put a document back to pending; the signal enqueues it after commit."""
    if force:
        document.indexed_hash = ""
    document.status = DocumentStatus.PENDING
    document.error = ""
    document.status_changed_at = timezone.now()
    with transaction.atomic():
        document.save(update_fields=["status", "error", "indexed_hash", "status_changed_at", "updated_at"])
        project_touch_documents(project_id=document.project_id)
    log.info("document requeued", extra={"document_id": str(document.pk), "status": "pending"})
    return document


def document_save_metadata(*, document: Document) -> None:
    """Store a document's changed metadata (tags, keywords, entities from an extract run)."""
    with transaction.atomic():
        document.save(update_fields=["metadata", "updated_at"])
        project_touch_documents(project_id=document.project_id)


def document_save_edits(*, document: Document, fields: list[str]) -> None:
    """Store a staff edit (title, external id, source, metadata) made in the admin."""
    if not fields:
        return
    with transaction.atomic():
        document.save(update_fields=[*fields, "updated_at"])
        project_touch_documents(project_id=document.project_id)
    log.info("document edited", extra={"document_id": str(document.pk), "fields": fields})


def document_delete(*, user: Any, document: Document) -> None:
    """Delete a document, its chunks and its file (editors and owners)."""
    require(user, document.project, Role.EDITOR)
    document_purge(document=document)


def _claim(document_id: Any) -> int | None:
    """Take the document for processing; None when another worker has it or it is done.

    A document stuck in `processing` past the timeout (its worker died) may be
    claimed again. The returned attempt number fences off the older worker.
    """
    stale = timezone.now() - timedelta(seconds=settings.STUCK_AFTER_S)
    claimable = Q(status=DocumentStatus.PENDING) | Q(
        status=DocumentStatus.PROCESSING, status_changed_at__lt=stale
    )
    with transaction.atomic():
        updated = Document.objects.filter(claimable, pk=document_id).update(
            status=DocumentStatus.PROCESSING,
            attempts=F("attempts") + 1,
            status_changed_at=timezone.now(),
            error="",
        )
        if not updated:
            return None
        claimed = Document.objects.filter(pk=document_id).values_list("attempts", "project_id").first()
        assert claimed is not None  # the row this transaction just updated
        project_touch_documents(project_id=claimed[1])
    return claimed[0]


def _document_bytes(doc: Document) -> bytes:
    if doc.file:
        with doc.file.open("rb") as fh:
            return fh.read()
    return doc.pasted_text.encode("utf-8")


def _fail(document_id: Any, attempt: int, reason: str) -> None:
    with transaction.atomic():
        failed = Document.objects.filter(pk=document_id, attempts=attempt).update(
            status=DocumentStatus.FAILED, error=reason[:2000], status_changed_at=timezone.now()
        )
        if failed:
            project_id = Document.objects.filter(pk=document_id).values_list("project_id", flat=True).first()
            project_touch_documents(project_id=project_id)
    log.warning(
        "document failed", extra={"document_id": str(document_id), "status": "failed", "reason": reason}
    )


def document_ingest(*, document_id: Any) -> str:
    """Extract, chunk, embed and store a document; safe to run twice. Returns the final status."""
    attempt = _claim(document_id)
    if attempt is None:
        status = Document.objects.filter(pk=document_id).values_list("status", flat=True).first()
        if status == DocumentStatus.PROCESSING:
            # Another worker holds it, or held it and died: check again later.
            log.info("document ingest busy elsewhere", extra={"document_id": str(document_id)})
            return INGEST_BUSY
        log.info("document ingest skipped (not claimable)", extra={"document_id": str(document_id)})
        return "skipped"
    doc = Document.objects.select_related("project").get(pk=document_id)
    log.info(
        "document processing", extra={"document_id": str(doc.pk), "status": "processing", "attempt": attempt}
    )
    started = time.monotonic()
    try:
        try:
            data = _document_bytes(doc)
        except OSError:
            _fail(doc.pk, attempt, "The stored file could not be read; upload it again.")
            return DocumentStatus.FAILED
        content_hash = hashlib.sha256(data).hexdigest()
        if doc.pasted_text:
            text = extraction.normalise(doc.pasted_text)
            fmt = "txt"
            if not text:
                raise extraction.ExtractionError("The text is empty.")
        else:
            # In a child process with bounded memory and time: hostile files fail, the worker lives.
            extracted = sandbox.extract_text_bounded(data, filename=doc.original_filename)
            text, fmt = extracted.text, extracted.format
        unchanged = content_hash == doc.indexed_hash and doc.chunk_count > 0 and doc.chunks.exists()
        if unchanged:
            chunks: list[Chunk] = []
        else:
            spans = chunking.chunk_text(
                text,
                max_tokens=settings.CHUNK_TOKENS,
                overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            )
            if not spans:
                raise extraction.ExtractionError("The document contains no text to index.")
            vectors = embedder.encode([index_text(doc.title, s.text) for s in spans])
            chunks = [
                Chunk(
                    document_id=doc.pk,
                    project_id=doc.project_id,
                    index=s.index,
                    text=s.text,
                    start=s.start,
                    end=s.end,
                    token_count=s.token_count,
                    embedding=v,
                    dim=int(v.shape[0]),
                )
                for s, v in zip(spans, vectors, strict=True)
            ]
    except extraction.ExtractionError as exc:
        _fail(doc.pk, attempt, str(exc))
        return DocumentStatus.FAILED
    except Exception as exc:
        log.exception("document ingest crashed", extra={"document_id": str(doc.pk)})
        _fail(doc.pk, attempt, f"Processing failed unexpectedly ({type(exc).__name__}); try re-indexing.")
        return DocumentStatus.FAILED

    with transaction.atomic():
        # Fence: only the worker holding the latest claim may write.
        current = (
            Document.objects.select_for_update()
            .filter(pk=doc.pk, attempts=attempt, status=DocumentStatus.PROCESSING)
            .first()
        )
        if current is None:
            log.info("document ingest superseded", extra={"document_id": str(doc.pk)})
            return "skipped"
        if not unchanged:
            search.ensure_dimension(chunks[0].dim)
            # The database's search index follows these rows in this transaction (triggers).
            Chunk.objects.filter(document_id=doc.pk).delete()
            Chunk.objects.bulk_create(chunks, batch_size=500)
            current.chunk_count = len(chunks)
        current.text = text
        current.format = fmt
        current.content_hash = content_hash
        current.indexed_hash = content_hash
        current.status = DocumentStatus.READY
        current.error = ""
        current.status_changed_at = timezone.now()
        current.save(
            update_fields=[
                "text",
                "format",
                "content_hash",
                "indexed_hash",
                "status",
                "error",
                "chunk_count",
                "status_changed_at",
                "updated_at",
            ]
        )
        project_touch_documents(project_id=doc.project_id)
    log.info(
        "document ready",
        extra={
            "document_id": str(doc.pk),
            "status": "ready",
            "chunks": current.chunk_count,
            "reembedded": not unchanged,
            "duration_ms": int((time.monotonic() - started) * 1000),
        },
    )
    return DocumentStatus.READY


def documents_requeue_stuck(*, older_than_s: int | None = None) -> int:
    """Re-enqueue documents left pending (a lost publish) or processing (a dead worker)."""
    from documents import tasks

    age = settings.STUCK_AFTER_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=age)
    ids = list(
        Document.objects.filter(
            status__in=[DocumentStatus.PENDING, DocumentStatus.PROCESSING],
            status_changed_at__lt=cutoff,
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in ids:
        tasks.enqueue_ingest(pk)
    if ids:
        log.info("requeued stuck documents", extra={"count": len(ids)})
    return len(ids)


ImportReport = importing.ImportReport


def _import_title(title: str, fallback: str) -> str:
    title = " ".join((title or "").split()) or fallback
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1].rstrip() + "…"


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(str(m) for m in exc.messages) or "invalid"


def _is_duplicate_external_id(exc: ValidationError) -> bool:
    return (
        hasattr(exc, "error_dict")
        and "external_id" in exc.error_dict
        and any("already has" in str(m) for m in exc.message_dict["external_id"])
    )


def documents_import(
    *,
    user: Any,
    project: Project,
    paths: list[Any],
    progress: importing.ProgressCallback | None = None,
    sync: bool = False,
) -> importing.ImportReport:
    """Create documents from files, folders and BEIR corpora, skipping what the project has.

    BEIR records are matched by external id, files by the sha256 of their bytes,
    so importing the same source again creates nothing. Each document commits on
    its own (the signal enqueues its ingest); `sync` also ingests it right here.
    `progress`, if given, is called with an `importing.ImportEvent` per record.
    """
    from pathlib import Path

    from django.core.files import File

    require(user, project, Role.EDITOR)
    existing = Document.objects.filter(project=project)
    known_ids = set(existing.exclude(external_id="").values_list("external_id", flat=True))
    known_hashes = set(existing.exclude(content_hash="").values_list("content_hash", flat=True))
    report = importing.ImportReport()

    for record in importing.iter_sources([Path(p) for p in paths]):
        doc: Document | None = None
        outcome, reason = importing.CREATED, ""
        try:
            if isinstance(record, importing.BadRecord):
                outcome, reason = importing.FAILED, record.reason
            elif isinstance(record, importing.BeirRecord):
                if record.external_id in known_ids:
                    outcome = importing.SKIPPED
                else:
                    doc = document_create_from_text(
                        user=user,
                        project=project,
                        title=_import_title(record.title, record.external_id),
                        text=record.text,
                        external_id=record.external_id,
                        source=f"{record.path.name}:{record.line}",
                    )
                    known_ids.add(record.external_id)
            else:
                with record.path.open("rb") as fh:
                    upload = File(fh, name=record.name)
                    # An oversize file goes straight to the service, which refuses it unread.
                    if upload.size <= settings.MAX_UPLOAD_BYTES:
                        digest = hashlib.file_digest(fh, "sha256").hexdigest()
                        fh.seek(0)
                        if digest in known_hashes:
                            outcome = importing.SKIPPED
                    if outcome != importing.SKIPPED:
                        doc = document_create_from_file(
                            user=user,
                            project=project,
                            upload=upload,
                            title=_import_title(Path(record.name).name, "upload"),
                            source=record.name,
                        )
                        known_hashes.add(doc.content_hash)
        except ValidationError as exc:
            if isinstance(record, importing.BeirRecord) and _is_duplicate_external_id(exc):
                outcome = importing.SKIPPED  # created meanwhile by another import
            else:
                outcome, reason = importing.FAILED, _validation_reason(exc)
        except IntegrityError:
            if not isinstance(record, importing.BeirRecord):
                raise
            outcome = importing.SKIPPED  # lost a race on the unique external id
        except OSError as exc:
            outcome, reason = (
                importing.FAILED,
                f"could not read the file: {exc.strerror or exc}",
            )

        if outcome == importing.CREATED and doc is not None:
            report.created += 1
            report.document_ids.append(str(doc.pk))
            if sync:
                document_ingest(document_id=doc.pk)
        elif outcome == importing.SKIPPED:
            report.skipped_existing += 1
        else:
            report.failed.append((record.label, reason))
        if progress is not None:
            progress(
                importing.ImportEvent(
                    source=record.label,
                    outcome=outcome,
                    document_id=str(doc.pk) if doc is not None else "",
                    reason=reason,
                )
            )
    log.info(
        "documents imported",
        extra={
            "project_id": str(project.pk),
            "created_count": report.created,
            "skipped_count": report.skipped_existing,
            "failed_count": len(report.failed),
        },
    )
    return report


def document_purge(*, document: Document) -> None:
    """Delete a document, its chunks and its file; callers check permission (staff admin, document_delete)."""
    document_id, project_id = document.pk, document.project_id
    file_name = document.file.name if document.file else ""
    with transaction.atomic():
        # Lock the row first: a run or edit naming this document while it goes either commits
        # before (and is collected with it) or waits and finds it gone, never a broken reference.
        if list(Document.objects.select_for_update().filter(pk=document_id).values_list("pk", flat=True)):
            document.delete()
            project_touch_documents(project_id=project_id)
    if file_name:
        transaction.on_commit(lambda: document_files_remove(names=[file_name]))
    log.info("document purged", extra={"document_id": str(document_id), "project_id": str(project_id)})


def document_files_remove(*, names: list[str]) -> None:
    """Delete stored files of deleted documents, and the folders they leave empty (after commit)."""
    import os

    storage = Document._meta.get_field("file").storage
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            log.warning("document file not removed", extra={"file": name}, exc_info=True)
            continue
        # documents/<project>/<document>/<file>: drop the two folders once empty.
        folder = os.path.dirname(name)
        for _ in range(2):
            if not folder or not hasattr(storage, "path"):
                break
            try:
                os.rmdir(storage.path(folder))
            except OSError:
                break  # not empty, or already gone
            folder = os.path.dirname(folder)
