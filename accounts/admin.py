"""Staff admin for users: Django's UserAdmin, adapted to email login and tiers."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

from accounts import audit, keys
from accounts.mail import links_in
from accounts.models import ApiKey, AuditEvent, OutboxMessage, User


class UserCreationForm(BaseUserCreationForm):
    """Add a user by email with a password typed twice (validated by the password validators)."""

    class Meta:
        model = User
        fields = ("email", "name", "tier")
        field_classes: ClassVar[dict[str, type[forms.Field]]] = {}

    def clean_email(self) -> str:
        # The manager stores emails lower-cased; reject addresses differing only in case.
        email = User.objects.normalize_email(self.cleaned_data.get("email", "")).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("A user with that email address already exists.")
        return email


class UserEditForm(UserChangeForm):
    """Edit a user; the password shows as its read-only hash with a link to reset it."""

    class Meta:
        model = User
        fields = "__all__"
        field_classes: ClassVar[dict[str, type[forms.Field]]] = {}

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data.get("email", "")).lower()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A user with that email address already exists.")
        return email


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    # The stock add template expects the "usable password" switch, which this form leaves out.
    add_form_template = None
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "tier")}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        # Staff may confirm an address by hand (set the date) or withdraw a confirmation (clear it).
        ("Important dates", {"fields": ("last_login", "date_joined", "email_verified_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "name", "tier", "password1", "password2"),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "name", "tier", "is_active", "is_staff", "date_joined")
    list_filter = ("tier", "is_staff", "is_active", ("email_verified_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "name")
    ordering = ("email",)
    filter_horizontal = ("groups", "user_permissions")

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        # The add form has no date fields to show.
        return () if obj is None else self.readonly_fields

    # Every staff change to an account goes in the audit log (staff.user_changed), with the
    # fields it touched; never their values, except an address, which is the account's name.
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        previous_email = form.initial.get("email", "") if change else ""
        super().save_model(request, obj, form, change)
        fields = [name for name in form.changed_data if name not in ("password1", "password2")]
        detail: dict[str, Any] = {"fields": fields} if change else {"created": True, "fields": fields}
        audit.record(
            "staff.user_changed", actor=request.user, target=obj.email, request=request, detail=detail
        )
        if change and "email" in fields:
            audit.record(
                "account.email_changed",
                actor=request.user,
                target=obj.email,
                request=request,
                detail={"from": previous_email, "to": obj.email, "by_staff": True},
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # Before the delete: the event may name the deleting account, which must still exist.
        self._audit_deleted(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user in queryset:
            self._audit_deleted(request, user)
        super().delete_queryset(request, queryset)

    def _audit_deleted(self, request: HttpRequest, user: Any) -> None:
        audit.record(
            "staff.user_changed",
            actor=request.user,
            target=user.email,
            request=request,
            detail={"deleted": True},
        )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # the form was accepted
            changed = self.get_object(request, id)
            target = changed.email if changed is not None else ""
            audit.record(
                "staff.user_changed",
                actor=request.user,
                target=target,
                request=request,
                detail={"fields": ["password"]},
            )
        return response


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """The email a server without SMTP kept instead of sending: read-only, for staff.

    Superusers see it, and staff given the "Can view outbox message" permission: the
    messages hold password-reset links, so grant it only to whom may take over accounts.
    """

    list_display = ("sent_at", "to", "subject")
    list_display_links = ("sent_at", "subject")
    search_fields = ("to", "subject")
    date_hierarchy = "sent_at"
    fields = ("sent_at", "to", "from_email", "subject", "links", "body")
    readonly_fields = fields

    @admin.display(description="Links (copy one and pass it on)")
    def links(self, obj: OutboxMessage) -> str:
        found = links_in(obj.body)
        if not found:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", '<li><a href="{}" rel="noreferrer">{}</a></li>', ((link, link) for link in found)
            ),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The whole audit log, every project's and every account's: read-only, for staff.

    Superusers see it, and staff given the "Can view audit event" permission. Nobody adds,
    changes or deletes an event here; the database refuses it anyway (accounts.audit).
    """

    list_display = ("at", "action", "actor_email", "target", "project_id", "ip")
    list_filter = ("action", "at")
    search_fields = ("actor_email", "target")
    date_hierarchy = "at"
    fields = ("at", "action", "actor", "actor_email", "target", "project_id", "ip", "detail")
    readonly_fields = fields
    list_select_related = ("actor",)
    show_full_result_count = False  # a count of a long log on every page is slow

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Everyone's personal API keys: staff see them and revoke them (never their hash or secret).

    Keys are made by their owners (the account page or the API), who alone see the secret;
    a revoked key stays listed, as its owner's list shows it.
    """

    list_display = ("name", "owner", "key_prefix", "scope_list", "status", "created_at", "last_used_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "owner__email")
    list_select_related = ("owner",)
    fields = (
        "name",
        "owner",
        "key_prefix",
        "scopes",
        "project_ids",
        "status",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke_keys",)

    @admin.display(description="Key", ordering="prefix")
    def key_prefix(self, obj: ApiKey) -> str:
        return f"dk_{obj.prefix}_…"

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="Status")
    def status(self, obj: ApiKey) -> str:
        return keys.key_status(obj)

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(
            keys.key_revoke(key=key, actor=request.user, request=request)
            for key in queryset.select_related("owner")
        )
        self.message_user(request, f"{revoked} key(s) revoked; they are refused from now on.")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("accounts.change_apikey"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only the owner may make a key (and see its secret)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoking is the one change, through the action

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, not deleted: the owner's list and the audit log still name it
