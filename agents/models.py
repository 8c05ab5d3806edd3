"""Agent runs: a question, summary or extraction answered from a project."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunKind(models.TextChoices):
    ASK = "ask", "Ask"
    SUMMARIZE = "summarize", "Summarize"
    EXTRACT = "extract", "Extract"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RETRIEVING = "retrieving", "Retrieving"
    GENERATING = "generating", "Generating"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED}


class Thread(models.Model):
    """A conversation: a chain of ask runs in one project, oldest first.

    Private to the person who started it unless they share it with the project; project
    owners see every thread (agents.selectors.threads_visible_to).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="threads")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The first question, shortened: what the project page lists.
    title = models.CharField(max_length=200)
    turn_count = models.PositiveIntegerField(default=0)
    # Seen by every member of the project, not only its starter and the project's owners.
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the latest turn was asked (renaming or sharing is not activity).
    updated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["project", "-updated_at"])]

    def __str__(self) -> str:
        return self.title


class AgentRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="runs")
    document = models.ForeignKey(
        "documents.Document", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="followups"
    )
    # True when the run is about one document: if that document is deleted before the
    # run executes (document becomes NULL), the run fails instead of reading the project.
    document_scoped = models.BooleanField(default=False)
    thread = models.ForeignKey(Thread, null=True, blank=True, on_delete=models.CASCADE, related_name="turns")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=RunKind.choices)
    question = models.TextField(blank=True, default="")
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    answer = models.TextField(blank=True, default="")
    output = models.JSONField(default=dict, blank=True)
    citations = models.JSONField(default=list, blank=True)
    # Empty: the configured provider. "offline" when the user chose it over a spent budget.
    requested_provider = models.CharField(max_length=30, blank=True, default="")
    provider = models.CharField(max_length=30, blank=True, default="")
    model = models.CharField(max_length=100, blank=True, default="")
    degraded = models.BooleanField(default=False)
    degraded_reason = models.TextField(blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "created_at"]),
            models.Index(fields=["status", "status_changed_at"]),
            models.Index(fields=["thread", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def answered(self) -> bool | None:
        """False when the run declined (no answer in the documents); None until it succeeds."""
        if self.status != RunStatus.SUCCEEDED:
            return None
        output = self.output if isinstance(self.output, dict) else {}
        return bool(output.get("answered", True))


class Rating(models.TextChoices):
    UP = "up", "Helpful"
    DOWN = "down", "Not helpful"


class RunFeedback(models.Model):
    """One person's thumbs up or down on an answer, with an optional note.

    It is a record for the project's owners to read (agents.feedback); it counts toward
    nothing else: not retrieval, not ranking, not any limit.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.CharField(max_length=4, choices=Rating.choices)
    # At most agents.feedback.NOTE_MAX characters (the service's check; the API's and pages' limit).
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["run", "user"], name="agents_runfeedback_one_per_person"),
            models.CheckConstraint(
                condition=models.Q(rating__in=["up", "down"]), name="agents_runfeedback_rating_up_or_down"
            ),
        ]
        verbose_name = "answer rating"

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on {self.run_id}"
