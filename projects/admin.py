"""Staff admin for projects and memberships."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet

from projects.models import Membership, Project, Role


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "status",
        "created_by",
        "member_count",
        "document_count",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("title",)
    list_select_related = ("created_by",)
    autocomplete_fields = ("created_by",)
    readonly_fields = ("id", "created_at", "updated_at")
    fields = (
        "id",
        "title",
        "description",
        "status",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = (MembershipInline,)
    date_hierarchy = "created_at"

    def get_queryset(self, request: Any) -> QuerySet[Project]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _members=Count("memberships", distinct=True),
                _documents=Count("documents", distinct=True),
            )
        )

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: Project) -> int:
        return obj._members  # type: ignore[attr-defined]

    @admin.display(description="documents", ordering="_documents")
    def document_count(self, obj: Project) -> int:
        return obj._documents  # type: ignore[attr-defined]

    def get_deleted_objects(self, objs: Any, request: Any) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Chunks are read-only on their own but go with their project's documents.
        perms_needed.discard("chunk")
        return deleted, counts, perms_needed, protected

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        project = form.instance
        # Like project_create: a project nobody owns cannot be reached by anyone.
        if (
            project.created_by_id
            and not project.memberships.filter(role=Role.OWNER).exists()
            and not project.memberships.filter(user_id=project.created_by_id).exists()
        ):
            Membership.objects.create(project=project, user_id=project.created_by_id, role=Role.OWNER)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("project", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("project__title", "user__email")
    list_select_related = ("project", "user")
    autocomplete_fields = ("project", "user")
    readonly_fields = ("created_at",)
