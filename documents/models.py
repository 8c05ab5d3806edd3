"""Documents, their extracted text and their embedded chunks."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from core.vectors import VectorField


class DocumentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


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
    metadata = models.JSONField(default=dict, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "status"]),
            # The document list pages a project newest first without sorting every row.
            models.Index(fields=["project", "-created_at"], name="documents_project_newest"),
            models.Index(fields=["status", "status_changed_at"]),
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
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    text = models.TextField()
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField(default=0)
    # L2-normalised float32, indexed by the database's vector search; dimension in `dim`.
    embedding = VectorField()
    dim = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["document_id", "index"]
        constraints = [models.UniqueConstraint(fields=["document", "index"], name="unique_chunk_index")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.index}"
