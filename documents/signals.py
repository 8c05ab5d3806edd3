"""Enqueue ingest when a document is created or put back to pending."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from documents import tasks
from documents.models import Document, DocumentStatus


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
