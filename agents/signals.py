"""Enqueue a run when it is created or queued again; drop its event log when it is deleted;
take a deleted document's quotes out of the runs that cite it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from agents import events, tasks
from agents.forgetting import runs_forget_document
from agents.models import AgentRun, RunStatus
from documents.signals import document_deleting


@receiver(post_save, sender=AgentRun, dispatch_uid="agents.enqueue_run")
def enqueue_run(
    sender: type[AgentRun],
    instance: AgentRun,
    created: bool,
    raw: bool,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    if raw or instance.status != RunStatus.QUEUED:
        return
    if not created and not (update_fields and "status" in update_fields):
        return
    pk = instance.pk
    transaction.on_commit(lambda: tasks.enqueue_run(pk))


@receiver(post_delete, sender=AgentRun, dispatch_uid="agents.forget_events")
def forget_events(sender: type[AgentRun], instance: AgentRun, **kwargs: Any) -> None:
    """A deleted run's live events (answer text) go with it."""
    pk = instance.pk
    transaction.on_commit(lambda: events.forget(pk))


@receiver(document_deleting, dispatch_uid="agents.forget_deleted_document")
def forget_deleted_document(document_id: Any, **kwargs: Any) -> None:
    """A deleted document's quotes leave the runs that cite it, in the delete's transaction
    (agents.forgetting); before the delete, while runs about it still point at it."""
    runs_forget_document(document_id=document_id)
