"""Staff admin for agent runs: inspect results, re-run the failed ones."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.text import Truncator

from agents import services
from agents.models import AgentRun, RunFeedback, Thread

QUESTION_CHARS = 80


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = (
        "kind",
        "question_excerpt",
        "project",
        "user_email",
        "status",
        "provider",
        "degraded",
        "created_at",
    )
    list_display_links = ("question_excerpt",)
    list_filter = ("kind", "status", "provider", "degraded")
    search_fields = ("question", "answer", "created_by__email")
    list_select_related = ("project", "created_by")
    date_hierarchy = "created_at"
    actions = ("rerun_failed",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "kind",
                    "project",
                    "document",
                    "parent",
                    "thread",
                    "created_by",
                    "question",
                )
            },
        ),
        ("Result", {"fields": ("status", "answer", "citations", "output", "error")}),
        (
            "Provider",
            {
                "fields": (
                    "provider",
                    "model",
                    "degraded",
                    "degraded_reason",
                    "input_tokens",
                    "output_tokens",
                    "latency_ms",
                    "attempts",
                )
            },
        ),
        (
            "History",
            {
                "fields": (
                    "created_at",
                    "updated_at",
                    "status_changed_at",
                    "finished_at",
                )
            },
        ),
    )
    # A run is a record of what happened: nothing on it is edited by hand.
    readonly_fields = (
        "id",
        "kind",
        "project",
        "document",
        "parent",
        "thread",
        "created_by",
        "question",
        "status",
        "answer",
        "citations",
        "output",
        "error",
        "provider",
        "model",
        "degraded",
        "degraded_reason",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "attempts",
        "created_at",
        "updated_at",
        "status_changed_at",
        "finished_at",
    )

    def has_add_permission(self, request: Any) -> bool:
        # Runs are created by people asking, through the pages and the API.
        return False

    @admin.display(description="question", ordering="question")
    def question_excerpt(self, obj: AgentRun) -> str:
        return Truncator(" ".join(obj.question.split())).chars(QUESTION_CHARS) or "—"

    @admin.display(description="user", ordering="created_by__email")
    def user_email(self, obj: AgentRun) -> str:
        return obj.created_by.email if obj.created_by else "—"

    @admin.action(description="Re-run selected failed runs", permissions=["change"])
    def rerun_failed(self, request: Any, queryset: QuerySet[AgentRun]) -> None:
        requeued = skipped = 0
        for run in queryset:
            try:
                services.run_retry(run=run)  # the service refuses a run that has not failed
            except ValidationError:
                skipped += 1
            else:
                requeued += 1
        message = f"Re-queued {requeued} failed run{'s' if requeued != 1 else ''}."
        if skipped:
            message += f" Skipped {skipped} that had not failed."
        self.message_user(request, message, messages.SUCCESS if requeued else messages.WARNING)


class TurnInline(admin.TabularInline):
    model = AgentRun
    fk_name = "thread"
    fields = ("created_at", "question", "status", "provider", "created_by")
    readonly_fields = fields
    ordering = ("created_at",)
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    """Conversations, read-only: their turns are runs, recorded as they happened."""

    list_display = ("title", "project", "created_by", "shared", "turn_count", "updated_at")
    list_filter = ("shared",)
    search_fields = ("title",)
    list_select_related = ("project", "created_by")
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "project",
        "created_by",
        "title",
        "shared",
        "turn_count",
        "created_at",
        "updated_at",
    )
    inlines = (TurnInline,)

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(RunFeedback)
class RunFeedbackAdmin(admin.ModelAdmin):
    """Ratings of answers, read-only: each is one person's word on one answer."""

    list_display = ("rating", "question_excerpt", "project", "user_email", "has_note", "updated_at")
    list_display_links = ("question_excerpt",)
    list_filter = ("rating",)
    search_fields = ("note", "run__question", "user__email")
    list_select_related = ("run__project", "user")
    date_hierarchy = "updated_at"
    readonly_fields = ("id", "run", "user", "rating", "note", "created_at", "updated_at")

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description="question", ordering="run__question")
    def question_excerpt(self, obj: RunFeedback) -> str:
        return Truncator(" ".join(obj.run.question.split())).chars(QUESTION_CHARS) or "—"

    @admin.display(description="project", ordering="run__project__title")
    def project(self, obj: RunFeedback) -> str:
        return obj.run.project.title

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj: RunFeedback) -> str:
        return obj.user.email

    @admin.display(description="note", boolean=True)
    def has_note(self, obj: RunFeedback) -> bool:
        return bool(obj.note)
