"""Drop a deleted project's files after the delete commits, however it was deleted; and
`document_deleting`, which documents.services.document_purge sends inside the transaction
that deletes one document (agents takes the document's quotes out of its runs).

(Ingest is queued by the services that create or requeue a document, documents.services.)
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import Signal, receiver

from documents.models import Document
from projects.models import Project

# Sent with `document_id` just before one document is deleted, in the delete's transaction.
# (Not for a project's delete: its runs go with it.)
document_deleting = Signal()


@receiver(pre_delete, sender=Project, dispatch_uid="documents.remove_project_files")
def remove_project_files(sender: type[Project], instance: Project, **kwargs: Any) -> None:
    """A deleted project's uploaded files go after its delete commits, however it was deleted."""
    names = list(
        Document.objects.filter(project_id=instance.pk).exclude(file="").values_list("file", flat=True)
    )
    if names:
        from documents.services import document_files_remove

        transaction.on_commit(lambda: document_files_remove(names=names))
