"""Staff admin for projects and memberships."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.shortcuts import redirect

from projects import services
from projects.models import Invitation, Membership, Project, Role, WebhookEndpoint


def _first_message(exc: ValidationError) -> str:
    return exc.messages[0] if exc.messages else "The change was refused."


class MembershipFormSet(BaseInlineFormSet):
    """Refuse, on the form, an edit that would leave an existing project without an owner."""

    def clean(self) -> None:
        super().clean()
        if self.instance._state.adding or any(self.errors):
            return  # a new project gets its creator as owner (ProjectAdmin.save_related)
        edited = {f.instance.pk for f in self.forms if f.instance.pk}
        owners = (
            Membership.objects.filter(project=self.instance, role=Role.OWNER).exclude(pk__in=edited).count()
        )
        for form in self.forms:
            data = getattr(form, "cleaned_data", {})
            if data and not data.get("DELETE") and data.get("role") == Role.OWNER:
                owners += 1
        if owners == 0:
            raise ValidationError(services.LAST_OWNER_DEMOTED)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
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

    def delete_model(self, request: Any, obj: Project) -> None:
        services.project_purge(project=obj)

    def delete_queryset(self, request: Any, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            services.project_purge(project=project)

    def save_formset(self, request: Any, form: Any, formset: Any, change: bool) -> None:
        """Membership edits go through the service, so the last-owner rule holds against a race too."""
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        changed = formset.save(commit=False)
        # New owners first, then other changes, removals last: a swap of owners never passes through zero.
        changed.sort(key=lambda m: m.role != Role.OWNER)
        for membership in [*changed, *formset.deleted_objects]:
            try:
                if membership in formset.deleted_objects:
                    services.member_remove_by_staff(membership=membership)
                else:
                    services.member_save_by_staff(membership=membership)
            except ValidationError as exc:
                self.message_user(request, f"{membership.user}: {_first_message(exc)}", messages.ERROR)

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

    def get_readonly_fields(self, request: Any, obj: Membership | None = None) -> Any:
        # A membership stays in its project: moving it would take an owner from the old one unchecked.
        return ("project", "created_at") if obj is not None else ("created_at",)

    def get_form(self, request: Any, obj: Membership | None = None, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, **kwargs)

        class MembershipForm(form_class):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                data = super().clean()
                current = self.instance
                if (
                    current.pk
                    and current.role == Role.OWNER
                    and data.get("role") != Role.OWNER
                    and Membership.objects.filter(project_id=current.project_id, role=Role.OWNER).count() <= 1
                ):
                    self.add_error("role", services.LAST_OWNER_DEMOTED)
                return data

        return form_class if obj is None else MembershipForm

    def save_model(self, request: Any, obj: Membership, form: Any, change: bool) -> None:
        try:
            services.member_save_by_staff(membership=obj)
        except ValidationError as exc:
            self.message_user(request, _first_message(exc), messages.ERROR)

    def delete_model(self, request: Any, obj: Membership) -> None:
        try:
            services.member_remove_by_staff(membership=obj)
        except ValidationError as exc:
            self.message_user(request, f"{obj.user}: {_first_message(exc)}", messages.ERROR)

    actions = ["remove_selected"]

    def get_actions(self, request: Any) -> Any:
        # Django's bulk delete says "Successfully deleted" even for the ones the service refused.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Remove the selected memberships", permissions=["delete"])
    def remove_selected(self, request: Any, queryset: QuerySet[Membership]) -> None:
        removed = 0
        for membership in queryset.select_related("user"):
            try:
                services.member_remove_by_staff(membership=membership)
            except ValidationError as exc:
                self.message_user(request, f"{membership.user}: {_first_message(exc)}", messages.ERROR)
            else:
                removed += 1
        if removed:
            self.message_user(request, f"Removed {removed} membership{'s' if removed != 1 else ''}.")

    def delete_view(self, request: Any, object_id: str, extra_context: Any = None) -> Any:
        membership = self.get_object(request, object_id)
        if (
            membership is not None
            and membership.role == Role.OWNER
            and Membership.objects.filter(project_id=membership.project_id, role=Role.OWNER).count() <= 1
        ):
            self.message_user(request, services.LAST_OWNER_REMOVED, messages.ERROR)
            return redirect("admin:projects_membership_change", membership.pk)
        return super().delete_view(request, object_id, extra_context)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations, read-only: owners send and revoke them, invitees answer them."""

    list_display = ("email", "project", "role", "status", "invited_by", "created_at", "expires_at")
    list_filter = ("status", "role")
    search_fields = ("email", "project__title")
    list_select_related = ("project", "invited_by")
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "project",
        "email",
        "role",
        "status",
        "invited_by",
        "accepted_by",
        "created_at",
        "expires_at",
        "answered_at",
    )

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Staff see every project's webhook endpoints and their state; owners manage them on the
    project's Webhooks page (projects.webhooks), so nothing here changes them or shows a secret."""

    list_display = ("url", "project", "enabled", "consecutive_failures", "failing_since", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "project__title", "description")
    readonly_fields = ("project", "url", "description", "events", "enabled", "disabled_reason")
    exclude = ("secret",)

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
