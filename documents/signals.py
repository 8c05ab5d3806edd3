"""Drop a deleted project's files after the delete commits, however it was deleted.

(Ingest is queued by the services that create or requeue a document, documents.services.)
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from documents.models import Document
from projects.models import Project


@receiver(pre_delete, sender=Project, dispatch_uid="documents.remove_project_files")
def remove_project_files(sender: type[Project], instance: Project, **kwargs: Any) -> None:
    """A deleted project's uploaded files go after its delete commits, however it was deleted."""
    names = list(
        Document.objects.filter(project_id=instance.pk).exclude(file="").values_list("file", flat=True)
    )
    if names:
        from documents.services import document_files_remove

        transaction.on_commit(lambda: document_files_remove(names=names))
