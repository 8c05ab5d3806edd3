"""Writes and workflows on documents: create, ingest, re-index, delete."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import get_valid_filename

from accounts import audit
from documents import importing, signals, tasks
from documents.extraction import fetching, readers
from documents.models import Chunk, Document, DocumentStatus, ImportBatch, IngestPriority
from documents.search import engine as search_engine
from projects import webhooks
from projects.access import require
from projects.models import Project, Role

log = logging.getLogger(__name__)

TITLE_MAX = 300

# What the page and the API both answer when the source of a new document is not one thing.
SOURCE_MISSING = "Choose a file, paste some text or give a web address."
SOURCE_SEVERAL = "Choose a file, paste text or give a web address, not more than one."
TITLE_WITH_TEXT = "A title is required with pasted text."
URL_MISSING = "Give the address of a web page."


class DuplicateDocument(ValidationError):
    """The project already holds these exact bytes: `existing` is that document.

    A conflict (the API answers 409 with its id, the page offers to replace it); sent again
    with `replace`, the new upload becomes that document instead.
    """

    def __init__(self, existing: Document, field: str) -> None:
        self.existing = existing
        self.field = field
        what = {"text": "This text", "url": "This page"}.get(field, "This file")
        super().__init__(
            {
                field: ValidationError(
                    f"{what} is already in the project as “{existing.title}”.", code="conflict"
                )
            }
        )


def documents_changed(*, project_id: Any) -> int:
    """Bump the project's documents version, so its cached list pages go stale (inside the change's transaction).

    Returns the rows updated: 0 when the project is gone. The update also locks the
    project's row, so document changes of one project take turns with each other and
    wait for a delete of the project in progress.
    """
    return Project.objects.filter(pk=project_id).update(documents_version=F("documents_version") + 1)


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


def document_create(
    *,
    user: Any,
    project: Project,
    upload: Any = None,
    text: str | None = None,
    url: str | None = None,
    title: str = "",
    external_id: str = "",
    source: str = "",
    batch: ImportBatch | None = None,
    enqueue: bool = True,
    replace: bool = False,
) -> Document:
    """A new pending document from exactly one of a file (`upload`), pasted `text` or a web page's `url`.

    The page's upload form, the API, the admin and `import_documents` all create through
    here. Errors are ValidationErrors keyed by field. The document is queued for
    ingest once the transaction commits, unless `enqueue` is false (a caller that
    ingests it itself, `import_documents --sync`). A document of an import `batch`
    is bulk work: ingest takes interactive uploads first.

    Bytes the project already holds (without an external id, which names a distinct record)
    raise DuplicateDocument, unless `replace`: then they become that document (see
    `_replace`), and it is what is returned.
    """
    require(user, project, Role.EDITOR)
    # None: not sent. Blank: sent empty, which is no source beside another one, and an error alone.
    sent_text, sent_url = text is not None, url is not None
    text = text if text and text.strip() else None
    url = (url or "").strip() or None
    given = [name for name, value in (("file", upload), ("text", text), ("url", url)) if value is not None]
    if not given:
        if sent_text:
            raise ValidationError({"text": "The text is empty."})
        raise ValidationError({"url": URL_MISSING} if sent_url else {"file": SOURCE_MISSING})
    if len(given) > 1:
        raise ValidationError({given[-1]: SOURCE_SEVERAL})
    common: dict[str, Any] = {"external_id": external_id, "enqueue": enqueue, "replace": replace}
    if upload is not None:
        return _from_file(user, project, upload, title=title, source=source, batch=batch, **common)
    if text is not None:
        if not (title or "").strip():
            raise ValidationError({"title": TITLE_WITH_TEXT})
        return _from_text(user, project, text, title=title, source=source, batch=batch, **common)
    assert url is not None
    return _from_url(user, project, url, title=title, **common)


def _from_file(
    user: Any,
    project: Project,
    upload: Any,
    *,
    title: str,
    external_id: str,
    source: str,
    batch: ImportBatch | None,
    enqueue: bool,
    replace: bool,
) -> Document:
    data = read_upload(upload)
    filename = safe_filename(getattr(upload, "name", "") or "upload")
    try:
        fmt = readers.sniff_format(data, filename)
    except readers.ExtractionError as exc:
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
        batch=batch,
        enqueue=enqueue,
        replace=replace,
        source_field="file",
        explicit_title=bool(title),
    )


def _from_text(
    user: Any,
    project: Project,
    text: str,
    *,
    title: str,
    external_id: str,
    source: str,
    batch: ImportBatch | None,
    enqueue: bool,
    replace: bool,
) -> Document:
    if not text.strip():
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
        batch=batch,
        enqueue=enqueue,
        replace=replace,
        source_field="text",
        explicit_title=True,
    )


def _from_url(
    user: Any, project: Project, url: str, *, title: str, external_id: str, enqueue: bool, replace: bool
) -> Document:
    """Fetch a web page now (errors go to the `url` field); its bytes are the document's file.

    Ingest reads the page's main content (trafilatura).
    """
    try:
        fetched = fetching.fetch_page(url)
    except fetching.FetchError as exc:
        raise ValidationError({"url": str(exc)}) from None
    filename = _page_filename(fetched.url)
    try:
        fmt = readers.sniff_format(fetched.data, filename)
    except readers.ExtractionError as exc:
        raise ValidationError({"url": str(exc)}) from None
    source = fetching.normalise_url(url)
    return _create(
        user=user,
        project=project,
        title=title or fetching.page_title(fetched)[:TITLE_MAX] or source[:TITLE_MAX],
        external_id=external_id,
        source=source,
        data=fetched.data,
        filename=filename,
        fmt=fmt,
        content_type=fetched.content_type or "text/html",
        enqueue=enqueue,
        replace=replace,
        source_field="url",
        explicit_title=bool(title),
    )


def _page_filename(url: str) -> str:
    """``<last path segment>.web.html`` ("page.web.html" for a site's root): read as a web page."""
    segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    stem = segment.rsplit(".", 1)[0] if "." in segment.strip(".") else segment
    name = safe_filename(stem)[:100] if stem.strip(". ") else ""
    return (name if name and name != "upload" else "page") + readers.WEB_PAGE_SUFFIX


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
    batch: ImportBatch | None = None,
    enqueue: bool = True,
    replace: bool = False,
    source_field: str = "file",
    explicit_title: bool = False,
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
        batch=batch,
        priority=IngestPriority.BULK if batch is not None else IngestPriority.INTERACTIVE,
    )
    try:
        with transaction.atomic():
            # First, as it locks the project's row: creations in one project take turns, so
            # the check below sees a twin committed a moment ago, and a project deleted
            # meanwhile is noticed here instead of failing the insert.
            if not documents_changed(project_id=project.pk):
                raise ValidationError({"project": PROJECT_GONE})
            if external_id and Document.objects.filter(project=project, external_id=external_id).exists():
                raise _duplicate_external_id()
            twin = None if external_id else _twin(project, doc.content_hash)
            if twin is not None:
                if not replace:
                    raise DuplicateDocument(twin, source_field)
                return _replace(twin, doc, data, explicit_title=explicit_title, enqueue=enqueue)
            if filename:
                doc.file.save(filename, ContentFile(data), save=False)
            doc.save()
            if enqueue:
                _enqueue_after_commit(doc.pk)
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


def _twin(project: Project, content_hash: str) -> Document | None:
    """The project's oldest document with these exact bytes (none for a record with an external id)."""
    return (
        Document.objects.select_for_update()
        .filter(project=project, content_hash=content_hash, external_id="")
        .order_by("created_at", "pk")
        .first()
    )


def _replace(twin: Document, new: Document, data: bytes, *, explicit_title: bool, enqueue: bool) -> Document:
    """The new upload becomes `twin` (in the caller's transaction, its row locked): its file,
    name, type and source, and its title when one was given; the document keeps its id, so
    links and threads that cite it still point at it (a run's citations carry their quotes).

    The bytes are the same, so a ready document keeps its passages; one that failed or is
    still waiting is queued again, as the new upload is a new attempt.
    """
    old_file = twin.file.name if twin.file else ""
    fields = ["original_filename", "pasted_text", "content_type", "format", "size_bytes", "source", "file"]
    for name in fields:
        setattr(twin, name, getattr(new, name))
    if explicit_title:
        twin.title = new.title
        fields.append("title")
    if new.original_filename:
        # Under the document's own folder, beside (then instead of) the old copy.
        twin.file.save(new.original_filename, ContentFile(data), save=False)
    else:
        twin.file = ""
    new_file = twin.file.name if twin.file else ""
    try:
        twin.save(update_fields=[*fields, "updated_at"])
        if "title" in fields:
            Chunk.objects.filter(project_id=twin.project_id, document_id=twin.pk).update(title=twin.title)
        if twin.status != DocumentStatus.READY:
            document_requeue(document=twin, force=True, enqueue=enqueue)
    except BaseException:
        if new_file:  # the row still names the old copy: the new one goes
            twin.file.storage.delete(new_file)
        raise
    if old_file and old_file != new_file:
        transaction.on_commit(lambda: document_files_remove(names=[old_file]))
    twin.replaced = True
    log.info("document replaced", extra={"document_id": str(twin.pk), "project_id": str(twin.project_id)})
    return twin


def _enqueue_after_commit(document_id: Any) -> None:
    """Wake a worker for the document once it is committed (documents.tasks)."""
    transaction.on_commit(lambda: tasks.enqueue_ingest(document_id))


def _duplicate_external_id() -> ValidationError:
    # code="conflict": the API answers 409 (core.api_errors), the page shows the message.
    return ValidationError(
        {
            "external_id": ValidationError(
                "The project already has a document with this external id.", code="conflict"
            )
        }
    )


ALREADY_QUEUED = "The document is already queued to be indexed; it was not queued again."


def document_reindex(*, user: Any, document: Document) -> Document:
    """Queue a document to be extracted and embedded again from scratch, unless it already is.

    A document waiting for a worker or being indexed now is not queued again (a conflict),
    so repeated requests cannot keep the shared worker re-embedding one document.
    """
    require(user, document.project, Role.EDITOR)
    now = timezone.now()
    waiting = [DocumentStatus.PENDING, DocumentStatus.PROCESSING]
    with transaction.atomic():
        # One conditional update decides, so two requests at once queue it once.
        queued = (
            Document.objects.filter(pk=document.pk)
            .exclude(status__in=waiting)
            .update(
                status=DocumentStatus.PENDING,
                error="",
                indexed_hash="",
                status_changed_at=now,
                updated_at=now,
            )
        )
        if not queued:
            # code="conflict": the API answers 409 {"detail"}, the page shows the message.
            raise ValidationError(ALREADY_QUEUED, code="conflict")
        documents_changed(project_id=document.project_id)
        _enqueue_after_commit(document.pk)
    document.refresh_from_db()
    log.info("document requeued", extra={"document_id": str(document.pk), "status": "pending"})
    return document


def documents_reindex(
    *, documents: Iterable[Document], sync: bool = False, progress: Callable[[Document], None] | None = None
) -> int:
    """Extract and embed `documents` again from scratch (staff and `reindex_documents`; callers check who).

    Each is queued for a worker after its own commit, or with `sync` ingested right
    here instead (nothing is published). `progress` is called after each; returns how many.
    """
    count = 0
    for document in documents:
        document_requeue(document=document, force=True, enqueue=not sync)
        if sync:
            document_ingest(document_id=document.pk)
        count += 1
        if progress is not None:
            progress(document)
    return count


def document_requeue(*, document: Document, force: bool = False, enqueue: bool = True) -> Document:
    """Put a document back to pending; it is queued for ingest after commit (unless not `enqueue`)."""
    if force:
        document.indexed_hash = ""
    document.status = DocumentStatus.PENDING
    document.error = ""
    document.status_changed_at = timezone.now()
    with transaction.atomic():
        document.save(update_fields=["status", "error", "indexed_hash", "status_changed_at", "updated_at"])
        documents_changed(project_id=document.project_id)
        if enqueue:
            _enqueue_after_commit(document.pk)
    log.info("document requeued", extra={"document_id": str(document.pk), "status": "pending"})
    return document


def document_save_metadata(*, document: Document) -> None:
    """Store a document's changed metadata (tags, keywords, entities from an extract run)."""
    with transaction.atomic():
        document.save(update_fields=["metadata", "updated_at"])
        documents_changed(project_id=document.project_id)


def document_rename(*, user: Any, document: Document, title: Any) -> Document:
    """Give a document a new title (editors and owners); its passages carry it too."""
    require(user, document.project, Role.EDITOR)
    if not isinstance(title, str):
        raise ValidationError({"title": "A title is text."})
    document.title = _clean_title(title)
    document_save_edits(document=document, fields=["title"])
    return document


def document_save_edits(*, document: Document, fields: list[str]) -> None:
    """Store a staff edit (title, external id, source, metadata) made in the admin."""
    if not fields:
        return
    with transaction.atomic():
        document.save(update_fields=[*fields, "updated_at"])
        if "title" in fields:
            # The lexical index reads the title beside each passage: they change together.
            Chunk.objects.filter(project_id=document.project_id, document_id=document.pk).update(
                title=document.title
            )
        documents_changed(project_id=document.project_id)
    log.info("document edited", extra={"document_id": str(document.pk), "fields": fields})


def search_indexes_compact() -> int:
    """Rebuild the BM25 index of each project written since it was last looked at, once nothing
    of it waits to be ingested, if its segments have piled up (the sweeper); how many were."""
    done = 0
    written = search_engine.written()
    busy = set(
        Document.objects.filter(
            project_id__in=written, status__in=[DocumentStatus.PENDING, DocumentStatus.PROCESSING]
        ).values_list("project_id", flat=True)
    )
    for project_id in written:
        if project_id in busy:
            continue  # an import still running: once, at its end
        try:
            done += search_engine.compact(project_id)
        except Exception:
            log.warning("search index not compacted", exc_info=True, extra={"project_id": str(project_id)})
            continue
        search_engine.forget_written([project_id])
    return done


def search_partitions_sweep() -> int:
    """Drop the search partitions of projects that no longer exist (the sweeper, every minute);
    how many went. A deleted project's chunks go with it at once; its empty partition here."""
    orphans = search_engine.existing_partitions() - set(Project.objects.values_list("pk", flat=True))
    return search_engine.drop_partitions(sorted(orphans, key=str))


def document_delete(*, user: Any, document: Document) -> None:
    """Delete a document, its chunks and its file (editors and owners).

    Raises Document.DoesNotExist when another request deleted it first: of several
    deletes at once, one deletes and the others find nothing (404).
    """
    require(user, document.project, Role.EDITOR)
    document_id = document.pk  # delete() clears it
    if not document_purge(document=document):
        raise Document.DoesNotExist("The document was already deleted.")
    audit.record(
        "document.deleted",
        actor=user,
        target=document.title,
        project_id=document.project_id,
        detail={"document_id": str(document_id)},
    )


def document_ingest(*, document_id: Any) -> str:
    """Ingest one document in this process now (import and re-index --sync); its final status.

    Workers ingest in batches (documents.ingest); both claim the same way, so the
    two never store a document twice.
    """
    from documents import ingest

    return ingest.ingest_one(document_id=document_id)


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


# An import's ImportBatch row is brought up to date every this many records or seconds.
IMPORT_SAVE_EVERY = 100
IMPORT_SAVE_EVERY_S = 1.0
# Records that never became documents, kept with their reasons on the batch.
IMPORT_FAILURES_KEPT = 20
_SOURCE_MAX = 500


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _BatchCounters:
    """An import's counters, mirrored to its ImportBatch row often enough to watch it run."""

    def __init__(self, batch: ImportBatch) -> None:
        self.batch = batch
        self.unsaved = 0
        self.saved_at = time.monotonic()

    def count(self, outcome: str, source: str, reason: str) -> None:
        batch = self.batch
        if outcome == importing.CREATED:
            batch.created += 1
        elif outcome == importing.SKIPPED:
            batch.skipped += 1
        else:
            batch.failed_records += 1
            if len(batch.failures) < IMPORT_FAILURES_KEPT:
                batch.failures.append({"source": _shorten(source, 300), "reason": _shorten(reason, 500)})
        self.unsaved += 1
        if self.unsaved >= IMPORT_SAVE_EVERY or time.monotonic() - self.saved_at >= IMPORT_SAVE_EVERY_S:
            self.save()

    def save(self, *, finished: bool = False) -> None:
        batch = self.batch
        fields: dict[str, Any] = {
            "created": batch.created,
            "skipped": batch.skipped,
            "failed_records": batch.failed_records,
            "failures": batch.failures,
        }
        if finished:
            batch.finished_at = fields["finished_at"] = timezone.now()
        # An update, not save(): the row is gone with its project if that is deleted meanwhile.
        ImportBatch.objects.filter(pk=batch.pk).update(**fields)
        self.unsaved, self.saved_at = 0, time.monotonic()

    def finish(self) -> None:
        try:
            self.save(finished=True)
        except DatabaseError:
            # Also reached while an error propagates: never hide that one behind this.
            log.warning("import batch not finished", extra={"batch_id": str(self.batch.pk)}, exc_info=True)


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
    its own and is queued for ingest after commit; with `sync` it is ingested right here instead.
    `progress`, if given, is called with an `importing.ImportEvent` per record.
    The import is recorded as an `ImportBatch` (its documents are bulk work for
    ingest), whose counters the project page shows while it runs.
    """
    from pathlib import Path

    require(user, project, Role.EDITOR)
    existing = Document.objects.filter(project=project)
    known_ids = set(existing.exclude(external_id="").values_list("external_id", flat=True))
    known_hashes = set(existing.exclude(content_hash="").values_list("content_hash", flat=True))
    batch = ImportBatch.objects.create(
        project=project,
        started_by=user if getattr(user, "is_authenticated", False) else None,
        source=_shorten(", ".join(str(p) for p in paths), _SOURCE_MAX),
    )
    counters = _BatchCounters(batch)
    report = importing.ImportReport(batch_id=str(batch.pk))
    try:
        _import_records(
            user=user,
            project=project,
            paths=[Path(p) for p in paths],
            batch=batch,
            known_ids=known_ids,
            known_hashes=known_hashes,
            report=report,
            counters=counters,
            progress=progress,
            sync=sync,
        )
    finally:
        counters.finish()
    log.info(
        "documents imported",
        extra={
            "project_id": str(project.pk),
            "batch_id": str(batch.pk),
            "created_count": report.created,
            "skipped_count": report.skipped_existing,
            "failed_count": len(report.failed),
        },
    )
    return report


def _import_records(
    *,
    user: Any,
    project: Project,
    paths: list[Any],
    batch: ImportBatch,
    known_ids: set[str],
    known_hashes: set[str],
    report: importing.ImportReport,
    counters: _BatchCounters,
    progress: importing.ProgressCallback | None,
    sync: bool,
) -> None:
    """Create the documents of `paths` one record at a time, counting each outcome."""
    from pathlib import Path

    from django.core.files import File

    for record in importing.iter_sources(paths):
        doc: Document | None = None
        outcome, reason = importing.CREATED, ""
        try:
            if isinstance(record, importing.BadRecord):
                outcome, reason = importing.FAILED, record.reason
            elif isinstance(record, importing.BeirRecord):
                if record.external_id in known_ids:
                    outcome = importing.SKIPPED
                else:
                    doc = document_create(
                        user=user,
                        project=project,
                        title=_import_title(record.title, record.external_id),
                        text=record.text,
                        external_id=record.external_id,
                        source=f"{record.path.name}:{record.line}",
                        batch=batch,
                        enqueue=not sync,
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
                        doc = document_create(
                            user=user,
                            project=project,
                            upload=upload,
                            title=_import_title(Path(record.name).name, "upload"),
                            source=record.name,
                            batch=batch,
                            enqueue=not sync,
                        )
                        known_hashes.add(doc.content_hash)
        except DuplicateDocument:
            outcome = importing.SKIPPED  # the same bytes, added meanwhile by someone else
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
        counters.count(outcome, record.label, reason)
        if progress is not None:
            progress(
                importing.ImportEvent(
                    source=record.label,
                    outcome=outcome,
                    document_id=str(doc.pk) if doc is not None else "",
                    reason=reason,
                )
            )


def document_purge(*, document: Document) -> bool:
    """Delete a document, its chunks and its file; callers check permission (staff admin,
    document_delete). False when it was already gone (another request deleted it)."""
    document_id, project_id = document.pk, document.project_id
    file_name = document.file.name if document.file else ""
    with transaction.atomic():
        # Lock the row first: a run or edit naming this document while it goes either commits
        # before (and is collected with it) or waits and finds it gone, never a broken reference.
        if not list(Document.objects.select_for_update().filter(pk=document_id).values_list("pk", flat=True)):
            return False
        signals.document_deleting.send(sender=Document, document_id=document_id)
        document.delete()
        documents_changed(project_id=project_id)
        hook = {"document": {"id": str(document_id), "title": document.title, "status": "deleted"}}
        webhooks.emit(project_id=project_id, event="document.deleted", data=hook)
    search_engine.mark_written([project_id])  # its chunks left tombstones in the index's segments
    if file_name:
        transaction.on_commit(lambda: document_files_remove(names=[file_name]))
    log.info("document purged", extra={"document_id": str(document_id), "project_id": str(project_id)})
    return True


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
