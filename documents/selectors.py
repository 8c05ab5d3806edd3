"""Reads on documents, always scoped to what the user may see."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.http import Http404

from documents.models import Chunk, Document
from projects.access import projects_visible_to, require
from projects.models import Role


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
