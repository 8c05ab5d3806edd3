"""Documents, their extracted text and their embedded chunks."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from core.vectors import VectorField


class DocumentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class IngestPriority(models.IntegerChoices):
    # Ingest claims interactive work first, so an upload is not queued behind a bulk import.
    INTERACTIVE = 0, "Interactive"
    BULK = 1, "Bulk"


class ImportBatch(models.Model):
    """One bulk import into a project: what it created, skipped and could not read."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="imports")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=500, blank=True, default="")
    created = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    # Records that never became documents: [{"source": ..., "reason": ...}], the first few.
    failed_records = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # When the import stopped creating documents (ingest may go on after it).
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "import batches"
        indexes = [models.Index(fields=["project", "-started_at"], name="imports_project_newest")]

    def __str__(self) -> str:
        return f"import {self.source or self.pk}"


def upload_to(instance: Document, filename: str) -> str:
    return f"documents/{instance.project_id}/{instance.id}/{filename}"


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    external_id = models.CharField(max_length=300, blank=True, default="")
    source = models.CharField(max_length=500, blank=True, default="")
    file = models.FileField(upload_to=upload_to, blank=True, max_length=500)
    original_filename = models.CharField(max_length=300, blank=True, default="")
    # Pasted text lives here; for files the extracted text is stored in `text`.
    pasted_text = models.TextField(blank=True, default="")
    content_type = models.CharField(max_length=100, blank=True, default="")
    format = models.CharField(max_length=10, blank=True, default="")
    size_bytes = models.PositiveBigIntegerField(default=0)
    text = models.TextField(blank=True, default="")
    content_hash = models.CharField(max_length=64, blank=True, default="")
    indexed_hash = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.PENDING)
    error = models.TextField(blank=True, default="")
    chunk_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    # The ingest job holding the claim (its task id): a retried or re-delivered job
    # recognises its own claim and resumes it instead of waiting for it to go stale.
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    priority = models.PositiveSmallIntegerField(
        choices=IngestPriority.choices, default=IngestPriority.INTERACTIVE
    )
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents"
    )
    metadata = models.JSONField(default=dict, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)

    # Not stored: true on the document services.document_create returns when an upload of the
    # same bytes replaced it (rather than making a new one).
    replaced = False

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "status"]),
            # The document list pages a project newest first without sorting every row.
            models.Index(fields=["project", "-created_at"], name="documents_project_newest"),
            # The ingest queue: claimable work by priority, oldest first.
            models.Index(fields=["status", "priority", "status_changed_at"], name="documents_ingest_queue"),
            models.Index(fields=["batch", "status"], name="documents_batch_status"),
            # A new upload's twin: the same bytes already in the project.
            models.Index(fields=["project", "content_hash"], name="documents_project_hash"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~models.Q(external_id=""),
                name="unique_external_id_per_project",
            )
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage of a document. The table is partitioned by project (documents/search/engine.py):
    its primary key in the database is (project, id), and `id` is unique on its own (one sequence)."""

    # No constraints in the database (documents/migrations/0005): a new partition would clone them,
    # locking documents and projects for every writer. Django's cascade still deletes chunks.
    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="chunks", db_constraint=False
    )
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="chunks", db_constraint=False
    )
    # The document's title, beside each of its passages for the lexical index (which reads one row).
    title = models.CharField(max_length=300, blank=True, default="")
    index = models.PositiveIntegerField()
    text = models.TextField()
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField(default=0)
    # L2-normalised float32, indexed by the database's vector search; dimension in `dim`.
    embedding = VectorField()
    dim = models.PositiveSmallIntegerField(default=0)
    # Where the passage is in the file: [start, end, locator] ranges of the document's text
    # (documents.locations), the extraction's ranges clipped to this chunk.
    locations = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["document_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["project", "document", "index"], name="unique_chunk_index")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.index}"

    @property
    def place(self) -> dict[str, Any] | None:
        """Where the whole chunk is in the file (one locator)."""
        from documents.locations import place_of

        return place_of(self.locations)


class PageWords(models.Model):
    """The words OCR read on one scanned page of a document, with their boxes, so the viewer can
    mark a quoted passage on a page that has no text layer."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="page_words")
    page = models.PositiveIntegerField()
    # [[word, x0, y0, x1, y1], ...] in reading order; boxes as fractions of the page, from its top left.
    words = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["document", "page"], name="unique_page_words")]

    def __str__(self) -> str:
        return f"{self.document_id} p. {self.page}"
