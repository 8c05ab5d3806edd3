"""Enqueue ingest when a document is created or put back to pending; drop a deleted project's files."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from documents import tasks
from documents.models import Document, DocumentStatus
from projects.models import Project


@receiver(post_save, sender=Document, dispatch_uid="documents.enqueue_ingest")
def enqueue_ingest(
    sender: type[Document],
    instance: Document,
    created: bool,
    raw: bool,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    if raw or instance.status != DocumentStatus.PENDING:
        return
    if not created and not (update_fields and "status" in update_fields):
        return
    pk = instance.pk
    transaction.on_commit(lambda: tasks.enqueue_ingest(pk))


@receiver(pre_delete, sender=Project, dispatch_uid="documents.remove_project_files")
def remove_project_files(sender: type[Project], instance: Project, **kwargs: Any) -> None:
    """A deleted project's uploaded files go after its delete commits, however it was deleted."""
    names = list(
        Document.objects.filter(project_id=instance.pk).exclude(file="").values_list("file", flat=True)
    )
    if names:
        from documents.services import document_files_remove

        transaction.on_commit(lambda: document_files_remove(names=names))
